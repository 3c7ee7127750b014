package bench

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// Every peer process of a bench (the bench-child of each Go case and the C
// baselines) is started from one goroutine locked to its OS thread for the
// life of the process, with PR_SET_PDEATHSIG = SIGKILL (Linux), so that a
// bench that is SIGKILLed or crashes takes its peers with it. Before, they
// ran on to their hang guard (3x --duration plus 30 s), a busy-polling
// one spinning on a CPU all that time.
//
// Why one locked thread: the kernel sends the death signal when the
// *thread* that forked the child exits, not the process, and Go may end an
// OS thread while the process lives (one whose goroutine returned while
// locked to it): a peer forked from an ordinary goroutine could be killed
// in the middle of a case. The starter goroutine locks its thread and
// never returns, so the thread lives exactly as long as the process.
// A C baseline's own forked peer dies with the C program by the same
// signal (c/common.h's fork_peer; the C program is single-threaded).
var starter struct {
	once sync.Once
	reqs chan func()
}

// startPeer starts cmd from the starter thread with the death signal set.
func startPeer(cmd *exec.Cmd) error {
	starter.once.Do(func() {
		starter.reqs = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked: see the comment on starter
			for f := range starter.reqs {
				f()
			}
		}()
	})
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	setDeathSignal(cmd.SysProcAttr)
	done := make(chan error, 1)
	starter.reqs <- func() { done <- cmd.Start() }
	return <-done
}
