//go:build linux

package qemuwatch

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const roleEnv = "EDGEIPC_QEMUWATCH_ROLE"

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "parent":
		Start()
		// A child with exactly this command line that stays this program:
		// what a child stuck between fork and exec looks like.
		c := exec.Command(os.Args[0], os.Args[1:]...)
		c.Env = append(os.Environ(), roleEnv+"=child")
		if err := c.Start(); err != nil {
			os.Exit(2)
		}
		os.Stdout.WriteString(strconv.Itoa(c.Process.Pid) + "\n")
		time.Sleep(time.Minute) // the watchdog must end this process first
		os.Exit(0)
	case "supervisor":
		// Like parent, with StuckEnv=KillChild: the watchdog kills the
		// stuck child, and this process sees it die and goes on.
		Start()
		c := exec.Command(os.Args[0], os.Args[1:]...)
		c.Env = append(os.Environ(), roleEnv+"=child")
		if err := c.Start(); err != nil {
			os.Exit(2)
		}
		err := c.Wait()
		os.Stdout.WriteString(strconv.Itoa(c.Process.Pid) + " " + fmt.Sprint(err) + "\n")
		os.Exit(0)
	case "child":
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestWatchdogFires: a process whose child stays "itself" exits 97 with the
// marker, and the child is killed. A child that execs something else is
// left alone (the parent here runs its tests normally).
func TestWatchdogFires(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"=parent", "EDGEIPC_QEMUWATCH_AFTER=1s", "EDGEIPC_QEMUWATCH=on")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitCode {
		t.Fatalf("parent: %v, want exit %d; stderr:\n%s", err, exitCode, stderr.String())
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("watchdog took %v", took)
	}
	if !strings.Contains(stderr.String(), Marker) {
		t.Errorf("stderr lacks %s:\n%s", Marker, stderr.String())
	}
	pid, err := strconv.Atoi(strings.TrimSpace(stdout.String()))
	if err != nil {
		t.Fatalf("child pid: %q", stdout.String())
	}
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		// Killed, then reparented and reaped by init: wait for it to go.
		if st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil && strings.Contains(string(st), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stuck child %d still alive", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWatchdogKillsChildOnly: with StuckEnv=KillChild the stuck child is
// killed, the marker printed, and the process itself goes on (it reaps the
// child, killed by SIGKILL, and exits 0 of its own accord).
func TestWatchdogKillsChildOnly(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"=supervisor", "EDGEIPC_QEMUWATCH_AFTER=1s", "EDGEIPC_QEMUWATCH=on", StuckEnv+"="+KillChild)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("supervisor: %v, want exit 0; stderr:\n%s", err, stderr.String())
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("watchdog took %v", took)
	}
	if !strings.Contains(stderr.String(), Marker) || !strings.Contains(stderr.String(), "goes on") {
		t.Errorf("stderr lacks the %s line of kill-child:\n%s", Marker, stderr.String())
	}
	if out := stdout.String(); !strings.HasSuffix(out, " signal: killed\n") {
		t.Fatalf("supervisor's child ended %q, want killed by SIGKILL", out)
	}
}

// TestIgnoresExecdChildren: children that exec another program (here:
// sleep) are never taken for stuck ones.
func TestIgnoresExecdChildren(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatalf("sleep(1) not found: %v", err)
	}
	c := exec.Command(sleep, "3")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Wait()
	time.Sleep(100 * time.Millisecond)
	self, _ := os.ReadFile("/proc/" + strconv.Itoa(os.Getpid()) + "/task/" + strconv.Itoa(os.Getpid()) + "/cmdline")
	for _, k := range childrenOf(os.Getpid()) {
		cmd, _ := os.ReadFile("/proc/" + strconv.Itoa(k) + "/cmdline")
		if k == c.Process.Pid && bytes.Equal(cmd, self) {
			t.Fatalf("exec'd child %d has our command line %q", k, cmd)
		}
	}
	found := false
	for _, k := range childrenOf(os.Getpid()) {
		found = found || k == c.Process.Pid
	}
	if !found {
		t.Fatalf("childrenOf(%d) misses child %d", os.Getpid(), c.Process.Pid)
	}
}

// TestEmulated: a native run is not taken for an emulated one, so
// the watchdog costs nothing outside qemu. Under qemu it must say yes.
func TestEmulated(t *testing.T) {
	host, err := os.Readlink("/proc/" + strconv.Itoa(os.Getpid()) + "/task/" + strconv.Itoa(os.Getpid()) + "/exe")
	if err != nil {
		t.Fatal(err)
	}
	underQemu := strings.Contains(host, "qemu-") // qemu-binfmt/…, qemu-arm-static
	if got := emulated(); got != underQemu {
		t.Fatalf("emulated() = %v, but the host sees this process as %s", got, host)
	}
}
