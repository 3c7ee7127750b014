package runtime

import (
	"errors"
	"os"
	"os/signal"
	goruntime "runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
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
// known not to be reaped (it is reaped only here), so the group id cannot
// have been recycled.
//
// Reaping: on SIGCHLD (and every 2 s as a safety net) each child is checked
// with waitid(P_PIDFD, WEXITED|WNOHANG|WNOWAIT) through
// os.Process.WithHandle, then reaped with Process.Wait, which returns at
// once. No goroutine or thread sits in a blocking wait per child.
type spawner struct {
	reqs     chan func()
	children map[*os.Process]chan<- exitResult
	quitc    chan struct{}
	done     chan struct{}
}

type exitResult struct {
	state *os.ProcessState
	err   error
}

func newSpawner() *spawner {
	return &spawner{
		reqs: make(chan func()), children: map[*os.Process]chan<- exitResult{},
		quitc: make(chan struct{}), done: make(chan struct{}),
	}
}

// loop runs the spawner; it returns after quit once no child is left.
func (s *spawner) loop() {
	goruntime.LockOSThread() // never unlocked: see the type comment
	defer close(s.done)
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGCHLD)
	defer signal.Stop(sigc)
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	quitting := false
	for {
		if quitting && len(s.children) == 0 {
			return
		}
		select {
		case f := <-s.reqs:
			f()
		case <-sigc:
			s.reap()
		case <-t.C:
			s.reap()
		case <-s.quitc:
			quitting = true
			s.quitc = nil
			if len(s.children) > 0 {
				// Children still running (a shutdown timed out): leave them
				// to Pdeathsig after a last grace period.
				deadline := time.After(2 * time.Second)
				for len(s.children) > 0 {
					select {
					case f := <-s.reqs:
						f()
					case <-sigc:
						s.reap()
					case <-t.C:
						s.reap()
					case <-deadline:
						for p := range s.children {
							s.signalLocked(p, syscall.SIGKILL)
						}
						return
					}
				}
			}
		}
	}
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

// start starts a child; its exit is delivered on the returned channel.
func (s *spawner) start(argv0 string, argv []string, attr *os.ProcAttr) (*os.Process, <-chan exitResult, error) {
	var p *os.Process
	var err error
	ch := make(chan exitResult, 1)
	if serr := s.do(func() {
		if attr.Sys == nil {
			attr.Sys = &syscall.SysProcAttr{}
		}
		attr.Sys.Pdeathsig = syscall.SIGKILL
		attr.Sys.Setpgid = true
		p, err = os.StartProcess(argv0, argv, attr)
		if err == nil {
			s.children[p] = ch
		}
	}); serr != nil {
		return nil, nil, serr
	}
	return p, ch, err
}

// signal sends sig to the child and its process group if it has not been
// reaped yet.
func (s *spawner) signal(p *os.Process, sig syscall.Signal) {
	s.do(func() { s.signalLocked(p, sig) })
}

func (s *spawner) signalLocked(p *os.Process, sig syscall.Signal) {
	if _, ok := s.children[p]; !ok {
		return
	}
	p.Signal(sig) // pidfd
	// The group leader is not reaped (we are the only reaper), so its pid,
	// which is the group id, cannot have been reused.
	unix.Kill(-p.Pid, sig)
}

func (s *spawner) reap() {
	for p, ch := range s.children {
		if !exited(p) {
			continue
		}
		st, err := p.Wait()
		ch <- exitResult{st, err}
		delete(s.children, p)
	}
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

func (s *spawner) quit() {
	select {
	case <-s.done:
		return
	default:
	}
	select {
	case s.quitc <- struct{}{}:
	case <-s.done:
	}
	<-s.done
}
