package testenv

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"testing"
	"time"
)

// Run runs the tests and, if they pass, fails them (status 1) on every
// descriptor left open that was not open before, naming what it refers
// to: for TestMain, as os.Exit(testenv.Run(m)).
func Run(m *testing.M) int {
	before := FDs()
	code := m.Run()
	if code == 0 {
		for _, l := range Leaked(before) {
			fmt.Fprintln(os.Stderr, l)
			code = 1
		}
	}
	return code
}

// FDs lists this process's open descriptors and what each refers to. It first makes the
// netpoller set itself up (epoll and its wake-up descriptor), so that a
// later list does not take those for leaks.
func FDs() map[string]string {
	if r, w, err := os.Pipe(); err == nil {
		r.SetReadDeadline(time.Now())
		r.Close()
		w.Close()
	}
	fds := map[string]string{}
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		what, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // the directory's own descriptor, closed by now
		}
		fds[e.Name()] = what
	}
	return fds
}

// Leaked returns a line for each descriptor open now that was not in
// before (from FDs), after garbage collections have run the finalizers of
// what tests dropped. A goroutine a test left winding down (a process
// being reaped, a pipe being drained) gets up to a second to close its
// descriptors.
func Leaked(before map[string]string) []string {
	var out []string
	for try := 0; try < 10; try++ {
		if try > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		runtime.GC()
		out = out[:0]
		for fd, what := range FDs() {
			if _, ok := before[fd]; !ok {
				out = append(out, fmt.Sprintf("leaked descriptor after tests: %s -> %s", fd, what))
			}
		}
		if len(out) == 0 {
			break
		}
	}
	sort.Strings(out)
	return out
}
