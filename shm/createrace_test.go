//go:build linux

package shm

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func init() { children["open-racer"] = childOpenRacer }

// childOpenRacer drops to uid 65534 keeping only gid $RACE_GID, then opens
// $RACE_PATH read-only as fast as it can until stdin closes, and prints how
// many opens succeeded.
func childOpenRacer() int {
	gid, _ := strconv.Atoi(os.Getenv("RACE_GID"))
	if err := syscall.Setgroups(nil); err != nil {
		fmt.Fprintln(os.Stderr, "setgroups:", err)
		return 3
	}
	if err := syscall.Setgid(gid); err != nil {
		fmt.Fprintln(os.Stderr, "setgid:", err)
		return 3
	}
	if err := syscall.Setuid(65534); err != nil {
		fmt.Fprintln(os.Stderr, "setuid:", err)
		return 3
	}
	path := os.Getenv("RACE_PATH")
	var stop atomic.Bool
	go func() {
		io.Copy(io.Discard, os.Stdin)
		stop.Store(true)
	}()
	fmt.Println("ready")
	got := 0
	for !stop.Load() {
		if fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err == nil {
			unix.Close(fd)
			got++
		}
	}
	fmt.Println(got)
	return 0
}

// TestCreateSegmentNoGroupWindow: a segment created for a group is never
// open to the creator's own primary group, not even between its creation and
// the fchown to the configured group. A process of another user whose only
// group is the creator's (here root's gid 0) races every creation with
// open(2); before the fix it won, holding a descriptor to a segment it was
// never meant to see.
func TestCreateSegmentNoGroupWindow(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the racer as another uid")
	}
	dir, err := os.MkdirTemp("", "edgeipc-race-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // the racer must reach the file
		t.Fatal(err)
	}
	opts := &SegmentOptions{Dir: dir, Group: "4242"} // a group the racer is not in
	cmd := child(t, "open-racer", "RACE_PATH="+filepath.Join(dir, FilePrefix+"race"), "RACE_GID="+strconv.Itoa(os.Getegid()))
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer in.Close()
	rd := bufio.NewReader(out)
	if l, err := rd.ReadString('\n'); l != "ready\n" {
		t.Fatalf("racer: %q %v", l, err)
	}
	for i := 0; i < 1000; i++ {
		s, err := CreateSegment("race", 4096, opts)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if err := RemoveSegment("race", opts); err != nil {
			t.Fatal(err)
		}
	}
	in.Close()
	l, err := rd.ReadString('\n')
	if err != nil {
		t.Fatalf("racer: %v", err)
	}
	if n, _ := strconv.Atoi(strings.TrimSpace(l)); n != 0 {
		t.Fatalf("a process outside group 4242 opened the segment %d times during 1000 creations", n)
	}
}
