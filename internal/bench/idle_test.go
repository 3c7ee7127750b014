package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeipc/edgeipc/shm"
)

// idleChild joins the ring named in $EDGEIPC_BENCH_IDLE_RING as a reader
// (Spin from $EDGEIPC_BENCH_IDLE_SPIN, default 0; with fd 3 as its eventfd
// if present) and blocks in Next until one frame arrives.
func idleChild() error {
	dir, name, _ := strings.Cut(os.Getenv("EDGEIPC_BENCH_IDLE_RING"), ":")
	spin, _ := strconv.Atoi(os.Getenv("EDGEIPC_BENCH_IDLE_SPIN"))
	opts := &shm.ReaderOptions{Spin: spin}
	if os.Getenv("EDGEIPC_BENCH_IDLE_EVENTFD") == "1" {
		ev, err := shm.EventfdFromFile(os.NewFile(3, "eventfd"))
		if err != nil {
			return err
		}
		defer ev.Close()
		opts.Notifier = ev
	}
	rd, err := shm.OpenReader(name, &shm.SegmentOptions{Dir: dir}, opts)
	if err != nil {
		return err
	}
	defer rd.Close()
	f, err := rd.NextDeadline(time.Now().Add(60 * time.Second))
	if err != nil {
		return err
	}
	if string(f.Data) != "wake" {
		return fmt.Errorf("got %q, want wake", f.Data)
	}
	return nil
}

// cpuTicks returns utime+stime of pid in clock ticks (/proc/PID/stat
// fields 14 and 15).
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("bad stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, errors.New("short stat")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad stat times %q %q", f[11], f[12])
	}
	return u + s, nil
}

// TestIdleReaderUsesNoCPU checks that a reader blocked on an empty ring
// sleeps in the kernel instead of polling: over 2 s its process may use
// at most 2 clock ticks of CPU. This is a correctness property (no
// polling), not a speed assertion. The spin+futex reader polls 10000 times
// first, then must sleep like the others.
func TestIdleReaderUsesNoCPU(t *testing.T) {
	for _, c := range []struct {
		name    string
		eventfd bool
		spin    int
	}{{"futex", false, 0}, {"eventfd", true, 0}, {"spin+futex", false, 10000}} {
		t.Run(c.name, func(t *testing.T) { testIdle(t, c.eventfd, c.spin) })
	}
}

func testIdle(t *testing.T, eventfd bool, spin int) {
	dir := t.TempDir()
	name := fmt.Sprintf("idle-%d", os.Getpid())
	ring, err := shm.Create(name, shm.Config{Slots: 8, SlotPayload: 64, Segment: shm.SegmentOptions{Dir: dir}})
	if err != nil {
		t.Fatal(err)
	}
	defer ring.Close()
	w, err := ring.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	// The qemu fork watchdog polls /proc; the idle child forks nothing and
	// its CPU use is what is measured, so it runs without one.
	cmd.Env = append(os.Environ(), childEnv+"=idle", "EDGEIPC_BENCH_IDLE_RING="+dir+":"+name, "EDGEIPC_QEMUWATCH=off",
		"EDGEIPC_BENCH_IDLE_SPIN="+strconv.Itoa(spin))
	cmd.Stderr = os.Stderr
	if eventfd {
		ev, err := shm.NewEventfd()
		if err != nil {
			t.Fatal(err)
		}
		defer ev.Close()
		w.AddNotifier(ev)
		f, err := ev.File()
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd.ExtraFiles = []*os.File{f}
		cmd.Env = append(cmd.Env, "EDGEIPC_BENCH_IDLE_EVENTFD=1")
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// done is closed when the child has exited; werr is then its status.
	done := make(chan struct{})
	var werr error
	go func() { werr = cmd.Wait(); close(done) }()
	defer func() {
		cmd.Process.Kill() // no-op if it already exited (pidfd)
		<-done
	}()

	// Wait until the child has joined and is asleep: its reader entry is
	// live and the ring counts it as sleeping on the futex or the eventfd.
	pid := cmd.Process.Pid
	joined := time.Now().Add(30 * time.Second)
	for {
		info := ring.Inspect()
		live := false
		for _, r := range info.Readers {
			if r.PID == pid && r.Alive {
				live = true
			}
		}
		if live && (eventfd && info.EvSleepers == 1 || !eventfd && info.Sleepers == 1) {
			break
		}
		select {
		case <-done:
			t.Fatalf("child exited before it slept: %v", werr)
		default:
		}
		if time.Now().After(joined) {
			t.Fatalf("child did not join and sleep within 30s: %+v", info)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // let the child finish starting up
	before, err := cpuTicks(pid)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	after, err := cpuTicks(pid)
	if err != nil {
		t.Fatal(err)
	}
	if used := after - before; used > 2 {
		t.Errorf("a reader blocked on an empty ring used %d clock ticks of CPU in 2s (want <= 2): it is polling", used)
	} else {
		t.Logf("idle reader used %d ticks in 2s", used)
	}
	if _, err := w.Write([]byte("wake")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		if werr != nil {
			t.Fatalf("child: %v", werr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("child did not wake up within 30s of the frame")
	}
}
