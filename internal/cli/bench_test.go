package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeipc/edgeipc/internal/bench"
	"github.com/edgeipc/edgeipc/internal/mq"
	"github.com/edgeipc/edgeipc/internal/qemuwatch"
	"github.com/edgeipc/edgeipc/internal/testenv"
)

// TestBenchUsageErrors checks that every bad bench flag is refused with
// exit 2 and a message that names the fix, before anything is measured.
func TestBenchUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "extra"}, "takes no arguments"},
		{[]string{"bench", "--case", "ring-fast"}, "valid cases: "},
		{[]string{"bench", "--size", "0"}, "up to 64m"},
		// The size as written, not with its suffix cut off ("65").
		{[]string{"bench", "--size", "64,65m"}, `bad size "65m"`},
		{[]string{"bench", "--size", "2KiBx"}, `bad size "2KiBx"`},
		{[]string{"bench", "--duration", "0s"}, "--duration must be positive"},
		{[]string{"bench", "--iters", "-1"}, "--iters must not be negative"},
		// Past these the hang guard overflowed: every case failed at once
		// with "context deadline exceeded".
		{[]string{"bench", "--duration", "1000000h"}, "--duration must be at most 24h0m0s"},
		{[]string{"bench", "--iters", "2000000000"}, "--iters must be at most 1073741824"},
		{[]string{"bench", "--repeat", "0"}, "--repeat must be at least 1"},
		{[]string{"bench", "--cpu", "one"}, "want A or A,B"},
		{[]string{"bench", "--cpu", "0,1,2"}, "at most two CPUs"},
		{[]string{"bench", "--case", ""}, "empty case list"},
		{[]string{"bench", "--case", " , "}, "empty case list"},
	} {
		r := runCLI(t, "", c.args...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("edgeipc %s: exit %d stderr %q; want exit 2 mentioning %q", strings.Join(c.args, " "), r.code, r.stderr, c.want)
		}
	}
}

// TestBenchCPU checks --cpu: a CPU this process may not run on is a usage
// error naming the ones it may, before anything is measured; CPUs it may
// run on pin both sides, the peer included (which inherits the measuring
// side's mask of one CPU), and the case runs.
func TestBenchCPU(t *testing.T) {
	allowed, err := bench.AllowedCPUs()
	if err != nil || len(allowed) == 0 {
		t.Fatalf("AllowedCPUs = %v, %v", allowed, err)
	}
	bad := allowed[len(allowed)-1] + 1
	r := runCLI(t, "", "bench", "--case", "pipe", "--size", "64", "--iters", "10", "--no-c", "--cpu", "0,"+strconv.Itoa(bad))
	if r.code != ExitUsage || !strings.Contains(r.stderr, "CPU "+strconv.Itoa(bad)+" is not one this process may run on") || r.stdout != "" {
		t.Errorf("bench --cpu 0,%d: exit %d stdout %q stderr %q; want exit 2 naming the CPU, nothing measured", bad, r.code, r.stdout, r.stderr)
	}

	a, b := allowed[0], allowed[len(allowed)-1]
	cmd := cliCmd(t, t.TempDir(), "bench", "--case", "pipe,ring-wait", "--size", "64", "--iters", "20", "--no-c", "--cpu", strconv.Itoa(a)+","+strconv.Itoa(b))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if code := waitCmd(t, cmd); code != 0 || strings.Contains(out.String(), "ERROR") {
		t.Errorf("bench --cpu %d,%d: exit %d\nstdout: %s\nstderr: %s", a, b, code, out.String(), errb.String())
	}
}

// TestBenchInterrupted runs one bench case in a child process, sends it
// SIGINT while its peer is measuring, and checks that it exits 130 without
// reporting the case it cut short as a failure.
func TestBenchInterrupted(t *testing.T) {
	dir := t.TempDir()
	cmd := cliCmd(t, dir, "bench", "--case", "pipe", "--size", "64", "--duration", "10m", "--no-c")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// SIGINT once the peer (a bench-child process) is running, so that the
	// interrupt cuts a case short rather than arriving before it starts.
	waitPeer(t, cmd, &out, &errb)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := waitCmd(t, cmd); code != ExitInterrupted {
		t.Errorf("bench after SIGINT: exit %d, want %d\nstdout: %s\nstderr: %s", code, ExitInterrupted, out.String(), errb.String())
	}
	if strings.Contains(out.String(), "ERROR") || strings.Contains(errb.String(), "failed") {
		t.Errorf("bench reported the interrupted case as failed:\nstdout: %s\nstderr: %s", out.String(), errb.String())
	}
	if !strings.HasPrefix(out.String(), "case ") || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("bench after SIGINT should print only the header:\n%s", out.String())
	}
}

// TestBenchInterruptedC sends SIGINT to a bench measuring a C baseline
// and checks that it exits 130 and leaves none of the C processes behind:
// the baseline forks a peer that busy-polls shared memory, which outlived
// its killed parent (spinning on a CPU for ever) and held the bench's
// output pipe open, so that bench never exited.
func TestBenchInterruptedC(t *testing.T) {
	testenv.Tool(t, "cc", "install gcc: the C baselines need it")
	if qemuwatch.Emulated() {
		t.Skipf("under qemu-user cc builds host programs, not %s ones: bench skips the C baselines, there is none to interrupt", runtime.GOARCH)
	}
	dir := t.TempDir()
	cmd := cliCmd(t, dir, "bench", "--case", "c-spin", "--size", "64", "--duration", "10m")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second // a C process left behind holds our pipes too
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, p := range procsRunning(t, dir) {
			syscall.Kill(p, syscall.SIGKILL)
		}
	})
	// SIGINT once the C program and the peer it forks both run.
	deadline := time.Now().Add(testTimeout)
	for len(procsRunning(t, dir)) < 2 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the C baseline did not start within %v\nstdout: %s\nstderr: %s", testTimeout, out.String(), errb.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := waitCmd(t, cmd); code != ExitInterrupted {
		t.Errorf("bench after SIGINT: exit %d, want %d\nstdout: %s\nstderr: %s", code, ExitInterrupted, out.String(), errb.String())
	}
	for end := time.Now().Add(5 * time.Second); len(procsRunning(t, dir)) > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("C baseline processes %v still run after bench exited", procsRunning(t, dir))
		}
	}
}

// procsRunning returns the processes running a program from under dir
// (zombies excluded: their cmdline is empty).
func procsRunning(t *testing.T, dir string) []int {
	return procsWhere(t, "cmdline", func(b []byte) bool { return bytes.HasPrefix(b, []byte(dir+"/")) })
}

// childPIDs returns the processes whose parent is pid.
func childPIDs(t *testing.T, pid int) []int {
	return procsWhere(t, "stat", func(b []byte) bool {
		// pid (comm) state ppid ...: comm may contain spaces and parentheses.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		return len(f) > 1 && f[1] == strconv.Itoa(pid)
	})
}

// procsWhere returns the processes whose /proc/PID/file keep accepts
// (processes that exit meanwhile are left out).
func procsWhere(t *testing.T, file string, keep func([]byte) bool) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile("/proc/" + e.Name() + "/" + file); err == nil && keep(b) {
			out = append(out, p)
		}
	}
	return out
}

// TestBenchWithoutC runs a C case and a Go case with --no-c, and again
// with $CC naming no compiler, and checks that bench exits 0 with the C
// case skipped and the reason given: both exited 1, the C case reported
// as failed, so `edgeipc bench --no-c` and a bench on a device without
// gcc always failed.
func TestBenchWithoutC(t *testing.T) {
	for _, c := range []struct {
		env  string
		args []string
		want string
	}{
		{"", []string{"--no-c"}, "skipped: C baselines not run (--no-c)"},
		{"CC=" + t.TempDir() + "/no-such-cc", nil, "skipped: no C compiler"},
	} {
		args := append([]string{"bench", "--case", "c-futex,pipe", "--size", "64", "--iters", "20"}, c.args...)
		cmd := cliCmd(t, t.TempDir(), args...)
		if c.env != "" {
			cmd.Env = append(cmd.Env, c.env)
		}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		code := waitCmd(t, cmd)
		if code != 0 || strings.Contains(out.String(), "ERROR") || !strings.Contains(out.String(), c.want) ||
			!strings.Contains(out.String(), "pipe ") {
			t.Errorf("%s edgeipc %s: exit %d, want 0, c-futex %q and pipe measured\nstdout: %s\nstderr: %s",
				c.env, strings.Join(args, " "), code, c.want, out.String(), errb.String())
		}
	}
}

// TestBenchKilled SIGKILLs a bench in the middle of a case and checks
// that its peers die with it, within seconds: the bench-child of a Go
// case, or a C baseline and the peer it forks. They ran on to their hang
// guard (3x --duration plus 30 s), the busy-polling ones spinning on a
// CPU all that time. For the Go case it then checks that the segment
// directory the dead bench left is removed by the next bench, and that a
// live bench's is not: it stayed in /dev/shm for ever.
func TestBenchKilled(t *testing.T) {
	t.Run("go", func(t *testing.T) {
		dir := t.TempDir()
		// A live bench, whose directory the others must leave alone.
		live := cliCmd(t, dir, "bench", "--case", "ring-wait", "--size", "64", "--duration", "10m", "--no-c")
		var lout, lerr bytes.Buffer
		live.Stdout, live.Stderr = &lout, &lerr
		live.WaitDelay = 5 * time.Second // a peer left behind holds our pipes
		if err := live.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { live.Process.Kill(); live.Wait() })
		livePeers := waitPeer(t, live, &lout, &lerr)
		t.Cleanup(func() { // a failed run leaves no peer either
			for _, p := range livePeers {
				if alive(p) {
					syscall.Kill(p, syscall.SIGKILL)
				}
			}
		})
		liveDirs := segDirs(t, dir)
		if len(liveDirs) != 1 {
			t.Fatalf("segment directories with a live bench: %q, want 1", liveDirs)
		}

		peers, benchLine := startAndKillBench(t, dir, false, "bench", "--case", "ring-spin", "--size", "64", "--duration", "2s", "--no-c")
		waitGone(t, peers, benchLine)
		dead := slices.DeleteFunc(segDirs(t, dir), func(d string) bool { return d == liveDirs[0] })
		if len(dead) != 1 {
			t.Fatalf("segment directories after the SIGKILL: %q, want the live bench's %q and the dead one's", segDirs(t, dir), liveDirs)
		}

		next := cliCmd(t, dir, "bench", "--case", "pipe", "--size", "64", "--iters", "10", "--no-c")
		var nout, nerr bytes.Buffer
		next.Stdout, next.Stderr = &nout, &nerr
		if err := next.Start(); err != nil {
			t.Fatal(err)
		}
		if code := waitCmd(t, next); code != 0 || !strings.Contains(nerr.String(), "removed "+dead[0]+", left by a bench that died") {
			t.Errorf("next bench: exit %d, want 0 and a note that it removed %s\nstdout: %s\nstderr: %s", code, dead[0], nout.String(), nerr.String())
		}
		if got := segDirs(t, dir); !slices.Equal(got, liveDirs) {
			t.Errorf("segment directories after the next bench: %q, want only the live bench's %q", got, liveDirs)
		}
		if err := live.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		if code := waitCmd(t, live); code != ExitInterrupted {
			t.Errorf("live bench after SIGINT: exit %d, want %d\nstdout: %s\nstderr: %s", code, ExitInterrupted, lout.String(), lerr.String())
		}
		if got := segDirs(t, dir); len(got) != 0 {
			t.Errorf("segment directories after every bench returned: %q", got)
		}
	})
	t.Run("mq", func(t *testing.T) {
		// The mq case's queues: in /dev/mqueue, not in the segment
		// directory. Killed in the middle of the case, the bench left both,
		// counting against queues_max for ever. Now their names go once the
		// peer has opened them (after the first echo).
		cmd := cliCmd(t, t.TempDir(), "bench", "--case", "mq", "--size", "64", "--duration", "1m", "--no-c")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		cmd.WaitDelay = 5 * time.Second // a peer left behind holds our pipes
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		peers := waitPeer(t, cmd, &out, &errb)
		t.Cleanup(func() {
			for _, p := range peers {
				if alive(p) {
					syscall.Kill(p, syscall.SIGKILL)
				}
			}
		})
		// The names, from the peer's descriptors ("/NAME", with
		// " (deleted)" once unlinked), once it has opened both queues.
		var queues []string
		for deadline := time.Now().Add(testTimeout); len(queues) < 2; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				report := procReport(peers[0], cmd.Process.Pid)
				cmd.Process.Kill()
				cmd.Wait() // before errb is read: its copying goroutine has ended
				t.Fatalf("the mq peer %v did not open two queues within %v (has %q)\n%s\nstderr: %s", peers, testTimeout, queues, report, errb.String())
			}
			queues = queues[:0]
			fds, _ := os.ReadDir("/proc/" + strconv.Itoa(peers[0]) + "/fd")
			for _, fd := range fds {
				l, err := os.Readlink("/proc/" + strconv.Itoa(peers[0]) + "/fd/" + fd.Name())
				prefix := "/bench-" + strconv.Itoa(cmd.Process.Pid) + "-"
				if err == nil && strings.HasPrefix(l, prefix) {
					queues = append(queues, strings.TrimSuffix(l[1:], " (deleted)"))
				}
			}
		}
		t.Cleanup(func() {
			for _, q := range queues {
				mq.Unlink(q)
			}
		})
		// Kill once both names are gone (up to 10 s: the case measures
		// for a minute, so the bench's own exit cannot remove them first).
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			n := 0
			fds, _ := os.ReadDir("/proc/" + strconv.Itoa(peers[0]) + "/fd")
			for _, fd := range fds {
				l, _ := os.Readlink("/proc/" + strconv.Itoa(peers[0]) + "/fd/" + fd.Name())
				if strings.HasSuffix(l, " (deleted)") && strings.HasPrefix(l, "/bench-") {
					n++
				}
			}
			if n == 2 {
				break
			}
		}
		benchLine := cmdline(cmd.Process.Pid)
		cmd.Process.Kill()
		cmd.Wait()
		waitGone(t, peers, benchLine)
		for _, q := range queues {
			if qq, err := mq.Open(q, os.O_RDONLY); err == nil {
				qq.Close()
				t.Errorf("queue %s left behind by the SIGKILLed bench", q)
			} else if !errors.Is(err, syscall.ENOENT) {
				t.Errorf("open %s: %v, want ENOENT", q, err)
			}
		}
	})
	t.Run("c", func(t *testing.T) {
		testenv.Tool(t, "cc", "install gcc: the C baselines need it")
		if qemuwatch.Emulated() {
			t.Skipf("under qemu-user cc builds host programs, not %s ones: bench skips the C baselines", runtime.GOARCH)
		}
		// c-spin measures for 1.1x --duration, then prints and exits:
		// 10 s keeps it running well past the wait below.
		dir := t.TempDir()
		peers, benchLine := startAndKillBench(t, dir, true, "bench", "--case", "c-spin", "--size", "64", "--duration", "10s")
		waitGone(t, peers, benchLine)
	})
}

// startAndKillBench starts edgeipc with args, waits until its peers run
// (for a C case, the C program and the child it forks, which run from
// under dir; otherwise the bench-child), SIGKILLs it and returns the
// peers' PIDs (killed at the end of the test if still there) and the
// bench's command line as the host shows it (see waitGone).
func startAndKillBench(t *testing.T, dir string, c bool, args ...string) ([]int, []byte) {
	t.Helper()
	cmd := cliCmd(t, dir, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second // a peer left behind holds our pipes
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var peers []int
	if c {
		deadline := time.Now().Add(testTimeout)
		for peers = procsRunning(t, dir); len(peers) < 2; peers = procsRunning(t, dir) {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("the C baseline did not start within %v\nstdout: %s\nstderr: %s", testTimeout, out.String(), errb.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	} else {
		peers = waitPeer(t, cmd, &out, &errb)
	}
	t.Cleanup(func() {
		for _, p := range peers {
			if alive(p) {
				syscall.Kill(p, syscall.SIGKILL)
			}
		}
	})
	line := cmdline(cmd.Process.Pid)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	return peers, line
}

// waitPeer waits until the bench cmd has started a peer and returns the
// PIDs of its children that run bench-child. Not of every child: the
// first start of a process makes os/exec probe clone(CLONE_PIDFD) with a
// child that exits at once (os.checkPidfd), and a test that took that
// child for the peer watched a process that was gone (TestBenchKilled/mq
// flaked so); a child between its fork and its exec is still the bench.
func waitPeer(t *testing.T, cmd *exec.Cmd, out, errb *bytes.Buffer) []int {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		kids := childPIDs(t, cmd.Process.Pid)
		if p := slices.DeleteFunc(slices.Clone(kids), func(p int) bool { return !isPeer(cmdline(p)) }); len(p) > 0 {
			return p
		}
		if time.Now().After(deadline) {
			benchLine := cmdline(cmd.Process.Pid)
			cmd.Process.Kill()
			cmd.Wait()
			for _, p := range kids {
				if l := cmdline(p); len(l) > 0 && bytes.Equal(l, benchLine) && qemuwatch.Emulated() {
					t.Fatalf("%s: the bench's child %d did not exec its peer within %v: qemu-user stopped it between fork and exec", qemuwatch.Marker, p, testTimeout)
				}
			}
			t.Fatalf("bench started no peer within %v (children %v)\nstdout: %s\nstderr: %s", testTimeout, kids, out.String(), errb.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// isPeer reports whether a command line (as /proc shows it: arguments
// ended by NULs) runs a bench's Go peer.
func isPeer(cmdline []byte) bool {
	return slices.ContainsFunc(bytes.Split(cmdline, []byte{0}), func(a []byte) bool { return string(a) == "bench-child" })
}

// procReport describes process pid (a peer that did not get where a test
// waited for it) and its parent bench, for the failure message: state,
// kernel wait channel, command line and descriptors, and the queues in
// /dev/mqueue.
func procReport(pid, bench int) string {
	var b strings.Builder
	for _, p := range []int{pid, bench} {
		dir := "/proc/" + strconv.Itoa(p)
		stat, err := os.ReadFile(dir + "/stat")
		if err != nil {
			fmt.Fprintf(&b, "process %d: %v\n", p, err)
			continue
		}
		wchan, _ := os.ReadFile(dir + "/wchan")
		cmd, _ := os.ReadFile(dir + "/cmdline")
		fmt.Fprintf(&b, "process %d: stat %s\n  wchan %s, cmdline %q\n  fds:", p, bytes.TrimSpace(stat), wchan, bytes.ReplaceAll(cmd, []byte{0}, []byte{' '}))
		fds, _ := os.ReadDir(dir + "/fd")
		for _, fd := range fds {
			l, _ := os.Readlink(dir + "/fd/" + fd.Name())
			fmt.Fprintf(&b, " %s=%s", fd.Name(), l)
		}
		b.WriteString("\n")
	}
	qs, err := os.ReadDir("/dev/mqueue")
	fmt.Fprintf(&b, "/dev/mqueue (%v):", err)
	for _, q := range qs {
		b.WriteString(" " + q.Name())
	}
	return b.String()
}

// waitGone fails the test unless every process in pids is gone (or a
// zombie) within 5 s. benchLine is the killed bench's command line: a peer
// left with that very command line never reached its exec, nor the
// PR_SET_PDEATHSIG Go sets just before it. A real kernel does not stop a
// child there; qemu-user does, now and then (internal/qemuwatch), and the
// failure then carries qemuwatch.Marker so that scripts/qemu-test.sh runs
// the package again.
func waitGone(t *testing.T, pids []int, benchLine []byte) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		left := slices.DeleteFunc(slices.Clone(pids), func(p int) bool { return !alive(p) })
		if len(left) == 0 {
			return
		}
		if time.Now().After(end) {
			for _, p := range left {
				if l := cmdline(p); len(l) > 0 && bytes.Equal(l, benchLine) && qemuwatch.Emulated() {
					t.Fatalf("%s: peer %d of the SIGKILLed bench is still the bench 5 s later: qemu-user stopped it between fork and exec", qemuwatch.Marker, p)
				}
			}
			t.Fatalf("peers %v of the SIGKILLed bench still run 5 s later", left)
		}
	}
}

// cmdline returns process pid's command line as the host shows it (qemu
// answers only a process's own /proc entries with the guest's view), or
// nil once the process is gone.
func cmdline(pid int) []byte {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return b
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// segDirs lists the bench segment directories under dir.
func segDirs(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "edgeipc-bench-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}
