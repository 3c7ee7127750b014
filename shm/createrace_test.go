//go:build linux

package shm

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/internal/racer"
)

func init() { children["open-racer"] = childOpenRacer }

// childOpenRacer races opens of $RACE_PATH as another user (racer.Child)
// whose only group is $RACE_GID.
func childOpenRacer() int {
	gid, _ := strconv.Atoi(os.Getenv("RACE_GID"))
	path := os.Getenv("RACE_PATH")
	return racer.Child(gid, func() error {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
		}
		return err
	})
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
	stop := racer.Start(t, cmd)
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
	if n := stop(); n != 0 {
		t.Fatalf("a process outside group 4242 opened the segment %d times during 1000 creations", n)
	}
}
