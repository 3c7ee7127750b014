//go:build linux

package shm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/internal/sys"
)

func init() {
	children["creator-many"] = childCreatorMany
	children["one-inotify"] = childOneInotify
}

// childOneInotify runs in a user namespace of its own, where it allows
// itself one inotify instance and one watch (affecting no other
// process). Two waits in directory EDGEIPC_SHM_DIR/a share the instance
// and the watch; a wait in EDGEIPC_SHM_DIR/b gets no watch and must fall
// back to looking every 250 ms, alone: the waits in a keep their watch
// (the bound on one sleep is lifted, so only the watch can end them).
func childOneInotify() int {
	fail := func(f string, a ...any) int {
		fmt.Fprintf(os.Stderr, "child: "+f+"\n", a...)
		return 1
	}
	for _, limit := range []string{"max_inotify_instances", "max_inotify_watches"} {
		if err := os.WriteFile("/proc/sys/user/"+limit, []byte("1"), 0); err != nil {
			fmt.Fprintf(os.Stderr, "child: %v\n", err)
			return noLimitExit
		}
	}
	maxSleepNs.Store(int64(time.Hour))
	base := os.Getenv("EDGEIPC_SHM_DIR")
	a, b := filepath.Join(base, "a"), filepath.Join(base, "b")
	for _, d := range []string{a, b} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return fail("%v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), scale(20*time.Second))
	defer cancel()
	waitFor := func(what string, cond func() bool) bool {
		for !cond() {
			if ctx.Err() != nil {
				fail("never: %s", what)
				return false
			}
			time.Sleep(2 * time.Millisecond)
		}
		return true
	}
	a1 := openReaderAsync(ctx, "a1", &SegmentOptions{Dir: a})
	a2 := openReaderAsync(ctx, "a2", &SegmentOptions{Dir: a})
	if !waitFor("the 2 waits in a watching, on the one instance", func() bool { return watchingWaits() == 2 }) {
		return 1
	}
	b1 := openReaderAsync(ctx, "b1", &SegmentOptions{Dir: b})
	var rings []*Ring
	defer func() {
		for _, r := range rings {
			r.Close()
		}
	}()
	hello := func(ch <-chan openResult, name, dir string) error {
		r, err := Create(name, Config{Slots: 8, SlotPayload: 64, Segment: SegmentOptions{Dir: dir}})
		if err != nil {
			return err
		}
		rings = append(rings, r)
		res := <-ch
		if res.err != nil {
			return fmt.Errorf("wait for %s: %w", name, res.err)
		}
		return res.rd.Close()
	}
	if err := hello(b1, "b1", b); err != nil {
		return fail("without a watch: %v", err)
	}
	if w := watchingWaits(); w != 2 {
		return fail("%d waits watching after b1, want the 2 in a", w)
	}
	for _, x := range []struct {
		ch   <-chan openResult
		name string
	}{{a1, "a1"}, {a2, "a2"}} {
		if err := hello(x.ch, x.name, a); err != nil {
			return fail("%v", err)
		}
	}
	if fds := inotifyFds(); len(fds) != 0 || sys.InotifyReaders() != 0 {
		return fail("inotify descriptors %v and %d reading goroutines after the waits", fds, sys.InotifyReaders())
	}
	return 0
}

// childCreatorMany creates the rings EDGEIPC_RINGS names (DIR/NAME,
// separated by commas), commits one frame "hello" in each and keeps them
// until its stdin closes.
func childCreatorMany() int {
	for _, p := range strings.Split(os.Getenv("EDGEIPC_RINGS"), ",") {
		dir, name := filepath.Split(p)
		r, err := Create(name, Config{Slots: 8, SlotPayload: 64, Segment: SegmentOptions{Dir: dir}})
		if err != nil {
			fmt.Fprintf(os.Stderr, "child: %v\n", err)
			return 1
		}
		defer r.Close()
		w, err := r.NewWriter()
		if err == nil {
			_, err = w.Write([]byte("hello"))
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "child: %v\n", err)
			return 1
		}
	}
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// watchingWaits is the number of OpenContext waits registered on the
// process's inotify instance (in this test binary, its only Watches).
func watchingWaits() int { return sys.InotifyWatches() }

// inotifyFds lists the descriptors of this process that are inotify
// instances.
func inotifyFds() []string {
	var fds []string
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if l, _ := os.Readlink("/proc/self/fd/" + e.Name()); l == "anon_inode:inotify" {
			fds = append(fds, e.Name())
		}
	}
	return fds
}

// inotifyWatches is the number of watches of inotify descriptor fd, as
// the kernel lists them in its fdinfo.
func inotifyWatches(t *testing.T, fd string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/fdinfo/" + fd)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "inotify wd:")
}

// eventuallyTrue polls cond (an observable state of the kernel or of the
// package) until it holds, and fails the test naming what after a while.
func eventuallyTrue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(scale(10 * time.Second))
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// oneInstance checks that this process holds exactly one inotify
// descriptor, with watches watches, and returns it.
func oneInstance(t *testing.T, watches int) string {
	t.Helper()
	fds := inotifyFds()
	if len(fds) != 1 {
		t.Fatalf("%d inotify descriptors open (%v), want 1 shared by every wait", len(fds), fds)
	}
	if n := inotifyWatches(t, fds[0]); n != watches {
		t.Fatalf("%d watches on the inotify descriptor, want %d", n, watches)
	}
	return fds[0]
}

// noWaitLeft checks, once every wait has ended, that no inotify
// descriptor and no goroutine of the waits remains (the test's own
// goroutines get a moment to return after their last send).
func noWaitLeft(t *testing.T, goroutines int) {
	t.Helper()
	if fds := inotifyFds(); len(fds) != 0 {
		t.Errorf("inotify descriptors %v still open after every wait ended", fds)
	}
	if n := sys.InotifyReaders(); n != 0 {
		t.Errorf("%d inotify reading goroutines after every wait ended", n)
	}
	eventuallyTrue(t, fmt.Sprintf("goroutines back to %d (%d now)", goroutines, runtime.NumGoroutine()),
		func() bool { return runtime.NumGoroutine() <= goroutines })
}

// TestOpenContextManyWaitsOneInstance starts 200 waits at once (more than
// the default fs.inotify.max_user_instances, 128), in two directories,
// for rings a child process then creates: every wait must end with its
// ring, while the process holds one inotify descriptor (it held one per
// wait, and waits past the user's limit fell back to polling), with one
// watch per directory; afterwards no descriptor and no goroutine remain.
func TestOpenContextManyWaitsOneInstance(t *testing.T) {
	if fds := inotifyFds(); len(fds) != 0 {
		t.Fatalf("inotify descriptors %v open before the test", fds)
	}
	goroutines := runtime.NumGoroutine()
	dirs := []string{t.TempDir(), t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), scale(30*time.Second))
	defer cancel()
	const perDir = 100
	var chs []<-chan openResult
	var rings []string
	for i := 0; i < perDir; i++ {
		for _, dir := range dirs {
			name := "many" + strconv.Itoa(i)
			chs = append(chs, openReaderAsync(ctx, name, &SegmentOptions{Dir: dir}))
			rings = append(rings, filepath.Join(dir, name))
		}
	}
	eventuallyTrue(t, fmt.Sprintf("%d waits watching (%d are; is the user out of inotify instances? see fs.inotify.max_user_instances)", len(chs), watchingWaits()),
		func() bool { return watchingWaits() == len(chs) })
	oneInstance(t, len(dirs))

	// The most inotify descriptors held at once until every wait ended.
	var most atomic.Int32
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if n := int32(len(inotifyFds())); n > most.Load() {
				most.Store(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	cmd := child(t, "creator-many", "EDGEIPC_RINGS="+strings.Join(rings, ","))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	startChild(t, cmd)
	for _, ch := range chs {
		expectHello(t, ctx, ch)
	}
	close(stop)
	<-sampled
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Errorf("child: %v", err)
	}
	if n := most.Load(); n > 1 {
		t.Errorf("%d inotify descriptors held at once during the waits, want 1", n)
	}
	noWaitLeft(t, goroutines)
}

// TestOpenContextSharedWatchCancel: waits in one directory named by its
// path and through a symbolic link share one watch (the kernel gives both
// names one watch descriptor); cancelling the waits made through the link
// ends them at once, and leaves the watch to the others, which still see
// their rings created (the bound on one sleep is lifted: a watch removed
// under them would leave them waiting until their context ends).
func TestOpenContextSharedWatchCancel(t *testing.T) {
	defer maxSleepNs.Store(maxSleepNs.Load())
	maxSleepNs.Store(int64(time.Hour))
	goroutines := runtime.NumGoroutine()
	dir := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), scale(20*time.Second))
	defer cancel()
	cctx, ccancel := context.WithCancel(ctx)
	defer ccancel()
	const n = 5
	var stay, leave []<-chan openResult
	for i := 0; i < n; i++ {
		stay = append(stay, openReaderAsync(ctx, "stay"+strconv.Itoa(i), &SegmentOptions{Dir: dir}))
		leave = append(leave, openReaderAsync(cctx, "leave"+strconv.Itoa(i), &SegmentOptions{Dir: link}))
		leave = append(leave, openReaderAsync(cctx, "leave"+strconv.Itoa(i), &SegmentOptions{Dir: dir + "/."}))
	}
	all := len(stay) + len(leave)
	eventuallyTrue(t, fmt.Sprintf("%d waits watching", all), func() bool { return watchingWaits() == all })
	fd := oneInstance(t, 1)
	ccancel()
	for _, ch := range leave {
		if res := <-ch; !errors.Is(res.err, context.Canceled) {
			t.Fatalf("a cancelled wait: %v, want context.Canceled", res.err)
		}
	}
	if w := watchingWaits(); w != len(stay) {
		t.Fatalf("%d waits watching after the cancel, want %d", w, len(stay))
	}
	if fds := inotifyFds(); len(fds) != 1 || fds[0] != fd || inotifyWatches(t, fd) != 1 {
		t.Fatalf("after the cancel: inotify descriptors %v (watches on %s: %d), want %s with its 1 watch",
			fds, fd, inotifyWatches(t, fd), fd)
	}
	for i, ch := range stay {
		createAndWrite(t, "stay"+strconv.Itoa(i), SegmentOptions{Dir: dir})
		expectHello(t, ctx, ch)
	}
	noWaitLeft(t, goroutines)
}

// TestOpenContextSharedDirGoes: of three directories with waits in each,
// one is replaced by another directory (renamed over it) and one removed
// during the waits. The waits in the removed one end at once with an
// error matching os.ErrNotExist, as a wait in a missing directory does;
// those in the replaced one watch its replacement and find their rings
// there; those in the third are not disturbed. (The bound on one sleep is
// lifted: only the watch can end the waits.)
func TestOpenContextSharedDirGoes(t *testing.T) {
	defer maxSleepNs.Store(maxSleepNs.Load())
	maxSleepNs.Store(int64(time.Hour))
	goroutines := runtime.NumGoroutine()
	base := t.TempDir()
	keep, replaced, removed := filepath.Join(base, "keep"), filepath.Join(base, "replaced"), filepath.Join(base, "removed")
	for _, d := range []string{keep, replaced, removed, replaced + ".new"} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), scale(20*time.Second))
	defer cancel()
	const n = 3
	chs := map[string][]<-chan openResult{}
	for i := 0; i < n; i++ {
		for _, d := range []string{keep, replaced, removed} {
			chs[d] = append(chs[d], openReaderAsync(ctx, "r"+strconv.Itoa(i), &SegmentOptions{Dir: d}))
		}
	}
	eventuallyTrue(t, "9 waits watching", func() bool { return watchingWaits() == 3*n })
	fd := oneInstance(t, 3)
	// rename(2) itself: os.Rename refuses a directory as the target.
	if err := unix.Rename(replaced+".new", replaced); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(removed); err != nil {
		t.Fatal(err)
	}
	for _, ch := range chs[removed] {
		if res := <-ch; !errors.Is(res.err, os.ErrNotExist) || ctx.Err() != nil {
			t.Fatalf("directory removed during the wait: %v, want an error at once matching os.ErrNotExist", res.err)
		}
	}
	// The waits in the replaced directory watch the new one, and the
	// kernel dropped the watches of the two that went.
	eventuallyTrue(t, "2 watches, on keep and on the new replaced", func() bool {
		return watchingWaits() == 2*n && inotifyWatches(t, fd) == 2
	})
	for _, d := range []string{replaced, keep} {
		for i, ch := range chs[d] {
			createAndWrite(t, "r"+strconv.Itoa(i), SegmentOptions{Dir: d})
			expectHello(t, ctx, ch)
		}
	}
	noWaitLeft(t, goroutines)
}

// TestOpenContextOneInstanceOneWatch: a process allowed one inotify
// instance and one watch (in a user namespace of its own) waits in two
// directories: the waits in the first share the instance and its watch,
// the one in the second looks every 250 ms, and all end with their rings.
func TestOpenContextOneInstanceOneWatch(t *testing.T) {
	testDir(t)
	runInUserNS(t, "one-inotify")
}

// TestOpenContextQueueOverflow: while the reading goroutine is held (the
// test holds the lock it takes to deliver events), more files are created
// in the directory than the kernel queues events for
// (fs.inotify.max_queued_events), then the ring: its event is dropped and
// the kernel queues IN_Q_OVERFLOW instead, which must wake every wait to
// look again. (The bound on one sleep is lifted: it waited until its
// context ended.)
func TestOpenContextQueueOverflow(t *testing.T) {
	defer maxSleepNs.Store(maxSleepNs.Load())
	maxSleepNs.Store(int64(time.Hour))
	b, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events")
	if err != nil {
		t.Fatal(err)
	}
	queued, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if queued > 1<<17 {
		t.Skipf("fs.inotify.max_queued_events is %d: too many files to create to overflow it", queued)
	}
	dir := testDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), scale(30*time.Second))
	defer cancel()
	ch := openReaderAsync(ctx, "overflow", nil)
	eventuallyTrue(t, "the wait watching", func() bool { return watchingWaits() == 1 })
	release := sys.HoldInotifyEvents()
	defer release()
	for i := 0; i <= queued; i++ {
		if err := os.Symlink("x", filepath.Join(dir, "f"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	createAndWrite(t, "overflow", SegmentOptions{})
	release()
	expectHello(t, ctx, ch)
}
