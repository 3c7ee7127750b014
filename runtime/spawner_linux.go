package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/signal"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/internal/sys"
)

// spawner starts, signals and reaps every child of a Runtime from one
// goroutine locked to its OS thread.
//
// Why one locked thread: children are started with PR_SET_PDEATHSIG
// (SysProcAttr.Pdeathsig = SIGKILL) so they die with the runtime even when
// it is SIGKILLed; the kernel sends that signal when the *thread* that
// forked the child exits, not the process. Go may retire an idle OS thread
// at any time, so a child forked from an ordinary goroutine could be killed
// spuriously. The spawner goroutine calls runtime.LockOSThread and never
// unlocks: its thread lives exactly as long as the goroutine, which lives
// until the Runtime has reaped its last child.
//
// Why signals go through it too: os.Process (Go ≥ 1.23 on Linux ≥ 5.4)
// holds a pidfd and uses it for Signal and Wait, so a signal can never hit a
// recycled PID. Process-group signals (kill(-pgid)) have no pidfd form; they
// are sent only from this goroutine and only while the group leader is
// known not to be reaped (it is reaped only here): its pid, which is the
// group id, cannot have been recycled. A signal goes to the group, which
// holds the child; through the pidfd only to a child that has moved to
// another group, so that no process gets one signal twice.
//
// Process groups: each child leads its own group, and the group is what
// gets stopped. When the leader exits while other processes of its group
// still run (a shell's background job, a helper that ignores SIGTERM), the
// leader is left a zombie — which keeps the group id reserved — and the
// group is sent SIGTERM, then SIGKILL once stop_timeout has passed since
// the first SIGTERM; the leader is reaped, and its exit reported, only once
// no live process is left in the group. A process that leaves the group
// (setsid, setpgid) is not followed.
//
// Reaping: on SIGCHLD (and every 2 s as a safety net, every drainPoll
// while a group drains, since its other members are not our children and
// send us no SIGCHLD) each child is checked with
// waitid(P_PIDFD, WEXITED|WNOHANG|WNOWAIT) through os.Process.WithHandle,
// then reaped with Process.Wait, which returns at once. No goroutine or
// thread sits in a blocking wait per child.
type spawner struct {
	reqs     chan func()
	children map[*os.Process]*spawned
	quitc    chan struct{}
	done     chan struct{}
	// released is closed when quit may return with children left (see
	// loop): the loop goes on until it has reaped them.
	released chan struct{}
	logf     func(format string, args ...any)
}

// spawned is the spawner's record of one child.
type spawned struct {
	exit        chan<- exitResult
	name        string        // for the log
	stopTimeout time.Duration // SIGTERM to SIGKILL of the group
	termAt      time.Time     // when the group was first sent SIGTERM
	killed      bool          // the group was sent SIGKILL
	killAt      time.Time     // when the group was first sent SIGKILL
	stuckNoted  bool          // the log says what outlived the SIGKILL
	exited      bool          // the leader has exited: a zombie until reaped
}

// drainPoll is how often a group whose leader has exited is checked for
// live members.
const drainPoll = 50 * time.Millisecond

// quitGrace bounds how long quit waits for children it SIGKILLed.
const quitGrace = 4 * drainPoll

type exitResult struct {
	state *os.ProcessState
	err   error
}

func newSpawner(logf func(format string, args ...any)) *spawner {
	return &spawner{
		reqs: make(chan func()), children: map[*os.Process]*spawned{},
		quitc: make(chan struct{}), done: make(chan struct{}), released: make(chan struct{}), logf: logf,
	}
}

// loop runs the spawner; it returns after quit once no child is left.
//
// Children still there at quit (a shutdown that timed out) are SIGKILLed
// with their groups; quit returns once they are reaped or after
// quitGrace, whichever comes first, but the loop goes on without a bound
// until it has reaped them all: a child is gone only once its group is
// empty, and a group member may outlive SIGKILL for a while (stuck in
// uninterruptible sleep in a driver) or be out of the runtime's reach (a
// process of another user, such as a sudo); the source goroutine waiting
// for the child's exit, and the shutdown waiting for that source, must
// then end when it is reaped rather than wait for good on a spawner that
// has returned.
func (s *spawner) loop() {
	goruntime.LockOSThread() // never unlocked: see the type comment
	defer close(s.done)
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGCHLD)
	defer signal.Stop(sigc)
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	var deadline <-chan time.Time // set by quit
	quitc := s.quitc
	for {
		if quitc == nil && len(s.children) == 0 {
			return
		}
		var poll <-chan time.Time
		if s.draining() {
			poll = time.After(drainPoll)
		}
		select {
		case f := <-s.reqs:
			f()
		case <-sigc:
			s.reap()
		case <-t.C:
			s.reap()
		case <-poll:
			s.reap()
		case <-quitc:
			quitc = nil
			if len(s.children) > 0 {
				// Children still running (the shutdown timed out and
				// killAll's SIGKILL has not finished them yet): SIGKILL
				// again, reap what is quick to reap.
				s.killAllLocked()
				deadline = time.After(quitGrace)
			}
		case <-deadline:
			deadline = nil
			s.logf("%d child(ren) not reaped %v after SIGKILL: still reaping them; their sources end once they are gone", len(s.children), quitGrace)
			close(s.released)
		}
	}
}

// killAll sends SIGKILL to the process group of every child not yet reaped.
func (s *spawner) killAll() { s.do(s.killAllLocked) }

func (s *spawner) killAllLocked() {
	for p := range s.children {
		s.signalLocked(p, syscall.SIGKILL)
	}
}

func (s *spawner) draining() bool {
	for _, c := range s.children {
		if c.exited {
			return true
		}
	}
	return false
}

// do runs f on the spawner's thread and waits for it.
func (s *spawner) do(f func()) error {
	done := make(chan struct{})
	select {
	case s.reqs <- func() { f(); close(done) }:
	case <-s.done:
		return errors.New("runtime: spawner stopped")
	}
	<-done
	return nil
}

// start starts a child in its own process group; its exit is delivered on
// the returned channel once no live process is left in the group (see the
// type comment). name is for the log; stopTimeout is how long the group has
// from SIGTERM to SIGKILL once its leader has exited.
func (s *spawner) start(name string, stopTimeout time.Duration, argv0 string, argv []string, attr *os.ProcAttr) (*os.Process, <-chan exitResult, error) {
	var p *os.Process
	var err error
	ch := make(chan exitResult, 1)
	if serr := s.do(func() {
		if attr.Sys == nil {
			attr.Sys = &syscall.SysProcAttr{}
		}
		attr.Sys.Pdeathsig = syscall.SIGKILL
		attr.Sys.Setpgid = true
		// The child gets attr.Files and nothing else: a descriptor this
		// process holds without close-on-exec (inherited from whatever
		// started the runtime, or opened so by a program embedding it)
		// would otherwise go on to every child.
		if err = sys.CloseOnExecFrom(3); err != nil {
			err = fmt.Errorf("cannot keep the runtime's descriptors from the child: %w", err)
			return
		}
		p, err = os.StartProcess(argv0, argv, attr)
		if err == nil {
			s.children[p] = &spawned{exit: ch, name: name, stopTimeout: stopTimeout}
		}
	}); serr != nil {
		return nil, nil, serr
	}
	return p, ch, err
}

// signal sends sig to the child's process group if the child has not been
// reaped yet (and to the child by its pidfd if it has left that group).
func (s *spawner) signal(p *os.Process, sig syscall.Signal) {
	s.do(func() { s.signalLocked(p, sig) })
}

func (s *spawner) signalLocked(p *os.Process, sig syscall.Signal) {
	c, ok := s.children[p]
	if !ok {
		return
	}
	switch sig {
	case syscall.SIGTERM:
		if c.termAt.IsZero() {
			c.termAt = time.Now()
		}
	case syscall.SIGKILL:
		if !c.killed {
			c.killAt = time.Now()
		}
		c.killed = true
	}
	// The group leader is not reaped (we are the only reaper), so its pid,
	// which is the group id, cannot have been reused.
	unix.Kill(-p.Pid, sig)
	// The leader is in that group unless it moved to another (setpgid):
	// only then does it get sig through its pidfd too. Not both: a
	// child that handles SIGTERM would get it twice, and one that takes
	// a second SIGTERM as "quit now" would cut its clean stop short.
	if g, err := unix.Getpgid(p.Pid); err != nil || g != p.Pid {
		p.Signal(sig) // pidfd
	}
}

// leaderExited reports whether the child has exited (it may be a zombie
// still, kept until its group is empty).
func (s *spawner) leaderExited(p *os.Process) bool {
	ex := false
	s.do(func() {
		c, ok := s.children[p]
		ex = !ok || c.exited || exited(p)
	})
	return ex
}

// reap reaps every child that has exited and whose group has no live
// member left; a group that still has some is sent SIGTERM, and SIGKILL
// stopTimeout after the first SIGTERM.
func (s *spawner) reap() {
	for p, c := range s.children {
		if !c.exited {
			if !exited(p) {
				s.noteStuck(p, c)
				continue
			}
			c.exited = true
		}
		if n := groupLive(p.Pid); n > 0 && !c.killed {
			switch {
			case c.termAt.IsZero():
				s.logf("source %s: child (pid %d) exited, but %d process(es) of its group still run; sending SIGTERM to the group", c.name, p.Pid, n)
				s.signalLocked(p, syscall.SIGTERM)
			case time.Since(c.termAt) >= c.stopTimeout:
				s.logf("source %s: %d process(es) of the child's group (pgid %d) ignored SIGTERM for %v; sending SIGKILL to the group", c.name, n, p.Pid, c.stopTimeout)
				s.signalLocked(p, syscall.SIGKILL)
			}
			continue
		} else if n > 0 {
			s.noteStuck(p, c) // SIGKILLed: wait until they are gone
			continue
		}
		st, err := p.Wait()
		c.exit <- exitResult{st, err}
		delete(s.children, p)
	}
}

// stuckAfter is how long after SIGKILL a child, or a process of its group,
// that still runs is named in the log.
const stuckAfter = time.Second

// noteStuck logs, once, that the child or processes of its group still run
// stuckAfter after the group was SIGKILLed: nothing else would say why a
// stop does not end. Such a process is one the runtime may not signal
// (another user's: a sudo or set-user-ID program in a sensor's script
// that switched its real user), or one stuck in the kernel (a driver).
func (s *spawner) noteStuck(p *os.Process, c *spawned) {
	if !c.killed || c.stuckNoted || time.Since(c.killAt) < stuckAfter {
		return
	}
	c.stuckNoted = true
	var live []string
	for _, pid := range groupPIDs(p.Pid) {
		live = append(live, strconv.Itoa(pid))
	}
	if len(live) == 0 && !c.exited {
		live = []string{strconv.Itoa(p.Pid)}
	}
	s.logf("source %s: the child's process group (pgid %d) still has live processes %v after SIGKILL (pids %s): processes of another user, which the runtime may not signal (a sudo or set-user-ID program that switched its real user), or stuck in the kernel; the child is reaped, and its source stops or restarts, only once they are gone",
		c.name, p.Pid, time.Since(c.killAt).Round(time.Millisecond), strings.Join(live, ", "))
}

// groupLive counts the live (not zombie) processes in process group pgid,
// from /proc. It returns 0 if /proc cannot be read: the group is then
// signalled only while its leader runs.
func groupLive(pgid int) int { return len(groupPIDs(pgid)) }

// groupPIDs lists the live (not zombie) processes in process group pgid,
// from /proc (none if /proc cannot be read).
func groupPIDs(pgid int) []int {
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil
	}
	var pids []int
	for _, name := range names {
		if name[0] < '0' || name[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + name + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may contain anything,
		// so parse after its last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, err := strconv.Atoi(f[2]); err == nil && g == pgid {
			if pid, err := strconv.Atoi(name); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// exited reports whether p can be reaped without blocking.
func exited(p *os.Process) bool {
	var info unix.Siginfo
	var err error
	herr := p.WithHandle(func(h uintptr) {
		err = unix.Waitid(unix.P_PIDFD, int(h), &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	})
	if herr != nil {
		// No pidfd (old kernel): the pid is safe to use because only this
		// goroutine reaps it.
		err = unix.Waitid(unix.P_PID, p.Pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	}
	if err != nil {
		// ECHILD: already gone; let Wait report it.
		return errors.Is(err, unix.ECHILD)
	}
	return info.Signo == int32(unix.SIGCHLD)
}

// quit ends the spawner: it returns once every child is reaped, or
// quitGrace after it SIGKILLed those left, which the loop still reaps
// (see loop). Call it once.
func (s *spawner) quit() {
	select {
	case s.quitc <- struct{}{}:
	case <-s.done:
		return
	}
	select {
	case <-s.done:
	case <-s.released:
	}
}
