package sys

import (
	"errors"
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
	// A deadline past what a timespec holds (2038 with 32-bit time_t, 2262
	// for UnixNano) is clamped, not wrapped into an invalid time (EINVAL).
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
