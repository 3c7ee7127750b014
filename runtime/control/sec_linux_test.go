package control

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/internal/mq"
	"github.com/edgeipc/edgeipc/internal/racer"
	"github.com/edgeipc/edgeipc/internal/sys"
)

// queueIno returns the inode of the queue that name refers to now.
func queueIno(t *testing.T, name string) uint64 {
	t.Helper()
	fd, err := sys.MqOpen(name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0, nil)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestCloseKeepsSuccessorsQueue: a server that was taken over (its name
// unlinked and created again by another runtime) must not unlink the
// successor's queue when it closes, whether or not /dev/mqueue is mounted
// (queues work without the mount; only listing needs it). Before the fix
// the inode check went through /dev/mqueue and, without the mount, Close
// unlinked whatever queue had the name.
func TestCloseKeepsSuccessorsQueue(t *testing.T) {
	name := testQueue(t)
	s, err := NewServer(newFake(), ServerOptions{Queue: name})
	if err != nil {
		t.Fatal(err)
	}
	// What a takeover does: unlink the name and create a new queue.
	if err := mq.Unlink(name); err != nil {
		t.Fatal(err)
	}
	succ, err := mq.Create(name, mq.Options{MaxMsg: 2, MsgSize: RequestMsgSize, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer succ.Close()
	want := queueIno(t, name)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := queueIno(t, name); got != want {
		t.Fatalf("name refers to inode %d, want the successor's %d", got, want)
	}

	// A server whose queue still has its name removes it on Close.
	name2 := testQueue(t)
	s2, err := NewServer(newFake(), ServerOptions{Queue: name2})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if fd, err := sys.MqOpen(name2, unix.O_RDONLY|unix.O_CLOEXEC, 0, nil); err == nil {
		unix.Close(fd)
		t.Fatalf("%s still exists after Close", name2)
	}
}

const childEnv = "EDGEIPC_CONTROL_TEST_CHILD"

// childDialAs drops to uid 65533 whose only group is $DIAL_GID, dials the
// request queue $DIAL_QUEUE and prints the mode and gid of its reply queue.
func childDialAs() int {
	gid, _ := strconv.Atoi(os.Getenv("DIAL_GID"))
	if !racer.BecomeUser(65533, 65533, []int{gid}) {
		return 3
	}
	c, err := Dial(os.Getenv("DIAL_QUEUE"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		return 4
	}
	defer c.Close()
	fi, err := c.reply.Stat()
	if err != nil {
		fmt.Fprintln(os.Stderr, "stat:", err)
		return 5
	}
	fmt.Printf("%#o %d\n", uint32(fi.Mode().Perm()), fi.Sys().(*syscall.Stat_t).Gid)
	return 0
}

// TestDialGroupReplyQueue: a client that is not the request queue's owner
// creates its reply queue 0620 in the request queue's group (0620 or
// 0660), so that a runtime of another user can answer (docs/control.md),
// also when /dev/mqueue is not mounted, and the group's other members
// cannot read the replies. Before the fix the owner was read through
// /dev/mqueue only; without the mount the reply queue was 0600 and a
// non-root runtime could not answer. Later, the reply queue was 0660, and
// every member of the group could read every other member's replies.
func TestDialGroupReplyQueue(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the client as another uid")
	}
	const gid = 4243
	for _, mode := range []os.FileMode{0o620, 0o660} {
		name := testQueue(t)
		q, err := mq.Create(name, mq.Options{MaxMsg: 2, MsgSize: RequestMsgSize, Mode: mode, Group: gid, Exclusive: true})
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"=dial-as", "DIAL_QUEUE="+name, "DIAL_GID="+strconv.Itoa(gid))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("client: %v", err)
		}
		if got, want := strings.TrimSpace(string(out)), fmt.Sprintf("0620 %d", gid); got != want {
			t.Fatalf("request queue %#o: reply queue mode and gid %q, want %q", uint32(mode), got, want)
		}
	}
}

// memberUID is nobody on Debian, whose primary group nogroup (65534) the
// user database lists: the server's reply-queue check (uidInGroup) looks
// the owner up there.
const memberUID = 65534

// childMember becomes uid memberUID in group 65534 and, as a member of a
// runtime's [control] group, calls status on $DIAL_QUEUE. It prints the
// mode of its reply queue, what a read-only open of the request queue
// returned (a member that may receive could take other members' requests
// off the queue), and whether mq.Locked and mq.Ino, which open the queue
// without sending, work for a member that may only send.
func childMember() int {
	if !racer.BecomeUser(memberUID, 65534, []int{65534}) {
		return 3
	}
	name := os.Getenv("DIAL_QUEUE")
	c, err := Dial(name)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		return 4
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r, err := c.Call(ctx, "status"); err != nil || !r.OK {
		fmt.Fprintf(os.Stderr, "status: %v %+v\n", err, r)
		return 5
	}
	fi, err := c.reply.Stat()
	if err != nil {
		fmt.Fprintln(os.Stderr, "stat:", err)
		return 6
	}
	fmt.Printf("reply %#o\n", uint32(fi.Mode().Perm()))
	if q, err := mq.Open(name, os.O_RDONLY); err != nil {
		fmt.Println("receive:", errors.Unwrap(errors.Unwrap(err)))
	} else {
		q.Close()
		fmt.Println("receive: opened")
	}
	locked, err := mq.Locked(name)
	fmt.Println("locked:", locked, err)
	ino, err := mq.Ino(name)
	fmt.Println("ino:", ino, err)
	return 0
}

// TestGroupMemberMaySendNotReceive: a runtime given a [control] group and
// no mode creates its request queue 0620. A member calls status (its
// reply queue 0620 in that group), and cannot open the request queue to
// receive, which would let it take other members' requests. mq.Locked and
// mq.Ino open the queue write-only where they may not read it, so the
// member still tells a served queue from a stale one and notices a
// runtime that was restarted. Before, the queue was 0660; with 0620 and
// the read-only opens, both failed with EACCES.
func TestGroupMemberMaySendNotReceive(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the client as another uid")
	}
	if _, err := user.LookupId(strconv.Itoa(memberUID)); err != nil {
		t.Fatalf("the test needs uid %d (nobody) in the user database, the owner of its reply queue: %v", memberUID, err)
	}
	name := testQueue(t)
	s, err := NewServer(newFake(), ServerOptions{Queue: name, Group: "65534"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { defer close(served); s.Serve(ctx) }()
	defer func() { cancel(); <-served; s.Close() }()
	if st, err := s.q.Stat(); err != nil || st.Mode().Perm() != 0o620 || st.Sys().(*syscall.Stat_t).Gid != 65534 {
		t.Fatalf("request queue with group 65534 and no mode: %v, %v; want mode 0620, gid 65534", st.Mode().Perm(), err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=member", "DIAL_QUEUE="+name)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("member: %v", err)
	}
	want := fmt.Sprintf("reply 0620\nreceive: permission denied\nlocked: true <nil>\nino: %d <nil>", queueIno(t, name))
	if got := strings.TrimSpace(string(out)); got != want {
		t.Fatalf("member of the control group:\n%s\nwant:\n%s", got, want)
	}
}

// TestDialGroupZeroReplyQueue: with the request queue in group 0 (a root
// runtime with mode 0660 and no group, or group "root"), a client must not
// create its reply queue 0660 in its own primary group, which shares the
// replies (and the right to forge them) with everyone in that group. The
// mq package cannot give a new queue gid 0, so the reply queue stays 0600
// (a root runtime answers anyway). Before the fix it was 0660 in the
// client's primary group.
func TestDialGroupZeroReplyQueue(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the client as another uid")
	}
	name := testQueue(t)
	q, err := mq.Create(name, mq.Options{MaxMsg: 2, MsgSize: RequestMsgSize, Mode: 0o660, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if fi, err := q.Stat(); err != nil || fi.Sys().(*syscall.Stat_t).Gid != 0 {
		t.Skipf("request queue not in group 0 (egid %d): %v", os.Getegid(), err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=dial-as", "DIAL_QUEUE="+name, "DIAL_GID=0")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != "0600 65533" {
		t.Fatalf("reply queue mode and gid %q, want \"0600 65533\"", got)
	}
}

// TestServerGroupZeroRefused: a runtime whose group is not root cannot give
// its request queue gid 0 (mq keeps the creator's group instead), so asking
// for group 0 is refused rather than leaving the queue in the runtime's own
// group, where the kernel and the server's own check would disagree.
func TestServerGroupZeroRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch the effective group")
	}
	if err := syscall.Setegid(65534); err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(newFake(), ServerOptions{Queue: testQueue(t), Group: "0"})
	if rerr := syscall.Setegid(0); rerr != nil {
		t.Fatal(rerr)
	}
	if err == nil {
		s.Close()
		t.Fatal("NewServer with group 0 as gid 65534: no error")
	}
	if !strings.Contains(err.Error(), "gid 0") || !strings.Contains(err.Error(), "choose another group") {
		t.Fatalf("NewServer with group 0 as gid 65534: %v", err)
	}
}

// rlimitUID is a uid no other test uses: its queues are the only ones
// charged to its RLIMIT_MSGQUEUE account.
const rlimitUID = 64999

// childSmallRlimit becomes uid rlimitUID with an RLIMIT_MSGQUEUE of
// 40000 bytes, serves $DIAL_QUEUE (a 10×1024 request queue, about 11 KB)
// and calls status and sources through Dial, as one more `edgeipc ctl`
// does while others of the same user run. It prints the reply queue's
// message size and the number of sources.
func childSmallRlimit() int {
	if !racer.BecomeUser(rlimitUID, rlimitUID, nil) {
		return 3
	}
	if err := unix.Setrlimit(unix.RLIMIT_MSGQUEUE, &unix.Rlimit{Cur: 40000, Max: 40000}); err != nil {
		fmt.Fprintln(os.Stderr, "setrlimit:", err)
		return 3
	}
	s, ctx, stop := serveDialQueue()
	if s == nil {
		return 4
	}
	defer stop()
	c, err := Dial(s.Name())
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		return 5
	}
	defer c.Close()
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	defer ccancel()
	for _, cmd := range []string{"status", "sources"} {
		r, err := c.Call(cctx, cmd)
		if err != nil || !r.OK {
			fmt.Fprintf(os.Stderr, "%s: %v %+v\n", cmd, err, r)
			return 6
		}
		if cmd == "sources" {
			fmt.Printf("%d %d\n", c.reply.MsgSize(), len(r.Sources))
		}
	}
	return 0
}

// TestDialNearRlimitMsgqueue: each reply queue reserves about 81 KB of
// the user's RLIMIT_MSGQUEUE (819200 bytes by default, root included), so
// the tenth `edgeipc ctl` of one user running at the same time failed
// ("cannot create reply queue: ... RLIMIT_MSGQUEUE"). Dial now halves the
// reply queue's message size (down to 1024 bytes) while that limit
// refuses it: with 40000 bytes, of which the request queue takes about
// 11 KB, the client gets a 2048-byte reply queue and its calls are
// answered.
func TestDialNearRlimitMsgqueue(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the server and client as a uid of their own")
	}
	name := testQueue(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=small-rlimit", "DIAL_QUEUE="+name)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != "2048 2" {
		t.Fatalf("child printed %q, want \"2048 2\" (reply message size, sources)", got)
	}
}

// TestDialPermissionDeniedNamesOwnerOrMount: a user who may not send to
// the request queue (0600, another owner) is told so, with the queue's
// owner when /dev/mqueue is mounted, and otherwise that it is not mounted.
// Before the fix, without the mount, the message said "stat
// /dev/mqueue/NAME: no such file or directory" about a queue that exists.
func TestDialPermissionDeniedNamesOwnerOrMount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the client as another uid")
	}
	name := testQueue(t)
	q, err := mq.Create(name, mq.Options{MaxMsg: 2, MsgSize: RequestMsgSize, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=dial-as", "DIAL_QUEUE="+name, "DIAL_GID=65533")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil {
		t.Fatalf("uid 65533 dialed a 0600 queue of root")
	}
	msg := stderr.String()
	want := "owner uid 0, gid 0, mode 0600"
	if _, lerr := mq.List(); errors.Is(lerr, mq.ErrNotMounted) {
		want = "/dev/mqueue is not mounted"
	}
	if !strings.Contains(msg, "permission denied") || !strings.Contains(msg, want) || strings.Contains(msg, "no such file") {
		t.Fatalf("dial as uid 65533: %q; want permission denied and %q", msg, want)
	}
}

// serviceUID is the uid childServeAs runs a server as, the way a runtime
// runs as a service user (systemd User=).
const serviceUID = 64998

// childServeAs becomes uid and gid serviceUID, serves $DIAL_QUEUE, prints
// "ready" and serves until its stdin is closed.
func childServeAs() int {
	if !racer.BecomeUser(serviceUID, serviceUID, nil) {
		return 3
	}
	_, _, stop := serveDialQueue()
	if stop == nil {
		return 4
	}
	defer stop()
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// TestRootClientOfServiceUserRuntime: root (sudo edgeipc ctl) talks to a
// runtime that runs as a service user with the default 0600 request queue.
// Root's reply queue is handed to the runtime's uid (still 0600, so no one
// else can read it), which the runtime may write to. Before the fix it
// stayed 0600 owned by root, the runtime's open failed with EACCES, every
// reply was dropped, and root's ctl said only that no reply came.
func TestRootClientOfServiceUserRuntime(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the server as another uid")
	}
	name := testQueue(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=serve-as", "DIAL_QUEUE="+name)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("server: %v", err)
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("server as uid %d: %q, %v", serviceUID, line, err)
	}
	c := dial(t, name)
	fi, err := c.reply.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != serviceUID || fi.Mode().Perm() != 0o600 {
		t.Errorf("root's reply queue: uid %d, mode %#o; want uid %d, 0600", st.Uid, uint32(fi.Mode().Perm()), serviceUID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.Call(ctx, "status")
	if err != nil || !r.OK || r.Status == nil || r.Status.ReplyFailures != 0 {
		t.Fatalf("root's status to a runtime of uid %d: %v, %+v", serviceUID, err, r)
	}
}

// serveDialQueue serves $DIAL_QUEUE with a fake runtime, logging to
// stderr, until stop; on failure it says why on stderr and returns nils.
func serveDialQueue() (s *Server, ctx context.Context, stop func()) {
	s, err := NewServer(newFake(), ServerOptions{Queue: os.Getenv("DIAL_QUEUE"), Logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }})
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		return nil, nil, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	go s.Serve(ctx)
	return s, ctx, func() { cancel(); s.Close() }
}
