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

// StuckEnv names the environment variable that says what to do about a
// stuck child: exit (the default) or, with KillChild, kill the child and
// carry on.
const StuckEnv = "EDGEIPC_QEMUWATCH_STUCK"

// KillChild is the StuckEnv value for a process that supervises its
// children, as a runtime does its exec sources: the stuck child is killed
// and the process goes on, treating it as a child that crashed (Go's
// os/exec sees the exec pipe close and reports the start as done, then
// the child as killed by SIGKILL). Killing it also releases Go's fork
// lock, which the stuck fork holds, so other children start again.
const KillChild = "kill-child"

// Start launches the watchdog and returns at once. It does nothing when
// EDGEIPC_QEMUWATCH is "off" (for a child whose CPU use a test measures)
// or when the process does not run under an emulator.
func Start() {
	if os.Getenv("EDGEIPC_QEMUWATCH") == "off" || !emulated() {
		return
	}
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
	go watch(me, self, os.Getenv(StuckEnv) == KillChild)
}

func watch(me int, self []byte, killOnly bool) {
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
			if now.Sub(first) >= stuckAfter && killOnly {
				fmt.Fprintf(os.Stderr, "%s: child %d of %d is still this program %v after fork: "+
					"qemu-user deadlocked between fork and exec (an emulator bug, not a test failure); "+
					"killed it, and this process goes on as after a child crash\n",
					Marker, pid, me, now.Sub(first).Round(time.Second))
				syscall.Kill(pid, syscall.SIGKILL)
				delete(seen, pid)
				delete(alive, pid)
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

// Emulated reports whether this process runs under qemu-user, for tests
// that pace themselves to the emulator (every fork under qemu risks the
// deadlock this package watches for).
func Emulated() bool { return emulated() }

// emulated reports whether this process runs under qemu-user: qemu answers
// /proc/self/exe with the guest program, while the task directory still
// shows the host's view, the emulator. EDGEIPC_QEMUWATCH=on forces it (the
// test of this package).
func emulated() bool {
	if os.Getenv("EDGEIPC_QEMUWATCH") == "on" {
		return true
	}
	me := os.Getpid()
	guest, err1 := os.Readlink("/proc/self/exe")
	host, err2 := os.Readlink(fmt.Sprintf("/proc/%d/task/%d/exe", me, me))
	return err1 == nil && err2 == nil && guest != host
}

// childrenOf lists the processes whose parent is pid: from the task
// directories' children files when the kernel has them, else by a scan.
func childrenOf(pid int) []int {
	if tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid)); err == nil {
		var kids []int
		ok := true
		for _, t := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
			if err != nil {
				ok = false
				break
			}
			for _, f := range strings.Fields(string(b)) {
				if k, err := strconv.Atoi(f); err == nil {
					kids = append(kids, k)
				}
			}
		}
		if ok {
			return kids
		}
	}
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
