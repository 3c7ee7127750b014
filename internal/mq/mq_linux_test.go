package mq

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/internal/qemuwatch"
	"github.com/edgeipc/edgeipc/internal/sys"
	"github.com/edgeipc/edgeipc/internal/testenv"
)

// guard bounds every wait in these tests: it catches a deadlock, it is not
// a statement about speed.
const guard = 60 * time.Second

const (
	childEnv     = "EDGEIPC_MQ_TEST_CHILD"
	childNameEnv = "EDGEIPC_MQ_TEST_NAME"
	childCount   = 200
)

func TestMain(m *testing.M) {
	qemuwatch.Start() // a qemu-user fork deadlock fails fast instead of hanging
	switch os.Getenv(childEnv) {
	case "send":
		os.Exit(childSend(os.Getenv(childNameEnv)))
	case "open-racer":
		os.Exit(childOpenRacer(os.Getenv(childNameEnv)))
	}
	os.Exit(testenv.Run(m)) // fails on leaked queue descriptors
}

// childSend runs in a re-executed test binary: it opens the parent's queue
// write-only and sends childCount numbered messages, blocking when full.
func childSend(name string) int {
	q, err := Open(name, os.O_WRONLY)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 3
	}
	defer q.Close()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	for i := 0; i < childCount; i++ {
		if err := q.Send(ctx, []byte("msg "+strconv.Itoa(i)), 0); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 4
		}
	}
	return 0
}

var nameSeq struct {
	sync.Mutex
	n int
}

// qname returns a queue name unique to this process and test, and unlinks
// it when the test ends.
func qname(t *testing.T) string {
	t.Helper()
	nameSeq.Lock()
	nameSeq.n++
	n := nameSeq.n
	nameSeq.Unlock()
	base := strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' {
			return '_'
		}
		return r
	}, t.Name())
	name := fmt.Sprintf("edgeipc-test-%d-%d-%s", os.Getpid(), n, base)
	if len(name) > sys.MqNameMax {
		name = name[:sys.MqNameMax]
	}
	t.Cleanup(func() { Unlink(name) })
	return name
}

func create(t *testing.T, opts Options) *Queue {
	t.Helper()
	q, err := Create(qname(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func TestRoundTrip(t *testing.T) {
	q := create(t, Options{MaxMsg: 4, MsgSize: 128, Exclusive: true})
	if q.MaxMsg() != 4 || q.MsgSize() != 128 {
		t.Fatalf("MaxMsg/MsgSize = %d/%d, want 4/128", q.MaxMsg(), q.MsgSize())
	}
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()

	r, err := Open(q.Name(), os.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	if err := q.Send(ctx, []byte("hello"), 3); err != nil {
		t.Fatal(err)
	}
	a, err := q.Attr()
	if err != nil || a != (Attr{MaxMsg: 4, MsgSize: 128, CurMsgs: 1}) {
		t.Fatalf("Attr = %+v, %v", a, err)
	}
	buf := make([]byte, r.MsgSize())
	n, prio, err := r.Receive(ctx, buf)
	if err != nil {
		t.Fatal(err)
	}
	if string(buf[:n]) != "hello" || prio != 3 {
		t.Fatalf("got %q prio %d, want \"hello\" prio 3", buf[:n], prio)
	}

	// Message boundaries and sizes are checked before the kernel sees them.
	if err := q.Send(ctx, make([]byte, 129), 0); !errors.Is(err, unix.EMSGSIZE) {
		t.Fatalf("oversized Send: %v, want EMSGSIZE", err)
	}
	if _, _, err := r.Receive(ctx, buf[:127]); !errors.Is(err, unix.EMSGSIZE) {
		t.Fatalf("short buffer Receive: %v, want EMSGSIZE", err)
	}
	if err := q.Send(ctx, nil, PrioMax); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("prio PrioMax: %v, want EINVAL", err)
	}
	// A read-only queue cannot send.
	if err := r.TrySend([]byte("x"), 0); !errors.Is(err, unix.EBADF) {
		t.Fatalf("TrySend on O_RDONLY queue: %v, want EBADF", err)
	}
	if _, err := Open(q.Name(), os.O_RDWR|os.O_CREATE); err == nil {
		t.Fatal("Open accepted O_CREATE")
	}
}

func TestPriorityOrder(t *testing.T) {
	q := create(t, Options{MaxMsg: 8, MsgSize: 16})
	in := []struct {
		s string
		p uint
	}{{"a0", 0}, {"b5", 5}, {"c1", 1}, {"d5", 5}, {"e9", 9}, {"f0", 0}}
	for _, m := range in {
		if err := q.TrySend([]byte(m.s), m.p); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"e9", "b5", "d5", "c1", "a0", "f0"} // highest first, FIFO within a priority
	buf := make([]byte, 16)
	for i, w := range want {
		n, prio, err := q.Receive(context.Background(), buf)
		if err != nil {
			t.Fatal(err)
		}
		if string(buf[:n]) != w || strconv.Itoa(int(prio)) != w[1:] {
			t.Fatalf("message %d: got %q prio %d, want %q", i, buf[:n], prio, w)
		}
	}
}

func TestTryEmptyFull(t *testing.T) {
	q := create(t, Options{MaxMsg: 2, MsgSize: 8})
	buf := make([]byte, 8)
	if _, _, err := q.TryReceive(buf); err != ErrWouldBlock {
		t.Fatalf("TryReceive on empty queue: %v, want ErrWouldBlock", err)
	}
	for i := 0; i < 2; i++ {
		if err := q.TrySend([]byte{byte(i)}, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.TrySend([]byte{9}, 0); err != ErrWouldBlock {
		t.Fatalf("TrySend on full queue: %v, want ErrWouldBlock", err)
	}
	n, _, err := q.TryReceive(buf)
	if err != nil || n != 1 || buf[0] != 0 {
		t.Fatalf("TryReceive = %d %v %v", n, buf[:n], err)
	}
	if err := q.TrySend([]byte{2}, 0); err != nil {
		t.Fatalf("TrySend after making room: %v", err)
	}
}

// wait returns what errc delivers, failing the test if nothing arrives
// within guard (a deadlock, not slowness).
func wait(t *testing.T, errc <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(guard):
		t.Fatalf("%s did not return within %v", what, guard)
		return nil
	}
}

// settle gives a goroutine a chance to park in the netpoller, so the tests
// exercise the waiting path. Correctness does not depend on it.
func settle() { time.Sleep(50 * time.Millisecond) }

func TestReceiveCancel(t *testing.T) {
	q := create(t, Options{MaxMsg: 2, MsgSize: 8})
	buf := make([]byte, 8)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, _, err := q.Receive(ctx, buf)
		errc <- err
	}()
	settle()
	cancel()
	if err := wait(t, errc, "Receive after cancel"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Receive after cancel: %v, want context.Canceled", err)
	}

	// The cancellation must not leak into the next call.
	if err := q.TrySend([]byte("next"), 0); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), guard)
	defer cancel2()
	n, _, err := q.Receive(ctx2, buf)
	if err != nil || string(buf[:n]) != "next" {
		t.Fatalf("Receive after a cancelled Receive: %q, %v", buf[:n], err)
	}
	// Already-cancelled context: no wait at all.
	if _, _, err := q.Receive(ctx, buf); !errors.Is(err, context.Canceled) {
		t.Fatalf("Receive with cancelled ctx: %v", err)
	}
}

func TestReceiveDeadline(t *testing.T) {
	q := create(t, Options{MaxMsg: 2, MsgSize: 8})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, _, err := q.Receive(ctx, make([]byte, 8))
		errc <- err
	}()
	if err := wait(t, errc, "Receive with deadline"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Receive past deadline: %v, want context.DeadlineExceeded", err)
	}
}

func TestSendCancel(t *testing.T) {
	q := create(t, Options{MaxMsg: 1, MsgSize: 8})
	if err := q.TrySend([]byte("full"), 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- q.Send(ctx, []byte("blocked"), 0) }()
	settle()
	cancel()
	if err := wait(t, errc, "Send after cancel"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Send after cancel: %v, want context.Canceled", err)
	}
	// The queue still holds only the first message, and works.
	buf := make([]byte, 8)
	n, _, err := q.TryReceive(buf)
	if err != nil || string(buf[:n]) != "full" {
		t.Fatalf("TryReceive: %q %v", buf[:n], err)
	}
	if _, _, err := q.TryReceive(buf); err != ErrWouldBlock {
		t.Fatalf("cancelled Send delivered its message anyway: %v", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), guard)
	defer cancel2()
	if err := q.Send(ctx2, []byte("after"), 0); err != nil {
		t.Fatalf("Send after a cancelled Send: %v", err)
	}
}

// A blocked Send is woken by a Receive in another goroutine.
func TestSendWakesOnRoom(t *testing.T) {
	q := create(t, Options{MaxMsg: 1, MsgSize: 8})
	if err := q.TrySend([]byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- q.Send(ctx, []byte("2"), 0) }()
	settle()
	buf := make([]byte, 8)
	if n, _, err := q.TryReceive(buf); err != nil || string(buf[:n]) != "1" {
		t.Fatalf("TryReceive: %q %v", buf[:n], err)
	}
	if err := wait(t, errc, "blocked Send"); err != nil {
		t.Fatal(err)
	}
	if n, _, err := q.Receive(ctx, buf); err != nil || string(buf[:n]) != "2" {
		t.Fatalf("Receive: %q %v", buf[:n], err)
	}
}

// Several receivers wait at once; cancelling one does not disturb the
// others, which each get one message.
func TestConcurrentReceivers(t *testing.T) {
	q := create(t, Options{MaxMsg: 4, MsgSize: 8})
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	cctx, ccancel := context.WithCancel(ctx)

	type res struct {
		s   string
		err error
	}
	got := make(chan res, 3)
	recv := func(c context.Context) {
		buf := make([]byte, 8)
		n, _, err := q.Receive(c, buf)
		got <- res{string(buf[:n]), err}
	}
	go recv(ctx)
	go recv(cctx)
	go recv(ctx)
	settle()
	ccancel()
	first := <-got
	if !errors.Is(first.err, context.Canceled) {
		t.Fatalf("first result %+v, want the cancelled receiver", first)
	}
	q.TrySend([]byte("x"), 0)
	q.TrySend([]byte("y"), 0)
	seen := map[string]bool{}
	for i := 0; i < 2; i++ {
		select {
		case r := <-got:
			if r.err != nil {
				t.Fatal(r.err)
			}
			seen[r.s] = true
		case <-time.After(guard):
			t.Fatal("receivers did not get the messages")
		}
	}
	if !seen["x"] || !seen["y"] {
		t.Fatalf("received %v, want x and y", seen)
	}
}

func TestCloseUnblocksSend(t *testing.T) {
	q := create(t, Options{MaxMsg: 1, MsgSize: 8})
	if err := q.TrySend([]byte("full"), 0); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- q.Send(context.Background(), []byte("blocked"), 0) }()
	settle()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, errc, "Send after Close"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close: %v, want ErrClosed", err)
	}

	// Everything on a closed queue reports ErrClosed.
	if _, _, err := q.TryReceive(make([]byte, 8)); !errors.Is(err, ErrClosed) {
		t.Fatalf("TryReceive after Close: %v", err)
	}
	if _, _, err := q.Receive(context.Background(), make([]byte, 8)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Receive after Close: %v", err)
	}
	if err := q.TrySend([]byte("x"), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("TrySend after Close: %v", err)
	}
	if _, err := q.Attr(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Attr after Close: %v", err)
	}
	if err := q.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
}

// A Receive that is definitely parked when Close comes.
func TestCloseUnblocksParkedReceive(t *testing.T) {
	q := create(t, Options{MaxMsg: 1, MsgSize: 8})
	errc := make(chan error, 1)
	go func() {
		_, _, err := q.Receive(context.Background(), make([]byte, 8))
		errc <- err
	}()
	settle()
	q.Close()
	if err := wait(t, errc, "Receive after Close"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Receive after Close: %v, want ErrClosed", err)
	}
}

func fstatMode(t *testing.T, q *Queue) (os.FileMode, int) {
	t.Helper()
	var st unix.Stat_t
	var serr error
	if err := q.rc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	return os.FileMode(st.Mode & 0o7777), int(st.Gid)
}

// mqueueDir returns a directory where this IPC namespace's mqueue file
// system is mounted: /dev/mqueue, or a temporary mount if we may mount.
func mqueueDir(t *testing.T) string {
	t.Helper()
	var st unix.Statfs_t
	if unix.Statfs(MountDir, &st) == nil && int64(st.Type) == sys.MqueueMagic {
		return MountDir
	}
	dir := t.TempDir()
	if err := unix.Mount("mqueue", dir, "mqueue", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		t.Skipf("%s is not mounted and mounting mqueue on a temp dir failed (%v): run `mkdir -p /dev/mqueue && mount -t mqueue mqueue /dev/mqueue`, or run the tests as root", MountDir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

func TestModeExactWhateverUmask(t *testing.T) {
	dir := mqueueDir(t)
	for _, c := range []struct {
		umask int
		mode  os.FileMode
	}{
		{0, 0},         // default 0600 must not be widened by umask 0
		{0, 0o600},     // explicit
		{0o077, 0o660}, // 0660 must not be narrowed by a strict umask
		{0o022, 0o660},
		{0o077, 0o620}, // the group may send only
		{0, 0o620},
	} {
		old := syscall.Umask(c.umask)
		q, err := Create(qname(t), Options{Mode: c.mode, Exclusive: true})
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		want := c.mode
		if want == 0 {
			want = 0o600
		}
		if got, _ := fstatMode(t, q); got != want {
			t.Errorf("umask %#o mode %#o: fstat mode %#o, want %#o", c.umask, c.mode, got, want)
		}
		fi, err := os.Stat(filepath.Join(dir, q.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode(); got != want {
			t.Errorf("umask %#o mode %#o: stat %s shows %v, want %v", c.umask, c.mode, filepath.Join(dir, q.Name()), got, want)
		}
		q.Close()
	}
	for _, bad := range []os.FileMode{0o640, 0o644, 0o666, 0o700, 0o777} {
		if _, err := Create(qname(t), Options{Mode: bad}); err == nil {
			t.Errorf("mode %#o accepted", bad)
		}
	}
}

func TestGroup(t *testing.T) {
	gid := 4242
	if os.Geteuid() != 0 {
		gid = -1
		groups, _ := os.Getgroups()
		for _, g := range groups {
			if g > 0 && g != os.Getegid() {
				gid = g
				break
			}
		}
		if gid < 0 {
			t.Skip("not root and no supplementary group to fchown to: run as root or as a member of a second group")
		}
	}
	q := create(t, Options{Mode: 0o660, Group: gid, Exclusive: true})
	mode, g := fstatMode(t, q)
	if g != gid || mode != 0o660 {
		t.Fatalf("gid %d mode %#o, want gid %d mode 0660", g, mode, gid)
	}
	q2 := create(t, Options{Group: -1})
	if _, g := fstatMode(t, q2); g != os.Getegid() {
		t.Fatalf("Group -1: gid %d, want egid %d", g, os.Getegid())
	}
}

func TestExclusive(t *testing.T) {
	q := create(t, Options{MaxMsg: 3, MsgSize: 32, Exclusive: true})
	if _, err := Create(q.Name(), Options{Exclusive: true}); !errors.Is(err, os.ErrExist) {
		t.Fatalf("second exclusive Create: %v, want an error matching os.ErrExist", err)
	}
	// Without Exclusive the existing queue is opened as it is.
	q2, err := Create(q.Name(), Options{MaxMsg: 5, MsgSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	if q2.MaxMsg() != 3 || q2.MsgSize() != 32 {
		t.Fatalf("reopened queue has %d/%d, want the original 3/32", q2.MaxMsg(), q2.MsgSize())
	}
	if err := q2.TrySend([]byte("shared"), 0); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 32)
	if n, _, err := q.TryReceive(buf); err != nil || string(buf[:n]) != "shared" {
		t.Fatalf("TryReceive: %q %v", buf[:n], err)
	}
}

func TestBadNames(t *testing.T) {
	for _, n := range []string{"", "/edgeipc.ctl", "a/b", ".", "..", strings.Repeat("x", 256)} {
		if _, err := Create(n, Options{}); !errors.Is(err, sys.ErrBadMqName) {
			t.Errorf("Create(%q): %v, want ErrBadMqName", n, err)
		}
		if _, err := Open(n, os.O_RDWR); !errors.Is(err, sys.ErrBadMqName) {
			t.Errorf("Open(%q): %v, want ErrBadMqName", n, err)
		}
		if err := Unlink(n); !errors.Is(err, sys.ErrBadMqName) {
			t.Errorf("Unlink(%q): %v, want ErrBadMqName", n, err)
		}
	}
	if _, err := Open("edgeipc-test-does-not-exist-"+strconv.Itoa(os.Getpid()), os.O_RDONLY); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open of a missing queue: %v, want os.ErrNotExist", err)
	}
}

func hasCapSysResource(t *testing.T) bool {
	ok, err := sys.HasCapability(unix.CAP_SYS_RESOURCE)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestLimitMsgMaxReal(t *testing.T) {
	lim, err := ReadLimits()
	if err != nil {
		t.Fatal(err)
	}
	if hasCapSysResource(t) {
		t.Skip("process has CAP_SYS_RESOURCE, so the kernel ignores msg_max: run without it (e.g. `capsh --drop=cap_sys_resource -- -c 'go test ...'`)")
	}
	want := lim.MsgMax + 1
	_, err = Create(qname(t), Options{MaxMsg: int(want), MsgSize: 16})
	var le *LimitError
	if !errors.As(err, &le) {
		t.Fatalf("Create with maxmsg %d > msg_max %d: %v, want *LimitError", want, lim.MsgMax, err)
	}
	if le.Limit != LimitMsgMax || le.Max != lim.MsgMax || le.Requested != want {
		t.Fatalf("LimitError %+v", le)
	}
	msg := err.Error()
	for _, s := range []string{
		fmt.Sprintf("requested maxmsg %d > /proc/sys/fs/mqueue/msg_max %d", want, lim.MsgMax),
		fmt.Sprintf("sysctl fs.mqueue.msg_max=%d", want),
		"lower the queue depth",
	} {
		if !strings.Contains(msg, s) {
			t.Errorf("error %q does not contain %q", msg, s)
		}
	}
	if !errors.Is(err, unix.EINVAL) {
		t.Errorf("error does not unwrap to EINVAL: %v", err)
	}
}

// RLIMIT_MSGQUEUE applies to root too (no capability bypasses it).
func TestLimitRlimitReal(t *testing.T) {
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MSGQUEUE, &old); err != nil {
		t.Fatal(err)
	}
	low := old
	low.Cur = 4096
	if err := unix.Setrlimit(unix.RLIMIT_MSGQUEUE, &low); err != nil {
		t.Fatal(err)
	}
	_, err := Create(qname(t), Options{MaxMsg: 8, MsgSize: 1024})
	if err2 := unix.Setrlimit(unix.RLIMIT_MSGQUEUE, &old); err2 != nil {
		t.Fatal(err2)
	}
	var le *LimitError
	if !errors.As(err, &le) || le.Limit != LimitRlimitBytes || le.Max != 4096 {
		t.Fatalf("Create over RLIMIT_MSGQUEUE: %v, want *LimitError naming RLIMIT_MSGQUEUE 4096", err)
	}
	if !strings.Contains(err.Error(), "> RLIMIT_MSGQUEUE 4096") || !strings.Contains(err.Error(), "ulimit -q") {
		t.Fatalf("message does not explain the limit: %v", err)
	}
}

// The other diagnoses, fed from fake /proc values.
func TestLimitErrorMessages(t *testing.T) {
	proc := map[string]string{
		"msg_max": "10\n", "msgsize_max": "8192\n", "queues_max": "256\n",
		"msg_default": "10\n", "msgsize_default": "8192\n",
	}
	oldRead, oldRlim := readFile, getrlimit
	t.Cleanup(func() { readFile, getrlimit = oldRead, oldRlim })
	readFile = func(p string) ([]byte, error) {
		v, ok := proc[strings.TrimPrefix(p, ProcDir+"/")]
		if !ok {
			return nil, os.ErrNotExist
		}
		return []byte(v), nil
	}
	getrlimit = func(res int, rl *unix.Rlimit) error {
		rl.Cur, rl.Max = 819200, 819200
		return nil
	}

	cases := []struct {
		attr  *sys.MqAttr
		errno unix.Errno
		limit string
		want  string
	}{
		{&sys.MqAttr{Maxmsg: 64, Msgsize: 100}, unix.EINVAL, LimitMsgMax,
			"requested maxmsg 64 > /proc/sys/fs/mqueue/msg_max 10: raise it with `sysctl fs.mqueue.msg_max=64` or lower the queue depth"},
		{&sys.MqAttr{Maxmsg: 10, Msgsize: 65536}, unix.EINVAL, LimitMsgsizeMax,
			"requested msgsize 65536 > /proc/sys/fs/mqueue/msgsize_max 8192: raise it with `sysctl fs.mqueue.msgsize_max=65536`"},
		{&sys.MqAttr{Maxmsg: 100000, Msgsize: 10}, unix.EINVAL, LimitMsgMax, "kernel hard limit 65536"},
		// No edgeipc command lists or removes queues: the message says how.
		{nil, unix.ENOSPC, LimitQueuesMax, "queues_max 256 queues already exist in this IPC namespace: raise it with `sysctl fs.mqueue.queues_max=272` or remove stale queues (list them with `ls -l /dev/mqueue`"},
		{&sys.MqAttr{Maxmsg: 10, Msgsize: 100000}, unix.EMFILE, LimitRlimitBytes, "> RLIMIT_MSGQUEUE 819200"},
		{&sys.MqAttr{Maxmsg: 2, Msgsize: 10}, unix.EMFILE, LimitRlimitBytes, "RLIMIT_NOFILE"},
	}
	for _, c := range cases {
		err := createError("q", c.attr, os.NewSyscallError("mq_open", c.errno))
		var le *LimitError
		if !errors.As(err, &le) || le.Limit != c.limit {
			t.Errorf("%v %+v: %v, want LimitError %s", c.errno, c.attr, err, c.limit)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %q does not contain %q", c.errno, err, c.want)
		}
		if !errors.Is(err, c.errno) {
			t.Errorf("%v does not unwrap to %v", err, c.errno)
		}
	}
	// An EINVAL no limit accounts for stays a plain OpError.
	err := createError("q", &sys.MqAttr{Maxmsg: 5, Msgsize: 5}, os.NewSyscallError("mq_open", unix.EINVAL))
	var le *LimitError
	if errors.As(err, &le) {
		t.Fatalf("EINVAL within limits reported as a limit: %v", err)
	}
}

// startChild re-executes the test binary in child mode. Without binfmt_misc
// an emulated (qemu-user) binary cannot exec itself; then it is run through
// qemu explicitly if qemu is installed.
func startChild(t *testing.T, name string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	mk := func(path string, args ...string) *exec.Cmd {
		c := exec.Command(path, args...)
		c.Env = append(os.Environ(), childEnv+"=send", childNameEnv+"="+name)
		c.Stderr = os.Stderr
		return c
	}
	cmd := mk(exe, "-test.run=^$")
	err = cmd.Start()
	if errors.Is(err, syscall.ENOEXEC) {
		qemu := map[string]string{"arm": "qemu-arm-static", "arm64": "qemu-aarch64-static"}[runtime.GOARCH]
		path, lerr := exec.LookPath(qemu)
		if qemu == "" || lerr != nil {
			t.Skipf("cannot exec the %s test binary as a child (%v) and no %q: register qemu with binfmt_misc (see PITFALLS.md)", runtime.GOARCH, err, qemu)
		}
		cmd = mk(path, exe, "-test.run=^$")
		err = cmd.Start()
	}
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

func TestCrossProcess(t *testing.T) {
	// A small queue so the child blocks in Send and is woken by our receives.
	q := create(t, Options{MaxMsg: 4, MsgSize: 64, Exclusive: true})
	cmd := startChild(t, q.Name())
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	buf := make([]byte, q.MsgSize())
	for i := 0; i < childCount; i++ {
		n, _, err := q.Receive(ctx, buf)
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("message %d: %v", i, err)
		}
		if want := "msg " + strconv.Itoa(i); string(buf[:n]) != want {
			t.Fatalf("message %d: %q, want %q", i, buf[:n], want)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	if _, _, err := q.TryReceive(buf); err != ErrWouldBlock {
		t.Fatalf("extra message after the child's %d: %v", childCount, err)
	}
}

func TestList(t *testing.T) {
	dir := mqueueDir(t)
	q := create(t, Options{MaxMsg: 3, MsgSize: 16, Mode: 0o660})
	q.TrySend([]byte("a"), 0)
	q.TrySend([]byte("b"), 0)
	infos, err := ListDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range infos {
		if in.Name != q.Name() {
			continue
		}
		if in.Mode != 0o660 || in.UID != os.Geteuid() || in.GID != os.Getegid() ||
			in.MaxMsg != 3 || in.MsgSize != 16 || in.CurMsgs != 2 || in.Err != nil {
			t.Fatalf("Info = %+v", in)
		}
		// Listing did not consume anything.
		if a, _ := q.Attr(); a.CurMsgs != 2 {
			t.Fatalf("CurMsgs after List = %d", a.CurMsgs)
		}
		return
	}
	t.Fatalf("queue %s not in List: %+v", q.Name(), infos)
}

func TestListNotMounted(t *testing.T) {
	dir := t.TempDir()
	if _, err := ListDir(dir); !errors.Is(err, ErrNotMounted) || !strings.Contains(err.Error(), "mount -t mqueue") {
		t.Fatalf("ListDir on a plain dir: %v, want ErrNotMounted with a mount hint", err)
	}
	if _, err := ListDir(filepath.Join(dir, "missing")); !errors.Is(err, ErrNotMounted) {
		t.Fatalf("ListDir on a missing dir: %v, want ErrNotMounted", err)
	}
	// List itself reports the real state of /dev/mqueue either way.
	var st unix.Statfs_t
	mounted := unix.Statfs(MountDir, &st) == nil && int64(st.Type) == sys.MqueueMagic
	if _, err := List(); mounted != (err == nil) || !mounted && !errors.Is(err, ErrNotMounted) {
		t.Fatalf("List with /dev/mqueue mounted=%v: %v", mounted, err)
	}
}
