//go:build linux

package qemuwatch

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Marker is what scripts/qemu-test.sh looks for in a failed package's output.
const Marker = "QEMU-FORK-DEADLOCK"

const (
	every    = 2 * time.Second
	exitCode = 97
)

// stuckAfter is how long a child may remain this program; the test of this
// package shortens it through EDGEIPC_QEMUWATCH_AFTER.
var stuckAfter = 20 * time.Second

// Start launches the watchdog (once per process) and returns at once.
func Start() {
	me := os.Getpid()
	// The host's view of our command line: qemu answers /proc/self and
	// /proc/<own pid> with the guest's, but not the task directory.
	self, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/cmdline", me, me))
	if err != nil || len(self) == 0 {
		return
	}
	if d, err := time.ParseDuration(os.Getenv("EDGEIPC_QEMUWATCH_AFTER")); err == nil && d > 0 {
		stuckAfter = d
	}
	go watch(me, self)
}

func watch(me int, self []byte) {
	seen := map[int]time.Time{}
	for range time.Tick(min(every, stuckAfter/2)) {
		now := time.Now()
		alive := map[int]bool{}
		for _, pid := range childrenOf(me) {
			cmd, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
			if err != nil || !bytes.Equal(cmd, self) {
				continue // exec'd (or gone): fine
			}
			alive[pid] = true
			first, ok := seen[pid]
			if !ok {
				seen[pid] = now
				continue
			}
			if now.Sub(first) >= stuckAfter {
				fmt.Fprintf(os.Stderr, "%s: child %d of %d is still this program %v after fork: "+
					"qemu-user deadlocked between fork and exec (an emulator bug, not a test failure); "+
					"exiting %d so that scripts/qemu-test.sh reruns this package\n",
					Marker, pid, me, now.Sub(first).Round(time.Second), exitCode)
				syscall.Kill(pid, syscall.SIGKILL)
				os.Exit(exitCode)
			}
		}
		for pid := range seen {
			if !alive[pid] {
				delete(seen, pid)
			}
		}
	}
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	var kids []int
	for _, n := range names {
		p, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		st, err := os.ReadFile("/proc/" + n + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parens.
		s := string(st)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			kids = append(kids, p)
		}
	}
	return kids
}
