//go:build linux

package shm

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/edgeipc/edgeipc/internal/racer"
)

func init() { children["open-racer"] = childOpenRacer }

// childOpenRacer races opens of $RACE_PATH as another user (racer.Child)
// whose only group is $RACE_GID.
func childOpenRacer() int {
	gid, _ := strconv.Atoi(os.Getenv("RACE_GID"))
	return racer.Child(gid, racer.OpenPath(os.Getenv("RACE_PATH")))
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
	dir := racer.Dir(t)
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
