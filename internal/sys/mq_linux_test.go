package sys

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestMqAttrLayout(t *testing.T) {
	// struct mq_attr is eight longs; long is as wide as a pointer on Linux.
	want := 8 * unsafe.Sizeof(uintptr(0))
	if got := unsafe.Sizeof(MqAttr{}); got != want {
		t.Fatalf("sizeof(MqAttr) = %d, want %d (8 longs)", got, want)
	}
	if off := unsafe.Offsetof(MqAttr{}.Curmsgs); off != 3*unsafe.Sizeof(uintptr(0)) {
		t.Fatalf("offsetof(Curmsgs) = %d", off)
	}
}

func TestValidateMqName(t *testing.T) {
	good := []string{"x", "edgeipc.ctl", strings.Repeat("a", 255), "..."}
	for _, n := range good {
		if err := ValidateMqName(n); err != nil {
			t.Errorf("ValidateMqName(%q) = %v, want nil", n, err)
		}
	}
	bad := []string{"", "/x", "a/b", "x/", ".", "..", strings.Repeat("a", 256), "a\x00b"}
	for _, n := range bad {
		err := ValidateMqName(n)
		if !errors.Is(err, ErrBadMqName) {
			t.Errorf("ValidateMqName(%q) = %v, want ErrBadMqName", n, err)
		}
		if _, err := MqOpen(n, unix.O_RDWR|unix.O_CREAT, 0o600, nil); !errors.Is(err, ErrBadMqName) {
			t.Errorf("MqOpen(%q) = %v, want ErrBadMqName", n, err)
		}
		if err := MqUnlink(n); !errors.Is(err, ErrBadMqName) {
			t.Errorf("MqUnlink(%q) = %v, want ErrBadMqName", n, err)
		}
	}
}

// TestMqLeadingSlashKernel documents the pitfall the validation exists for:
// at the syscall level "/x" is refused by the kernel itself.
func TestMqLeadingSlashKernel(t *testing.T) {
	buf, p, _ := mqName("/edgeipc-sys-slash-" + strconv.Itoa(os.Getpid()))
	fd, e := mqOpen(p, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600, nil)
	runtime.KeepAlive(buf)
	if e == 0 {
		unix.Close(fd)
		t.Fatal("kernel accepted a name with a leading slash")
	}
	if e != unix.EACCES {
		t.Fatalf("mq_open(\"/x\") errno = %v, want EACCES", e)
	}
}

func TestMqRoundTrip(t *testing.T) {
	name := "edgeipc-sys-rt-" + strconv.Itoa(os.Getpid())
	attr := MqAttr{Maxmsg: 4, Msgsize: 64}
	fd, err := MqOpen(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600, &attr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unix.Close(fd)
		MqUnlink(name)
	})

	if _, err := MqOpen(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600, &attr); !errors.Is(err, unix.EEXIST) {
		t.Fatalf("second O_EXCL open: %v, want EEXIST", err)
	}

	var got MqAttr
	if err := MqGetSetAttr(fd, nil, &got); err != nil {
		t.Fatal(err)
	}
	if got.Maxmsg != 4 || got.Msgsize != 64 || got.Curmsgs != 0 || got.Flags != 0 {
		t.Fatalf("attr = %+v", got)
	}

	if err := MqTimedSend(fd, []byte("low"), 1, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := MqTimedSend(fd, []byte("high"), 7, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := MqTimedSend(fd, nil, 0, time.Time{}); err != nil {
		t.Fatal("empty message:", err)
	}
	if err := MqTimedSend(fd, []byte("x"), MqPrioMax, time.Time{}); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("prio %d: %v, want EINVAL", MqPrioMax, err)
	}
	if err := MqGetSetAttr(fd, nil, &got); err != nil || got.Curmsgs != 3 {
		t.Fatalf("curmsgs = %d, %v; want 3", got.Curmsgs, err)
	}

	buf := make([]byte, 64)
	if _, _, err := MqTimedReceive(fd, buf[:63], time.Time{}); !errors.Is(err, unix.EMSGSIZE) {
		t.Fatalf("short buffer: %v, want EMSGSIZE", err)
	}
	for _, want := range []struct {
		s string
		p uint
	}{{"high", 7}, {"low", 1}, {"", 0}} {
		n, prio, err := MqTimedReceive(fd, buf, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if string(buf[:n]) != want.s || prio != want.p {
			t.Fatalf("received %q prio %d, want %q prio %d", buf[:n], prio, want.s, want.p)
		}
	}

	// Empty queue, blocking fd, deadline in the past: ETIMEDOUT, bare errno.
	if _, _, err := MqTimedReceive(fd, buf, time.Now().Add(-time.Second)); err != unix.ETIMEDOUT {
		t.Fatalf("timed receive on empty queue: %v, want ETIMEDOUT", err)
	}

	// Switch to non-blocking: EAGAIN, bare errno.
	if err := MqGetSetAttr(fd, &MqAttr{Flags: unix.O_NONBLOCK}, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := MqTimedReceive(fd, buf, time.Time{}); err != unix.EAGAIN {
		t.Fatalf("non-blocking receive on empty queue: %v, want EAGAIN", err)
	}
	// A deadline past 2038 (the end of a 32-bit time_t) and 2262 (the end
	// of UnixNano) is neither wrapped into an invalid time (EINVAL) nor
	// into the past.
	far := time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, _, err := MqTimedReceive(fd, buf, far); err != unix.EAGAIN {
		t.Fatalf("non-blocking receive with a deadline in 2300: %v, want EAGAIN", err)
	}
	for i := 0; i < 4; i++ {
		if err := MqTimedSend(fd, []byte{byte(i)}, 0, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := MqTimedSend(fd, []byte("over"), 0, time.Time{}); err != unix.EAGAIN {
		t.Fatalf("non-blocking send on full queue: %v, want EAGAIN", err)
	}

	if err := MqUnlink(name); err != nil {
		t.Fatal(err)
	}
	if err := MqUnlink(name); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("second unlink: %v, want ENOENT", err)
	}
	var se *os.SyscallError
	if err := MqUnlink(name); !errors.As(err, &se) || se.Syscall != "mq_unlink" {
		t.Fatalf("errno not wrapped in *os.SyscallError: %#v", err)
	}
}

// TestMqDeadlineAfter2038 waits on an empty queue with deadlines after
// 2038: the receive must block until a message comes (a deadline wrapped
// into the past returns ETIMEDOUT at once, an invalid one EINVAL). On
// 32-bit ports it also checks that the deadline went through the *_time64
// syscalls, the only ones that still work after 2038, where the kernel has
// them (Linux 5.1 and later).
func TestMqDeadlineAfter2038(t *testing.T) {
	name := fmt.Sprintf("edgeipc-test-y2038-%d", os.Getpid())
	fd, err := MqOpen(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600, &MqAttr{Maxmsg: 4, Msgsize: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	defer MqUnlink(name)
	for _, d := range []time.Time{
		time.Date(2038, 1, 19, 3, 14, 8, 0, time.UTC), // the first second a 32-bit time_t cannot hold
		time.Date(2106, 2, 7, 6, 28, 16, 0, time.UTC), // past a 32-bit unsigned time too
		time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC),   // past UnixNano
	} {
		// What the kernel is given is the deadline itself, not a clamp
		// (which, once the clock passes it, times out at once).
		var ts timespec64
		if got := absTimespec64(d, &ts); got.Sec != d.Unix() || got.Nsec != 0 {
			t.Fatalf("deadline %v passed to the kernel as %d.%09d s, want %d", d, got.Sec, got.Nsec, d.Unix())
		}
		type result struct {
			n   int
			err error
		}
		got := make(chan result, 1)
		go func() {
			buf := make([]byte, 64)
			n, _, err := MqTimedReceive(fd, buf, d)
			got <- result{n, err}
		}()
		// The receiver blocks (nothing is queued): it is not back before
		// the message is sent.
		select {
		case r := <-got:
			t.Fatalf("receive with deadline %v on an empty queue returned at once: n=%d err=%v", d, r.n, r.err)
		case <-time.After(50 * time.Millisecond):
		}
		if err := MqTimedSend(fd, []byte("late"), 0, d); err != nil {
			t.Fatalf("send with deadline %v: %v", d, err)
		}
		select {
		case r := <-got:
			if r.err != nil || r.n != 4 {
				t.Fatalf("receive with deadline %v: n=%d err=%v, want the 4-byte message", d, r.n, r.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("receive with deadline %v: no return 10 s after the send", d)
		}
	}
	if mqTime64Missing() {
		var u unix.Utsname
		_ = unix.Uname(&u)
		rel := unix.ByteSliceToString(u.Release[:])
		var major, minor int
		fmt.Sscanf(rel, "%d.%d", &major, &minor)
		if major > 5 || major == 5 && minor >= 1 {
			t.Fatalf("kernel %s has mq_timedsend_time64 (Linux 5.1), but the call returned ENOSYS: deadlines after 2038 are clamped", rel)
		}
		t.Logf("kernel %s has no *_time64 mq syscalls: deadlines are clamped to 2038", rel)
	}
}

func TestMqBadFd(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "notmq")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var a MqAttr
	// A regular file is not a queue: the kernel says EBADF.
	sc, _ := f.SyscallConn()
	var gerr error
	sc.Control(func(fd uintptr) { gerr = MqGetSetAttr(int(fd), nil, &a) })
	if !errors.Is(gerr, unix.EBADF) {
		t.Fatalf("mq_getsetattr on a regular file: %v, want EBADF", gerr)
	}
}
