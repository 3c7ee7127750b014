package sched

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/internal/sys"
)

// asNobody prepares to run this test binary again as nobody, with env,
// running only the test named run. It skips unless this process is root.
func asNobody(t *testing.T, run string, env ...string) *exec.Cmd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("running a child as nobody needs root")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir := t.TempDir()
	// t.TempDir's parent, the test's own directory, is 0700.
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	in, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "sched.test")
	if err := os.WriteFile(bin, in, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^"+run+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	return cmd
}

// TestSetThreadKeepsResetOnFork: the kernel refuses an unprivileged
// sched_setscheduler that would clear SCHED_RESET_ON_FORK (systemd's
// CPUSchedulingResetOnFork=yes sets it on a service's main thread, where
// Go's main goroutine runs). SetThread cleared it, so it failed with EPERM
// for any policy, and its error blamed the capability; now it keeps the
// flag as it found it.
func TestSetThreadKeepsResetOnFork(t *testing.T) {
	if os.Getenv("SCHED_TEST_RESET_ON_FORK_CHILD") == "1" {
		runtime.LockOSThread()
		if err := sys.SchedSetscheduler(0, sys.SchedBatch|resetOnFork, 0); err != nil {
			t.Fatal(err)
		}
		if err := SetThread(Other, 0); err != nil {
			t.Fatalf("SetThread(other) on a thread with SCHED_RESET_ON_FORK: %v", err)
		}
		p, err := sys.SchedGetscheduler(0)
		if err != nil || p != sys.SchedOther|resetOnFork {
			t.Fatalf("policy %#x %v after SetThread(other), want other with SCHED_RESET_ON_FORK kept", p, err)
		}
		return
	}
	cmd := asNobody(t, "TestSetThreadKeepsResetOnFork", "SCHED_TEST_RESET_ON_FORK_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS")) {
		t.Fatalf("child as nobody: %v\n%s", err, out)
	}
}

// TestUnprivilegedErrors: as nobody (no CAP_SYS_NICE, RLIMIT_RTPRIO 0, no
// CAP_IPC_LOCK), the refusals are ErrPermission and say what to give the
// process. TestRealtimePolicy checks this only when the test itself is
// unprivileged.
func TestUnprivilegedErrors(t *testing.T) {
	if os.Getenv("SCHED_TEST_UNPRIVILEGED_CHILD") == "1" {
		runtime.LockOSThread()
		var rl unix.Rlimit
		unix.Getrlimit(unix.RLIMIT_RTPRIO, &rl)
		if rl.Cur >= 10 {
			t.Skipf("RLIMIT_RTPRIO is %d", rl.Cur)
		}
		err := SetThread(FIFO, 10)
		if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "CAP_SYS_NICE") || !strings.Contains(err.Error(), "LimitRTPRIO=10") {
			t.Errorf("SetThread(fifo, 10) as nobody: %v", err)
		}
		unix.Getrlimit(unix.RLIMIT_MEMLOCK, &rl)
		if rl.Cur == unix.RLIM_INFINITY {
			return
		}
		if err := LockMemory(); err == nil {
			UnlockMemory()
		} else if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "CAP_IPC_LOCK") || !strings.Contains(err.Error(), "LimitMEMLOCK=infinity") {
			t.Errorf("LockMemory as nobody: %v", err)
		}
		return
	}
	out, err := asNobody(t, "TestUnprivilegedErrors", "SCHED_TEST_UNPRIVILEGED_CHILD=1").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- ")) {
		t.Fatalf("child as nobody: %v\n%s", err, out)
	}
}

// TestRealtimeFromIdleError: the kernel lets an unprivileged thread leave
// idle, for any policy, only under an RLIMIT_NICE that allows its nice
// value (20 for nice 0), and for fifo or rr it also checks RLIMIT_RTPRIO.
// The error for fifo from idle asked for RLIMIT_RTPRIO alone, and with it
// given blamed the cpu cgroup; now it names RLIMIT_NICE too. (RLIMIT_RTPRIO
// cannot be raised here, root lacking CAP_SYS_RESOURCE: the cgroup case is
// not tested.)
func TestRealtimeFromIdleError(t *testing.T) {
	if os.Getenv("SCHED_TEST_IDLE_CHILD") == "1" {
		var rl unix.Rlimit
		unix.Getrlimit(unix.RLIMIT_NICE, &rl)
		if rl.Cur >= 20 {
			t.Skipf("RLIMIT_NICE is %d", rl.Cur)
		}
		if err := SetThread(Idle, 0); err != nil {
			t.Fatal(err)
		}
		err := SetThread(FIFO, 10)
		if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "LimitNICE=20") || !strings.Contains(err.Error(), "LimitRTPRIO=10") {
			t.Errorf("SetThread(fifo, 10) from idle as nobody: %v, want ErrPermission naming LimitNICE=20 and LimitRTPRIO=10", err)
		}
		err = SetThread(Other, 0)
		if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "LimitNICE=20") {
			t.Errorf("SetThread(other) from idle as nobody: %v, want ErrPermission naming LimitNICE=20", err)
		}
		if p, _, _ := Thread(); p != Idle {
			t.Errorf("policy %v after the refusals, want idle", p)
		}
		return
	}
	out, err := asNobody(t, "TestRealtimeFromIdleError", "SCHED_TEST_IDLE_CHILD=1").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS")) {
		t.Fatalf("child as nobody: %v\n%s", err, out)
	}
}

// refuseSyscall puts a seccomp filter on the calling thread (which the
// caller holds, in a child process that exits after the test) that fails
// system call nr with EPERM, as systemd's SystemCallFilter= and
// RestrictRealtime= do. It skips the test where there are no seccomp
// filters.
func refuseSyscall(t *testing.T, nr uint32) {
	t.Helper()
	filter := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: nr, Jt: 0, Jf: 1},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
	}
	prog := &unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(prog)), 0, 0)
	runtime.KeepAlive(prog)
	runtime.KeepAlive(filter)
	if err == unix.EINVAL {
		t.Skipf("prctl(PR_SET_SECCOMP): %v: no seccomp filters here (qemu-user refuses them, a kernel without CONFIG_SECCOMP_FILTER has none)", err)
	} else if err != nil {
		t.Fatalf("prctl(PR_SET_SECCOMP): %v", err)
	}
}

// runChild runs this test binary again with env, running only the test
// named run, and fails unless the child passes; it skips if the child
// skipped.
func runChild(t *testing.T, run string, env ...string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+run+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err == nil && bytes.Contains(out, []byte("--- SKIP")) {
		t.Skipf("child skipped:\n%s", out)
	}
	if err != nil || !bytes.Contains(out, []byte("--- PASS")) {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// TestAffinityRefusedBySeccomp: the kernel lets any thread set its own
// affinity, so an EPERM from sched_setaffinity comes from a seccomp filter
// (systemd's SystemCallFilter=~@resources refuses it) or a security
// module. SetAffinity returned it as "sched: sched_setaffinity: operation
// not permitted", which ErrPermission did not match, as the refusals of
// SetThread and LockMemory do; now it matches, still matches EPERM, names
// the CPUs and the filter, and the affinity is left as it was.
func TestAffinityRefusedBySeccomp(t *testing.T) {
	if os.Getenv("SCHED_TEST_AFFINITY_SECCOMP_CHILD") == "1" {
		runtime.LockOSThread()
		orig, err := Affinity()
		if err != nil {
			t.Fatal(err)
		}
		refuseSyscall(t, unix.SYS_SCHED_SETAFFINITY)
		err = SetAffinity(orig[0])
		if !errors.Is(err, ErrPermission) || !errors.Is(err, unix.EPERM) || !strings.Contains(err.Error(), "seccomp") || !strings.Contains(err.Error(), "CPUs ["+strconv.Itoa(orig[0])+"]") {
			t.Fatalf("SetAffinity(%d) under a seccomp filter: %v, want ErrPermission (and EPERM) naming the CPUs and the filter", orig[0], err)
		}
		if got, err := Affinity(); err != nil || !slices.Equal(got, orig) {
			t.Fatalf("affinity %v (%v) after the refusal, want %v as before", got, err, orig)
		}
		t.Log(err)
		return
	}
	runChild(t, "TestAffinityRefusedBySeccomp", "SCHED_TEST_AFFINITY_SECCOMP_CHILD=1")
}

// TestRealtimeRefusedBySeccomp: a seccomp filter that returns EPERM for
// sched_setscheduler (systemd's RestrictRealtime=yes does so for fifo, rr
// and deadline) refuses a thread that has CAP_SYS_NICE. The error blamed
// the thread's cpu cgroup, saying its cpu.rt_runtime_us was 0 where it was
// 950000; now it names the seccomp filter and how to lift it, and says the
// cgroup is not the cause where it can read its runtime. Batch, refused by
// the same filter, was explained as a thread leaving idle.
func TestRealtimeRefusedBySeccomp(t *testing.T) {
	if os.Getenv("SCHED_TEST_SECCOMP_CHILD") == "1" {
		// The filter goes on this thread alone, in a child process that
		// exits after the test.
		runtime.LockOSThread()
		if err := SetThread(FIFO, 10); err != nil {
			t.Skipf("no real-time priority for this test even without a filter: %v", err)
		}
		if err := SetThread(Other, 0); err != nil {
			t.Fatal(err)
		}
		refuseSyscall(t, unix.SYS_SCHED_SETSCHEDULER)
		err := SetThread(FIFO, 10)
		if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "seccomp") || !strings.Contains(err.Error(), "RestrictRealtime=no") {
			t.Fatalf("SetThread(fifo, 10) under a seccomp filter: %v, want ErrPermission naming the filter and RestrictRealtime=no", err)
		}
		if rt, file := cgroupRTRuntime(); file != "" && strings.Contains(err.Error(), "has no real-time runtime") {
			t.Fatalf("SetThread(fifo, 10) under a seccomp filter blames the cgroup, whose %s is %d: %v", file, rt, err)
		}
		t.Log(err)
		// A filter that refuses every sched_setscheduler (systemd's
		// SystemCallFilter=~@resources) refuses batch too, which the
		// kernel grants a thread that is not idle: the error said
		// "leaving idle" for a thread in other.
		err = SetThread(Batch, 0)
		if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "seccomp") || strings.Contains(err.Error(), "leaving idle") {
			t.Fatalf("SetThread(batch, 0) from other under a seccomp filter: %v, want ErrPermission naming the filter", err)
		}
		t.Log(err)
		return
	}
	runChild(t, "TestRealtimeRefusedBySeccomp", "SCHED_TEST_SECCOMP_CHILD=1")
}

// TestLockMemoryInUserNamespace: in a user namespace of its own (a
// rootless container) a process is root with CAP_IPC_LOCK, which the
// kernel does not count there: mlockall is refused under a finite
// RLIMIT_MEMLOCK. The error asked for CAP_IPC_LOCK, which the process has;
// now it says the capability counts only in the host's namespace and
// names the limit to raise.
func TestLockMemoryInUserNamespace(t *testing.T) {
	if os.Getenv("SCHED_TEST_USERNS_CHILD") == "1" {
		var rl unix.Rlimit
		unix.Getrlimit(unix.RLIMIT_MEMLOCK, &rl)
		if rl.Cur == unix.RLIM_INFINITY {
			t.Skip("RLIMIT_MEMLOCK is unlimited: mlockall is granted in any namespace")
		}
		if capable, err := sys.HasCapability(unix.CAP_IPC_LOCK); !capable || !inUserNamespace() {
			t.Fatalf("child: CAP_IPC_LOCK %v (%v), in a user namespace %v: want both", capable, err, inUserNamespace())
		}
		err := LockMemory()
		if err == nil {
			UnlockMemory()
			t.Skipf("mlockall granted under RLIMIT_MEMLOCK %d bytes", rl.Cur)
		}
		if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "host's user namespace") || !strings.Contains(err.Error(), "--ulimit memlock=-1") {
			t.Fatalf("LockMemory in a user namespace with CAP_IPC_LOCK: %v, want ErrPermission saying the capability counts only in the host's namespace", err)
		}
		t.Log(err)
		return
	}
	args := []string{"-test.run=^TestLockMemoryInUserNamespace$", "-test.count=1", "-test.v"}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "SCHED_TEST_USERNS_CHILD=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Unshareflags: syscall.CLONE_NEWUSER,
		UidMappings:  []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings:  []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Start()
	if errors.Is(err, syscall.EINVAL) {
		// qemu-user cannot unshare (its own threads make the process
		// multi-threaded); unshare(1) can, before it execs the child.
		tool, lerr := exec.LookPath("unshare")
		if lerr != nil {
			t.Skipf("cannot start a child in a user namespace of its own (%v), and no unshare(1): %v", err, lerr)
		}
		cmd = exec.Command(tool, append([]string{"--user", "--map-root-user", "--", os.Args[0]}, args...)...)
		cmd.Env = append(os.Environ(), "SCHED_TEST_USERNS_CHILD=1")
		cmd.Stdout, cmd.Stderr = &out, &out
		err = cmd.Start()
	}
	if err != nil {
		t.Skipf("cannot start a child in a user namespace of its own (user namespaces disabled?): %v", err)
	}
	err = cmd.Wait()
	if err == nil && bytes.Contains(out.Bytes(), []byte("--- SKIP")) {
		t.Skipf("child skipped:\n%s", out.Bytes())
	}
	if err != nil || !bytes.Contains(out.Bytes(), []byte("--- PASS")) {
		t.Fatalf("child in a user namespace: %v\n%s", err, out.Bytes())
	}
}

// dropCapability removes capability c from the calling thread's effective
// set (capset for this thread alone; the other threads keep theirs).
func dropCapability(c int) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return err
	}
	data[c/32].Effective &^= 1 << (c % 32)
	return unix.Capset(&hdr, &data[0])
}

// TestCapabilityIsTheCallingThreads: Linux keeps capabilities per thread
// and checks those of the thread that makes a call. HasCapability read the
// main thread's (/proc/self/status), so a thread that had dropped
// CAP_SYS_NICE was said to have it, and SetThread's refusal on that thread
// blamed a cgroup or a filter "although this process has CAP_SYS_NICE".
// Now it reports the calling thread's.
func TestCapabilityIsTheCallingThreads(t *testing.T) {
	if os.Getenv("SCHED_TEST_THREAD_CAPS_CHILD") == "1" {
		// The capability goes from a thread other than the main one,
		// whose capabilities /proc/self/status shows. The test's
		// goroutine holds its thread; a goroutine that locks another
		// gets another.
		runtime.LockOSThread()
		onOtherThread := func(f func()) {
			done := make(chan struct{})
			go func() {
				defer close(done)
				// Never undone where it drops the capability: the
				// thread exits with the goroutine.
				runtime.LockOSThread()
				f()
			}()
			<-done
		}
		drop := func() {
			if err := dropCapability(unix.CAP_SYS_NICE); err != nil {
				t.Fatalf("capset: %v", err)
			}
			if capable, err := sys.HasCapability(unix.CAP_SYS_NICE); err != nil || capable {
				t.Errorf("thread %d (process %d) dropped CAP_SYS_NICE; HasCapability there says %v (%v), want false", unix.Gettid(), os.Getpid(), capable, err)
			}
			var rl unix.Rlimit
			unix.Getrlimit(unix.RLIMIT_RTPRIO, &rl)
			if rl.Cur >= 10 {
				t.Logf("RLIMIT_RTPRIO is %d: SetThread(fifo, 10) needs no capability, its error is not checked", rl.Cur)
				return
			}
			err := SetThread(FIFO, 10)
			if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "needs CAP_SYS_NICE") || strings.Contains(err.Error(), "although") {
				t.Errorf("SetThread(fifo, 10) on a thread without CAP_SYS_NICE: %v, want ErrPermission asking for CAP_SYS_NICE", err)
			}
		}
		keep := func() {
			if capable, err := sys.HasCapability(unix.CAP_SYS_NICE); err != nil || !capable {
				t.Errorf("thread %d (process %d) kept CAP_SYS_NICE; HasCapability there says %v (%v), want true", unix.Gettid(), os.Getpid(), capable, err)
			}
		}
		if unix.Gettid() == os.Getpid() {
			onOtherThread(drop)
			keep()
		} else {
			drop()
			onOtherThread(keep)
		}
		return
	}
	if capable, err := sys.HasCapability(unix.CAP_SYS_NICE); err != nil || !capable {
		t.Skipf("needs CAP_SYS_NICE to drop from one thread (run the tests as root): %v", err)
	}
	runChild(t, "TestCapabilityIsTheCallingThreads", "SCHED_TEST_THREAD_CAPS_CHILD=1")
}
