//go:build linux

package shm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func init() {
	children["creator"] = childCreator
	children["no-inotify"] = childNoInotify
}

// noLimitExit is childNoInotify's exit code when it cannot set the limit.
const noLimitExit = 4

// childNoInotify runs in a user namespace of its own, where it sets the
// inotify limit EDGEIPC_INOTIFY_LIMIT (max_inotify_instances or
// max_inotify_watches) to 0, affecting no other process, checks that the
// limit bites, then waits with OpenReaderContext for a ring it creates
// 300 ms later: the wait must fall back to looking every 250 ms, and leave
// no descriptor behind.
func childNoInotify() int {
	fail := func(f string, a ...any) int {
		fmt.Fprintf(os.Stderr, "child: "+f+"\n", a...)
		return 1
	}
	limit := os.Getenv("EDGEIPC_INOTIFY_LIMIT")
	if err := os.WriteFile("/proc/sys/user/"+limit, []byte("0"), 0); err != nil {
		// A namespace without the capability (an AppArmor profile
		// restricting unprivileged user namespaces): nothing to test.
		fmt.Fprintf(os.Stderr, "child: %v\n", err)
		return noLimitExit
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	switch limit {
	case "max_inotify_instances":
		if err == nil {
			unix.Close(fd)
			return fail("inotify_init1 still works with the limit at 0")
		} else if !errors.Is(err, unix.EMFILE) {
			return fail("inotify_init1: %v, want EMFILE", err)
		}
	default:
		if err != nil {
			return fail("inotify_init1: %v", err)
		}
		_, err = unix.InotifyAddWatch(fd, os.Getenv("EDGEIPC_SHM_DIR"), unix.IN_CREATE)
		unix.Close(fd)
		if !errors.Is(err, unix.ENOSPC) {
			return fail("inotify_add_watch: %v, want ENOSPC", err)
		}
	}
	fds := func() int {
		ents, _ := os.ReadDir("/proc/self/fd")
		return len(ents)
	}
	before := fds()
	ctx, cancel := context.WithTimeout(context.Background(), scale(20*time.Second))
	defer cancel()
	ch := openReaderAsync(ctx, "polled", nil)
	select {
	case res := <-ch:
		return fail("OpenReaderContext returned before the ring existed: %v", res.err)
	case <-time.After(300 * time.Millisecond):
	}
	r, err := Create("polled", Config{Slots: 8, SlotPayload: 64})
	if err != nil {
		return fail("%v", err)
	}
	res := <-ch
	if res.err != nil {
		return fail("OpenReaderContext without inotify: %v", res.err)
	}
	res.rd.Close()
	r.Close()
	if after := fds(); after != before {
		return fail("%d descriptors open after the wait, %d before", after, before)
	}
	return 0
}

// childCreator creates ring EDGEIPC_RING, commits one frame "hello" and
// keeps the ring until its stdin closes.
func childCreator() int {
	r, err := Create(os.Getenv("EDGEIPC_RING"), Config{Slots: 8, SlotPayload: 64})
	if err != nil {
		os.Stderr.WriteString("child: " + err.Error() + "\n")
		return 1
	}
	defer r.Close()
	w, err := r.NewWriter()
	if err != nil {
		os.Stderr.WriteString("child: " + err.Error() + "\n")
		return 1
	}
	if _, err := w.Write([]byte("hello")); err != nil {
		os.Stderr.WriteString("child: " + err.Error() + "\n")
		return 1
	}
	io.Copy(io.Discard, os.Stdin)
	return 0
}

type openResult struct {
	rd  *Reader
	err error
}

// openReaderAsync runs OpenReaderContext in a goroutine.
func openReaderAsync(ctx context.Context, name string, sopts *SegmentOptions) <-chan openResult {
	ch := make(chan openResult, 1)
	go func() {
		rd, err := OpenReaderContext(ctx, name, sopts, &ReaderOptions{From: Oldest})
		ch <- openResult{rd, err}
	}()
	return ch
}

// TestOpenReaderContextWaitsForCreator starts a reader before its ring
// exists and a process that creates the ring afterwards: the reader must
// wait, then join and read the creator's first frame.
func TestOpenReaderContextWaitsForCreator(t *testing.T) {
	dir := testDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), scale(20*time.Second))
	defer cancel()
	ch := openReaderAsync(ctx, "late", nil)
	// Files that are not the ring come and go meanwhile.
	if err := os.WriteFile(filepath.Join(dir, "edgeipc.other"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-ch:
		t.Fatalf("OpenReaderContext returned before the ring existed: %v", res.err)
	case <-time.After(100 * time.Millisecond):
	}

	cmd := child(t, "creator", "EDGEIPC_RING=late")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	startChild(t, cmd)
	defer stdin.Close()
	expectHello(t, ctx, ch)
}

// TestOpenContextErrors checks what OpenContext does not wait for: a
// cancelled or expired wait returns the context's error, and a missing
// directory (before or during the wait) or a file that is no ring is an
// error at once, not a wait.
func TestOpenContextErrors(t *testing.T) {
	t.Run("cancel", func(t *testing.T) {
		testDir(t)
		ctx, cancel := context.WithCancel(context.Background())
		ch := openReaderAsync(ctx, "never", nil)
		time.Sleep(50 * time.Millisecond)
		cancel()
		if res := <-ch; !errors.Is(res.err, context.Canceled) {
			t.Fatalf("after cancel: %v, want context.Canceled", res.err)
		}
		dctx, dcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer dcancel()
		if _, err := OpenContext(dctx, "never", nil); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("after the deadline: %v, want context.DeadlineExceeded", err)
		}
	})
	// Each case below must return well before this context ends.
	limit := scale(10 * time.Second)
	t.Run("missing-dir", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		defer cancel()
		_, err := OpenContext(ctx, "r", &SegmentOptions{Dir: filepath.Join(t.TempDir(), "none")})
		if !errors.Is(err, os.ErrNotExist) || ctx.Err() != nil {
			t.Fatalf("missing directory: %v, want an error at once matching os.ErrNotExist", err)
		}
	})
	t.Run("dir-removed", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "shm")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		defer cancel()
		ch := openReaderAsync(ctx, "r", &SegmentOptions{Dir: dir})
		time.Sleep(50 * time.Millisecond)
		if err := os.Remove(dir); err != nil {
			t.Fatal(err)
		}
		if res := <-ch; !errors.Is(res.err, os.ErrNotExist) || ctx.Err() != nil {
			t.Fatalf("directory removed during the wait: %v, want an error at once matching os.ErrNotExist", res.err)
		}
	})
	t.Run("not-a-ring", func(t *testing.T) {
		testDir(t)
		s, err := CreateSemaphore("sem", 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		defer cancel()
		if _, err := OpenContext(ctx, "sem", nil); err == nil || errors.Is(err, os.ErrNotExist) || ctx.Err() != nil {
			t.Fatalf("a semaphore opened as a ring: %v, want its error at once", err)
		}
	})
	t.Run("bad-name", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		defer cancel()
		if _, err := OpenContext(ctx, "../x", nil); !errors.Is(err, ErrInvalid) || ctx.Err() != nil {
			t.Fatalf("bad name: %v, want ErrInvalid at once", err)
		}
	})
}

// waitWatching returns once this process holds an inotify descriptor: an
// OpenContext started in another goroutine has resolved its directory and
// is watching it.
func waitWatching(t *testing.T, ch <-chan openResult) {
	t.Helper()
	deadline := time.Now().Add(scale(10 * time.Second))
	for time.Now().Before(deadline) {
		ents, _ := os.ReadDir("/proc/self/fd")
		for _, e := range ents {
			if l, _ := os.Readlink("/proc/self/fd/" + e.Name()); l == "anon_inode:inotify" {
				return
			}
		}
		select {
		case res := <-ch:
			t.Fatalf("OpenReaderContext returned before the ring existed: %v", res.err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	t.Fatal("OpenReaderContext never started watching")
}

// createAndWrite creates ring name with opts and writes "hello" into it.
func createAndWrite(t *testing.T, name string, opts SegmentOptions) *Ring {
	t.Helper()
	r, err := Create(name, Config{Slots: 8, SlotPayload: 64, Segment: opts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	w, err := r.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	return r
}

// expectHello waits for ch's reader and reads its first frame, "hello".
func expectHello(t *testing.T, ctx context.Context, ch <-chan openResult) {
	t.Helper()
	res := <-ch
	if res.err != nil {
		t.Fatalf("OpenReaderContext: %v", res.err)
	}
	defer res.rd.Close()
	f, err := res.rd.Next(ctx)
	if err != nil || string(f.Data) != "hello" {
		t.Fatalf("first frame: %q, %v; want \"hello\"", f.Data, err)
	}
	res.rd.Release()
}

// TestOpenContextEnvChanges changes EDGEIPC_SHM_DIR while OpenReaderContext
// waits: the wait stays in the directory of the call and finds the ring
// created there. (It watched the first directory but looked for the ring
// in the second, and waited until its context ended.)
func TestOpenContextEnvChanges(t *testing.T) {
	first := testDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), scale(10*time.Second))
	defer cancel()
	ch := openReaderAsync(ctx, "envring", nil)
	waitWatching(t, ch)
	t.Setenv("EDGEIPC_SHM_DIR", t.TempDir())
	createAndWrite(t, "envring", SegmentOptions{Dir: first})
	expectHello(t, ctx, ch)
}

// TestOpenContextRenamedIntoPlace: a ring created under another name and
// renamed to the awaited one (IN_MOVED_TO) ends the wait.
func TestOpenContextRenamedIntoPlace(t *testing.T) {
	dir := testDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), scale(10*time.Second))
	defer cancel()
	ch := openReaderAsync(ctx, "final", nil)
	waitWatching(t, ch)
	createAndWrite(t, "staging", SegmentOptions{})
	if err := os.Rename(filepath.Join(dir, FilePrefix+"staging"), filepath.Join(dir, FilePrefix+"final")); err != nil {
		t.Fatal(err)
	}
	expectHello(t, ctx, ch)
}

// TestOpenContextDirForms waits in a segment directory named through a
// symbolic link and by a relative path.
func TestOpenContextDirForms(t *testing.T) {
	t.Run("symlink", func(t *testing.T) {
		real := t.TempDir()
		link := filepath.Join(t.TempDir(), "link")
		if err := os.Symlink(real, link); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), scale(10*time.Second))
		defer cancel()
		ch := openReaderAsync(ctx, "r", &SegmentOptions{Dir: link})
		waitWatching(t, ch)
		createAndWrite(t, "r", SegmentOptions{Dir: real})
		expectHello(t, ctx, ch)
	})
	t.Run("relative", func(t *testing.T) {
		t.Chdir(t.TempDir())
		if err := os.Mkdir("shm", 0o700); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), scale(10*time.Second))
		defer cancel()
		ch := openReaderAsync(ctx, "r", &SegmentOptions{Dir: "shm"})
		waitWatching(t, ch)
		createAndWrite(t, "r", SegmentOptions{Dir: "shm"})
		expectHello(t, ctx, ch)
	})
}

// TestOpenContextWithoutInotify: with no inotify instance to be had
// (max_user_instances reached), or no watch (max_user_watches),
// OpenReaderContext still finds a ring created while it waits, by looking
// every 250 ms, and leaves no descriptor open. The limit is set to 0 in a
// user namespace of the child's own, so no other process loses its
// instances or watches.
func TestOpenContextWithoutInotify(t *testing.T) {
	for _, limit := range []string{"max_inotify_instances", "max_inotify_watches"} {
		t.Run(limit, func(t *testing.T) {
			testDir(t)
			runInUserNS(t, "no-inotify", "EDGEIPC_INOTIFY_LIMIT="+limit)
		})
	}
}

// runInUserNS runs the named child in a user namespace of its own, where
// it may set its inotify limits, and fails the test if the child fails.
func runInUserNS(t *testing.T, name string, env ...string) {
	t.Helper()
	cmd := child(t, name, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Unshareflags: syscall.CLONE_NEWUSER,
		UidMappings:  []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings:  []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	err := cmd.Start()
	if errors.Is(err, syscall.EINVAL) {
		// qemu-user cannot unshare (its own threads make the
		// process multi-threaded: EINVAL); unshare(1) can,
		// before it execs the emulated child.
		tool, lerr := exec.LookPath("unshare")
		if lerr != nil {
			t.Skipf("cannot start a child in a user namespace of its own (%v), and no unshare(1): %v", err, lerr)
		}
		c2 := child(t, name, env...)
		cmd = exec.Command(tool, append([]string{"--user", "--map-root-user", "--"}, c2.Args...)...)
		cmd.Env, cmd.Stderr = c2.Env, c2.Stderr
		err = cmd.Start()
	}
	if err != nil {
		// Unprivileged user namespaces may be disabled
		// (kernel.unprivileged_userns_clone, user.max_user_namespaces).
		t.Skipf("cannot start a child in a user namespace of its own: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == noLimitExit {
			t.Skip("the child could not set the inotify limit of its user namespace (its error is above)")
		}
		t.Fatalf("child: %v", err)
	}
}

// TestOpenContextRetargetedSymlink: the segment directory is named
// through a symbolic link, which is pointed at another directory during
// the wait, where the ring is then created. The watch is on the first
// directory and sees nothing; the wait still finds the ring, at its next
// look after maxSleep (shortened here; it waited until its context ended).
func TestOpenContextRetargetedSymlink(t *testing.T) {
	defer maxSleepNs.Store(maxSleepNs.Load())
	maxSleepNs.Store(int64(200 * time.Millisecond))
	first, second := t.TempDir(), t.TempDir()
	base := t.TempDir()
	link := filepath.Join(base, "shm")
	if err := os.Symlink(first, link); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), scale(10*time.Second))
	defer cancel()
	ch := openReaderAsync(ctx, "moved", &SegmentOptions{Dir: link})
	waitWatching(t, ch)
	// Point the link at the second directory (atomically, as a deployment
	// switching directories would).
	tmp := filepath.Join(base, "shm.new")
	if err := os.Symlink(second, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
	createAndWrite(t, "moved", SegmentOptions{Dir: second})
	expectHello(t, ctx, ch)
}
