package sys

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// inotifyFDs counts this process's inotify descriptors.
func inotifyFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && l == "anon_inode:inotify" {
			n++
		}
	}
	return n
}

// woken waits for a wake on w, for at most 10 s.
func woken(w *Watch) bool {
	select {
	case <-w.C():
		return true
	case <-time.After(10 * time.Second):
		return false
	}
}

// quiet says that w has no wake pending, 100 ms after what should not
// wake it (events are passed on by a goroutine).
func quiet(w *Watch) bool {
	time.Sleep(100 * time.Millisecond)
	select {
	case <-w.C():
		return false
	default:
		return true
	}
}

// Watches on files (the runtime's FIFOs and recordings) share the one
// instance: more files than the user's fs.inotify.max_user_instances are
// watched with one descriptor, and each Watch wakes when its file goes.
// Two Watches on one file close one at a time; the instance and its
// goroutine go with the last. (Before, the runtime took an instance per
// FIFO source, and past the limit sources fell back to the periodic
// check without a word.)
func TestWatchInodeFilesShareOneInstance(t *testing.T) {
	n := 200
	if b, err := os.ReadFile("/proc/sys/fs/inotify/max_user_instances"); err == nil {
		if lim, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && lim+8 > n && lim < 4096 {
			n = lim + 8
		}
	}
	dir := t.TempDir()
	ws := make([]*Watch, n)
	paths := make([]string, n)
	for i := range ws {
		paths[i] = filepath.Join(dir, strconv.Itoa(i))
		if err := os.WriteFile(paths[i], nil, 0o600); err != nil {
			t.Fatal(err)
		}
		w, err := WatchInode(paths[i], WatchLinks, "")
		if err != nil {
			t.Fatalf("watch %d of %d: %v", i, n, err)
		}
		ws[i] = w
	}
	if got := inotifyFDs(t); got != 1 {
		t.Fatalf("%d inotify descriptors for %d watches, want 1", got, n)
	}
	if got := InotifyWatches(); got != n {
		t.Fatalf("%d watches counted, want %d", got, n)
	}
	// A second Watch on file 0, closed first (twice: harmless); the
	// first still wakes.
	w2, err := WatchInode(paths[0], WatchLinks, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(paths[0], 0o640); err != nil { // IN_ATTRIB
		t.Fatal(err)
	}
	if !woken(ws[0]) || !woken(w2) {
		t.Fatal("the two watches of file 0 not both woken by a chmod")
	}
	w2.Close()
	w2.Close()
	for _, p := range paths {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	for i, w := range ws {
		if !woken(w) {
			t.Fatalf("watch %d of %d not woken when its file was removed", i, n)
		}
	}
	for _, w := range ws {
		w.Close()
	}
	if fds, r := inotifyFDs(t), InotifyReaders(); fds != 0 || r != 0 {
		t.Fatalf("%d inotify descriptors and %d reading goroutines after the last watch closed, want 0", fds, r)
	}
}

// Two Watches with different masks on one inode (the kernel's one watch
// takes the union: IN_MASK_ADD) are each woken by their own events only:
// a directory watched for an entry (shm's wait for a ring) and for its
// links (a runtime watch). Without IN_MASK_ADD the second mask replaced
// the first, and the wait for the entry was never woken.
func TestWatchInodeMasksAdd(t *testing.T) {
	dir := t.TempDir()
	entry, err := WatchInode(dir, WatchEntries, "ring")
	if err != nil {
		t.Fatal(err)
	}
	defer entry.Close()
	links, err := WatchInode(dir, WatchLinks, "")
	if err != nil {
		t.Fatal(err)
	}
	defer links.Close()
	if err := os.WriteFile(filepath.Join(dir, "other"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if !quiet(entry) || !quiet(links) {
		t.Fatal("a file of another name woke a watch")
	}
	if err := os.WriteFile(filepath.Join(dir, "ring"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if !woken(entry) {
		t.Fatal("the entry's watch not woken when it was created")
	}
	if !quiet(links) {
		t.Fatal("the links watch woken by an entry created")
	}
	if err := os.Chmod(dir, 0o750); err != nil { // IN_ATTRIB of the directory
		t.Fatal(err)
	}
	if !woken(links) {
		t.Fatal("the links watch not woken by a chmod")
	}
	if !quiet(entry) {
		t.Fatal("the entry's watch woken by a chmod")
	}
	// The directory going wakes both (their own events), and they look
	// again.
	moved := dir + ".moved"
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	defer os.Rename(moved, dir) // (for TempDir's cleanup)
	if !woken(entry) || !woken(links) {
		t.Fatal("a watch not woken when its directory moved")
	}
}

// A path that does not exist, or a file watched for its entries, gives
// no watch and an error that says why; nothing is left open.
func TestWatchInodeErrors(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		mask uint32
		want error
	}{{filepath.Join(dir, "missing"), WatchLinks, unix.ENOENT}, {f, WatchEntries, unix.ENOTDIR}} {
		w, err := WatchInode(tc.path, tc.mask, "x")
		if w != nil || !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.path) {
			t.Fatalf("WatchInode(%s): %v, %v; want no watch and %v naming the path", tc.path, w, err, tc.want)
		}
		w.Close()         // (nil: harmless)
		if w.C() != nil { // (nil: never receives)
			t.Fatal("a nil watch's channel is not nil")
		}
	}
	if fds := inotifyFDs(t); fds != 0 {
		t.Fatalf("%d inotify descriptors left after failed watches", fds)
	}
}

// A Watch on a directory with a name is woken by the events it asked for
// that name that entry, and, as WatchInode says, by those of the
// directory itself: here its own IN_ATTRIB (a chmod of the directory),
// not the IN_ATTRIB of another entry. Before, the directory's own events
// were passed on only if they were one of selfEvents (it went, moved,
// lost its watch), and a chmod of the directory was dropped.
func TestWatchInodeNamedGetsDirectoryEvents(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := WatchInode(dir, WatchEntries|unix.IN_ATTRIB, "ring")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := os.Chmod(other, 0o640); err != nil { // IN_ATTRIB naming "other"
		t.Fatal(err)
	}
	if !quiet(w) {
		t.Fatal("woken by a chmod of another entry")
	}
	if err := os.Chmod(dir, 0o750); err != nil { // IN_ATTRIB of the directory itself
		t.Fatal(err)
	}
	if !woken(w) {
		t.Fatal("not woken by a chmod of the directory itself, an event it asked for")
	}
}
