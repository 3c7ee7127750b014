//go:build linux

package shm

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestSegmentModes(t *testing.T) {
	dir := t.TempDir()
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	s, err := CreateSegment("m600", 4096, &SegmentOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, err := os.Lstat(filepath.Join(dir, "edgeipc.m600"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600 even with umask 0", st.Mode().Perm())
	}
	if st.Size() != 4096 {
		t.Errorf("size %d, want 4096 (preallocated)", st.Size())
	}
	gid := strconv.Itoa(os.Getgid())
	g, err := CreateSegment("m660", 4096, &SegmentOptions{Dir: dir, Group: gid})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	st, _ = os.Lstat(filepath.Join(dir, "edgeipc.m660"))
	if st.Mode().Perm() != 0o660 {
		t.Errorf("group mode %v, want 0660", st.Mode().Perm())
	}
	if got := st.Sys().(*syscall.Stat_t).Gid; strconv.Itoa(int(got)) != gid {
		t.Errorf("gid %d, want %s", got, gid)
	}
	if _, err := CreateSegment("bad", 4096, &SegmentOptions{Dir: dir, Mode: 0o644}); !errors.Is(err, ErrInvalid) {
		t.Errorf("mode 0644 accepted: %v", err)
	}
}

func TestSegmentExclusiveAndNoFollow(t *testing.T) {
	dir := t.TempDir()
	opts := &SegmentOptions{Dir: dir}
	s, err := CreateSegment("x", 4096, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := CreateSegment("x", 4096, opts); !errors.Is(err, os.ErrExist) {
		t.Fatalf("second create: %v, want ErrExist", err)
	}
	// A symlink planted under a segment name is never followed.
	target := filepath.Join(dir, "target")
	os.WriteFile(target, make([]byte, 8192), 0o600)
	os.Symlink(target, filepath.Join(dir, "edgeipc.link"))
	if _, err := OpenSegment("link", opts); err == nil {
		t.Fatal("opened a segment through a symlink")
	}
	if _, err := CreateSegment("link", 4096, opts); err == nil {
		t.Fatal("created a segment over a symlink")
	}
	for _, bad := range []string{"", ".hidden", "-x", "a/b", "../x", "sp ace"} {
		if _, err := CreateSegment(bad, 4096, opts); !errors.Is(err, ErrInvalid) {
			t.Errorf("name %q accepted: %v", bad, err)
		}
	}
}

func TestSegmentNoSpace(t *testing.T) {
	dir := t.TempDir()
	free, err := freeSpace(dir)
	if err != nil {
		t.Fatal(err)
	}
	need := free + 1<<30
	if int64(int(need)) != int64(need) {
		t.Skip("free space does not fit in int on this platform")
	}
	_, err = CreateSegment("huge", int(need), &SegmentOptions{Dir: dir})
	var ns *NoSpaceError
	if !errors.As(err, &ns) || !errors.Is(err, ErrNoSpace) {
		t.Fatalf("err = %v, want *NoSpaceError", err)
	}
	if ns.Need != need || ns.Dir != dir {
		t.Errorf("NoSpaceError = %+v", ns)
	}
	if _, err := os.Lstat(filepath.Join(dir, "edgeipc.huge")); !os.IsNotExist(err) {
		t.Errorf("failed create left a file behind: %v", err)
	}
}

func TestListAndRemove(t *testing.T) {
	dir := t.TempDir()
	opts := &SegmentOptions{Dir: dir}
	r, err := Create("ring1", Config{Slots: 4, SlotPayload: 64, Segment: *opts})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s, err := CreateSemaphore("sem1", 0, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	os.WriteFile(filepath.Join(dir, "unrelated"), []byte("x"), 0o600)
	list, err := ListSegments(opts)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{}
	for _, l := range list {
		kinds[l.Name] = l.Kind
	}
	if len(list) != 2 || kinds["ring1"] != "ring" || kinds["sem1"] != "semaphore" {
		t.Fatalf("list = %+v", list)
	}
	if err := Remove("ring1", opts); err != nil {
		t.Fatal(err)
	}
	if err := Remove("ring1", opts); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("second remove: %v", err)
	}
}

// TestSegmentRemoved: a reader's segment reports its file removed, also
// when a ring of the same name has been created since (as a runtime
// recreating a ring does), and not before; a memfd never does.
func TestSegmentRemoved(t *testing.T) {
	opts := &SegmentOptions{Dir: t.TempDir()}
	r, err := Create("gone", Config{Slots: 4, SlotPayload: 64, Segment: *opts})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rd, err := OpenReader("gone", opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if gone, err := rd.Ring().Segment().Removed(); gone || err != nil {
		t.Fatalf("Removed of a ring in place = %v, %v", gone, err)
	}
	if err := Remove("gone", opts); err != nil {
		t.Fatal(err)
	}
	r2, err := Create("gone", Config{Slots: 8, SlotPayload: 64, Segment: *opts})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if gone, err := rd.Ring().Segment().Removed(); !gone || err != nil {
		t.Fatalf("Removed of a ring removed and created anew = %v, %v; want true", gone, err)
	}
	if gone, err := r2.Segment().Removed(); gone || err != nil {
		t.Fatalf("Removed of the new ring = %v, %v", gone, err)
	}
	rd.Close()
	if _, err := rd.Ring().Segment().Removed(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Removed after Close: %v, want ErrClosed", err)
	}
	m, err := NewMemfd("mem", 8192)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if gone, err := m.Removed(); gone || err != nil {
		t.Fatalf("Removed of a memfd = %v, %v; want false", gone, err)
	}
}

func TestMemfdSealed(t *testing.T) {
	s, err := NewMemfd("mem", 8192)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f, err := s.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(100); err == nil {
		t.Fatal("sealed memfd could be shrunk")
	}
	if err := f.Truncate(1 << 20); err == nil {
		t.Fatal("sealed memfd could be grown")
	}
	// An unsealed descriptor is refused by OpenFd.
	tmp, _ := os.CreateTemp(t.TempDir(), "x")
	tmp.Truncate(8192)
	if _, err := OpenFd(tmp, "plain"); err == nil {
		t.Fatal("OpenFd accepted an unsealed file")
	}
}

// TestOpenFdRefusesHugetlb: a sealed memfd backed by huge pages is refused,
// since its pages can fault with SIGBUS when the pool runs dry (the seals
// protect only against truncation).
func TestOpenFdRefusesHugetlb(t *testing.T) {
	fd, err := unix.MemfdCreate("edgeipc-test-huge", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_HUGETLB)
	if errors.Is(err, unix.EINVAL) {
		t.Skip("this kernel has no hugetlbfs (memfd_create(MFD_HUGETLB): EINVAL), so there is nothing to refuse")
	}
	if err != nil {
		t.Fatalf("memfd_create(MFD_HUGETLB): %v", err)
	}
	f := os.NewFile(uintptr(fd), "huge")
	if err := f.Truncate(0); err != nil { // no pages needed: size 0 stays valid
		t.Fatal(err)
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW); err != nil {
		t.Fatalf("seal a hugetlb memfd: %v", err)
	}
	s, err := OpenFd(f, "huge")
	if err == nil {
		s.Close()
		t.Fatal("OpenFd accepted a hugetlbfs memfd")
	}
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "not a memfd on tmpfs") {
		t.Fatalf("OpenFd(hugetlb memfd): %v; want ErrInvalid naming tmpfs", err)
	}
}

// TestSegmentUnlimitedTmpfs: a tmpfs mounted with size=0 has no limit and
// reports 0 blocks; the free-space check must not read that as "0 free".
func TestSegmentUnlimitedTmpfs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs (run the tests as root, e.g. in the CI container)")
	}
	dir := t.TempDir()
	if err := unix.Mount("edgeipc-test", dir, "tmpfs", 0, "size=0"); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v): run the tests as root with CAP_SYS_ADMIN", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	seg, err := CreateSegment("unlimited", 1<<20, &SegmentOptions{Dir: dir})
	if err != nil {
		t.Fatalf("create on an unlimited tmpfs: %v", err)
	}
	seg.Close()
}

func TestSegmentGroupIDRange(t *testing.T) {
	dir := t.TempDir()
	for _, g := range []string{"4294967295", "4294967296", "99999999999"} {
		if _, err := CreateSegment("g", 4096, &SegmentOptions{Dir: dir, Group: g}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("group %s: %v, want an out-of-range error", g, err)
		}
	}
}

// SegmentOptions.Owners: a segment that belongs to a user it does not
// list is refused with an *OwnerError naming the owner, at once, before
// anything of it is read or mapped (an empty file is not waited for as a
// ring being created); one of a listed owner opens. Create is unaffected,
// and its "already exists" names another user's file's owner.
func TestSegmentOwners(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a segment to another user needs root")
	}
	dir := t.TempDir()
	r, err := Create("foreign", Config{Slots: 4, SlotPayload: 64, Segment: SegmentOptions{Dir: dir}})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	path := SegmentPath("foreign", &SegmentOptions{Dir: dir})
	empty := SegmentPath("empty", &SegmentOptions{Dir: dir})
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, empty} {
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	me := os.Geteuid()
	for _, name := range []string{"foreign", "empty"} {
		_, err := Open(name, &SegmentOptions{Dir: dir, Owners: []int{me}})
		var oe *OwnerError
		if !errors.Is(err, ErrForeignOwner) || !errors.As(err, &oe) || oe.UID != 65534 {
			t.Fatalf("Open(%s) with Owners [%d] of a segment of uid 65534: %v, want an *OwnerError for uid 65534", name, me, err)
		}
		if !strings.Contains(err.Error(), "belongs to uid 65534") || !strings.Contains(err.Error(), "edgeipc ring rm "+name) {
			t.Errorf("Open(%s): %v; want the owner and how to remove it named", name, err)
		}
	}
	for _, opts := range []*SegmentOptions{{Dir: dir}, {Dir: dir, Owners: []int{me, 65534}}} {
		r, err := Open("foreign", opts)
		if err != nil {
			t.Fatalf("Open with Owners %v: %v", opts.Owners, err)
		}
		r.Close()
	}
	_, err = Create("foreign", Config{Slots: 4, SlotPayload: 64, Segment: SegmentOptions{Dir: dir, Owners: []int{me}}})
	if !errors.Is(err, os.ErrExist) || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Fatalf("Create over another user's segment: %v, want os.ErrExist naming uid 65534", err)
	}
}

// TestCreateRefusesWorldWritableDir: a segment directory every user may
// write and that is not sticky is refused (any user could put a file of
// their own in a segment's place); sticky like /dev/shm, or private, is
// fine. Only the runtime refused it; the library and the CLI created
// rings there.
func TestCreateRefusesWorldWritableDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Slots: 4, SlotPayload: 16, Segment: SegmentOptions{Dir: dir}}
	for _, tc := range []struct {
		mode os.FileMode
		ok   bool
	}{{0o777, false}, {0o777 | os.ModeSticky, true}, {0o700, true}} {
		if err := os.Chmod(dir, tc.mode); err != nil {
			t.Fatal(err)
		}
		r, err := Create("open", cfg)
		if tc.ok != (err == nil) || !tc.ok && !strings.Contains(err.Error(), "not sticky") || !tc.ok && !strings.Contains(err.Error(), "chmod +t "+dir) {
			t.Fatalf("Create in a directory of mode %v: %v", tc.mode, err)
		}
		if err == nil {
			r.Close()
			Remove("open", &cfg.Segment)
		}
	}
}

func init() { children["crash-creator"] = childCrashCreator }

// childCrashCreator dies (SIGKILL) in the middle of Create of $EDGEIPC_RING,
// after the segment is allocated and before the ring is initialised.
func childCrashCreator() int {
	testHookRingInit = func(string) { syscall.Kill(os.Getpid(), syscall.SIGKILL) }
	Create(os.Getenv("EDGEIPC_RING"), Config{Slots: 16, SlotPayload: 64})
	return 3 // not reached
}

// TestRingNamedOnlyOnceInitialised: a ring gets its name only once its
// header is complete. Create made the file under its name first, then
// sized and initialised it, which takes seconds for a large ring (2^24
// slots: 2 to 30 s here); an Open meanwhile waited a second at most and
// failed with "ring header was never completed (creator pid N died while
// creating it?); remove the segment", N alive and well, and OpenOrCreate
// with it. A creator killed in between left that file behind, and every
// Open and OpenOrCreate failed on it until someone removed it by hand.
func TestRingNamedOnlyOnceInitialised(t *testing.T) {
	dir := testDir(t)
	defer readyPolls.Store(readyPolls.Load())
	readyPolls.Store(5) // an incomplete ring fails Open in 50 ms
	defer func() { testHookRingInit = nil }()
	var during error
	var listed []SegmentInfo
	testHookRingInit = func(name string) {
		// The ring is being initialised (for a large ring, for seconds).
		r, err := Open(name, nil)
		if err == nil {
			r.Close()
		}
		during = err
		listed, _ = ListSegments(nil)
	}
	r, err := Create("slow", Config{Slots: 16, SlotPayload: 64})
	testHookRingInit = nil
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !errors.Is(during, os.ErrNotExist) {
		t.Errorf("Open while the ring was being created: %v; want an error wrapping os.ErrNotExist (nothing there yet)", during)
	}
	if len(listed) != 0 {
		t.Errorf("ListSegments while the ring was being created: %+v; want nothing", listed)
	}
	if r2, err := Open("slow", nil); err != nil {
		t.Errorf("Open after Create: %v", err)
	} else {
		r2.Close()
	}

	// A creator that dies half-way leaves nothing under the name.
	cmd := child(t, "crash-creator", "EDGEIPC_RING=crashed")
	if err := cmd.Run(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("crashing creator: %v, want killed", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, FilePrefix+"crashed")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a creator killed during Create left %s behind (%v)", FilePrefix+"crashed", err)
	}
	r3, created, err := OpenOrCreate("crashed", Config{Slots: 16, SlotPayload: 64})
	if err != nil || !created {
		t.Fatalf("OpenOrCreate after a creator died: created %v, %v", created, err)
	}
	r3.Close()
}

// TestSemaphoreNamedOnlyOnceFilled: a named semaphore, like a ring, gets
// its name only once its header is written. Before, CreateSemaphore named
// the file zeroed and wrote the magic after: an OpenSemaphore in between
// waited for the magic, and a creator killed in between left a zeroed file
// that every OpenSemaphore refused until someone removed it.
func TestSemaphoreNamedOnlyOnceFilled(t *testing.T) {
	testDir(t)
	defer readyPolls.Store(readyPolls.Load())
	readyPolls.Store(5) // a zeroed semaphore fails Open in 50 ms
	defer func() { testHookSemInit = nil }()
	var during error
	testHookSemInit = func(name string) {
		s, err := OpenSemaphore(name, nil)
		if err == nil {
			s.Close()
		}
		during = err
	}
	s, err := CreateSemaphore("slow", 3, nil)
	testHookSemInit = nil
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !errors.Is(during, os.ErrNotExist) {
		t.Errorf("OpenSemaphore while the semaphore was being created: %v; want an error wrapping os.ErrNotExist (nothing there yet)", during)
	}
	s2, err := OpenSemaphore("slow", nil)
	if err != nil {
		t.Fatalf("OpenSemaphore after CreateSemaphore: %v", err)
	}
	defer s2.Close()
	if v := s2.Value(); v != 3 {
		t.Errorf("value %d; want 3", v)
	}
}

// TestOpenOrCreateWhileAnotherCreatesOnFullDir: two processes OpenOrCreate
// one ring at once in a directory with room for one copy of it. The one
// that loses finds no name yet (the other's ring gets it only once
// initialised) and no room to make its own: it must open the other's ring
// once that is named, as it did when the name came first, not fail with
// ErrNoSpace.
func TestOpenOrCreateWhileAnotherCreatesOnFullDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs (run the tests as root, e.g. in the CI container)")
	}
	dir := t.TempDir()
	if err := unix.Mount("edgeipc-test", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v): run the tests as root with CAP_SYS_ADMIN", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	t.Setenv("EDGEIPC_SHM_DIR", dir)
	cfg := Config{Slots: 128, SlotPayload: 4032} // 532 KiB: one fits in 1 MiB, two do not
	initialising, release := make(chan struct{}), make(chan struct{})
	defer func() { testHookRingInit = nil }()
	testHookRingInit = func(string) {
		testHookRingInit = nil
		close(initialising)
		<-release // a large ring takes this long to initialise
	}
	type result struct {
		r       *Ring
		created bool
		err     error
	}
	first := make(chan result, 1)
	go func() {
		r, created, err := OpenOrCreate("both", cfg)
		first <- result{r, created, err}
	}()
	<-initialising
	go func() {
		time.Sleep(50 * time.Millisecond)
		close(release)
	}()
	r2, created2, err := OpenOrCreate("both", cfg)
	a := <-first
	if a.err != nil || !a.created {
		t.Fatalf("first creator: created %v, %v", a.created, a.err)
	}
	defer a.r.Close()
	if err != nil || created2 {
		t.Fatalf("OpenOrCreate while another process creates the ring: created %v, %v; want it opened", created2, err)
	}
	r2.Close()
}

// TestMissingSegmentDir: a segment directory that does not exist (a typo
// in SegmentOptions.Dir or EDGEIPC_SHM_DIR) is named as such by Create
// and Open. Create said only "statfs DIR: no such file or directory", and
// Open told the user to create the ring, which fails the same way.
func TestMissingSegmentDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nope")
	opts := SegmentOptions{Dir: dir}
	_, err := Create("x", Config{Slots: 4, SlotPayload: 64, Segment: opts})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "segment directory "+dir+" does not exist") {
		t.Errorf("Create in a missing directory: %v", err)
	}
	_, err = Open("x", &opts)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "segment directory "+dir+" does not exist") {
		t.Errorf("Open in a missing directory: %v", err)
	}
}

// TestOpenSemaphoreAsRingDoesNotWait: Open of a fresh named semaphore (a
// file smaller than a ring's header) says at once that it is a semaphore.
// Before, Open took the small file for a ring its creator was still
// sizing and waited for it to grow, until the file was a second old
// (settleTime) or for readyPolls times 10 ms (both made endless here, so
// that the old code never returns).
func TestOpenSemaphoreAsRingDoesNotWait(t *testing.T) {
	testDir(t)
	s, err := CreateSemaphore("notring", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer readyPolls.Store(readyPolls.Load())
	readyPolls.Store(math.MaxInt32)
	defer func(d time.Duration) { settleTime = d }(settleTime)
	settleTime = time.Hour
	done := make(chan error, 1)
	go func() {
		r, err := Open("notring", nil)
		if err == nil {
			r.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "semaphore, not a ring") {
			t.Fatalf("Open of a semaphore: %v; want ErrInvalid naming a semaphore", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Open of a fresh semaphore as a ring waited for it to grow (a minute)")
	}
}

// TestOpenFifoDoesNotWait: a FIFO under a segment's name (O_RDWR opens
// one without blocking) is refused at once as no regular file, as
// docs/abi.md says, not waited for as a ring whose creator is still
// sizing it (settleTime and readyPolls made endless: the old code waited
// for it to grow for ever, a second by default).
func TestOpenFifoDoesNotWait(t *testing.T) {
	dir := testDir(t)
	for _, name := range []string{"ringfifo", "semfifo", "ctxfifo"} {
		if err := unix.Mkfifo(filepath.Join(dir, FilePrefix+name), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	defer readyPolls.Store(readyPolls.Load())
	readyPolls.Store(math.MaxInt32)
	defer func(d time.Duration) { settleTime = d }(settleTime)
	settleTime = time.Hour
	done := make(chan error, 3)
	go func() {
		r, err := Open("ringfifo", nil)
		if err == nil {
			r.Close()
		}
		done <- err
	}()
	go func() {
		s, err := OpenSemaphore("semfifo", nil)
		if err == nil {
			s.Close()
		}
		done <- err
	}()
	go func() {
		r, err := OpenContext(context.Background(), "ctxfifo", nil)
		if err == nil {
			r.Close()
		}
		done <- err
	}()
	for range 3 {
		select {
		case err := <-done:
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "not a regular file") {
				t.Fatalf("Open of a FIFO: %v; want ErrInvalid naming no regular file", err)
			}
		case <-time.After(time.Minute):
			t.Fatal("Open of a fresh FIFO waited for it to grow (a minute)")
		}
	}
}

// TestSegmentDirWithDotDotAfterSymlink: a segment directory written with
// ".." after a symlink names the directory the kernel finds, as it does
// for the C and Python clients given the same text. With lnk a symlink to
// real/sub, "lnk/../seg" is real/seg; filepath.Join made it "seg" next to
// lnk, so Create failed there (or made the ring where no C program
// looked), and ListSegments, which read the kernel's directory, then
// looked each entry up in the lexical one.
func TestSegmentDirWithDotDotAfterSymlink(t *testing.T) {
	tmp := t.TempDir()
	real := filepath.Join(tmp, "real")
	for _, d := range []string{filepath.Join(real, "sub"), filepath.Join(real, "seg")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(real, "sub"), filepath.Join(tmp, "lnk")); err != nil {
		t.Fatal(err)
	}
	dir := tmp + "/lnk/../seg"
	opts := &SegmentOptions{Dir: dir}
	if got := SegmentPath("x", opts); got != dir+"/edgeipc.x" {
		t.Errorf("SegmentPath %q; want %q", got, dir+"/edgeipc.x")
	}
	if got := SegmentDir(opts); got != dir {
		t.Errorf("SegmentDir %q; want %q", got, dir)
	}
	r, err := Create("x", Config{Slots: 4, SlotPayload: 64, Segment: *opts})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := os.Lstat(filepath.Join(real, "seg", "edgeipc.x")); err != nil {
		t.Fatalf("the ring is not where the kernel resolves %s: %v", dir, err)
	}
	list, err := ListSegments(opts)
	if err != nil || len(list) != 1 || list[0].Name != "x" || list[0].Kind != "ring" {
		t.Fatalf("ListSegments: %+v, %v; want ring x", list, err)
	}
	if cmd := RemoveCommand(SegmentPath("x", opts)); cmd != "edgeipc ring rm x --dir "+dir {
		t.Errorf("RemoveCommand %q; want the directory as written", cmd)
	}
	// A wait for a ring watches the same directory.
	ctx, cancel := context.WithTimeout(context.Background(), scale(10*time.Second))
	defer cancel()
	ch := openReaderAsync(ctx, "y", opts)
	waitWatching(t, ch)
	createAndWrite(t, "y", *opts)
	expectHello(t, ctx, ch)
	for _, n := range []string{"x", "y"} {
		if err := Remove(n, opts); err != nil {
			t.Fatalf("Remove %s: %v", n, err)
		}
	}
}
