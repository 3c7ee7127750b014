package runtime

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/internal/racer"
)

// fifoRuntime runs a runtime with one len32 fifo source "fifo" on ring "f"
// and waits until the source reads the FIFO.
func fifoRuntime(t *testing.T, fifo string) (*Runtime, *syncBuf) {
	t.Helper()
	rt, logb, _ := inproc(t, scenarioHead+ringTable("f", "")+fifoSource(fifo)+"framing = \"len32\"\nmax_skip = 1024\n")
	eventually(t, "fifo source running", func() bool { return rt.sourceStat(t, "fifo").State == StateRunning })
	return rt, logb
}

// openWriter opens the FIFO for writing and keeps it open until the test
// closes it (or the test ends).
func openWriter(t *testing.T, fifo string) *os.File {
	t.Helper()
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// brokenLength is a len32 header far beyond max_skip: it breaks the stream.
var brokenLength = binary.LittleEndian.AppendUint32(nil, 1<<30)

// After a broken stream the source drains the FIFO until its writers close
// and then reopens its keep-alive write end. If the path names another file
// by then, the source fails with an error that says so, instead of reading
// EOF from a regular file (or nothing from another FIFO) forever; if
// nothing is there, it creates the FIFO again (as when the FIFO is removed
// while the source reads it, TestFIFORemovedWhileRunningIsRecreated).
func TestFIFOReplacedDuringDrain(t *testing.T) {
	for _, tc := range []struct {
		name    string
		replace func(t *testing.T, path string)
		want    string
	}{
		{"regular file", func(t *testing.T, path string) {
			tmp := path + ".new"
			if err := os.WriteFile(tmp, []byte("not a fifo"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}, "is no longer a FIFO"},
		{"another FIFO", func(t *testing.T, path string) {
			tmp := path + ".new"
			if err := unix.Mkfifo(tmp, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}, "is now another FIFO"},
		{"removed", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, "was removed while the source read it; created it again"},
		// The drain's end (its reopenDummy) can fall between the watch's
		// mkfifo and its recording the FIFO made: here that moment is
		// made long. The FIFO was taken for another one, and the source
		// failed (seen on armv7 under qemu).
		{"removed, slow remake", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, "was removed while the source read it; created it again"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "removed, slow remake" { // (set before the runtime starts, put back after it stops)
				afterRemakeMkfifo = func() { time.Sleep(50 * time.Millisecond) }
				t.Cleanup(func() { afterRemakeMkfifo = nil })
			}
			e := newEnv(t)
			fifo := filepath.Join(e.dir, "in.fifo")
			rt, logb := fifoRuntime(t, fifo)
			w := openWriter(t, fifo)
			if _, err := w.Write(brokenLength); err != nil {
				t.Fatal(err)
			}
			logb.waitFor(t, "stream broken", 1)
			tc.replace(t, fifo)
			w.Close() // the last writer leaves: the drain ends
			if strings.HasPrefix(tc.name, "removed") {
				// (tmpfs may give the new FIFO the old one's inode number)
				logb.waitFor(t, "created it again", 1)
				// (the drain's own last error comes first, until the
				// source has let go of the removed FIFO)
				eventually(t, "the source to read the new FIFO and say why", func() bool {
					st := rt.sourceStat(t, "fifo")
					return inode(fifo) != 0 && st.State == StateRunning && strings.Contains(st.LastError, tc.want)
				})
				nw := openWriter(t, fifo)
				if _, err := nw.Write(append(binary.LittleEndian.AppendUint32(nil, 5), "after"...)); err != nil {
					t.Fatal(err)
				}
				if f := readFrames(t, e, "f", 1); string(f[0].Data) != "after" {
					t.Fatalf("frame %q; want \"after\"", f[0].Data)
				}
				return
			}
			eventually(t, "the source to fail", func() bool { return rt.sourceStat(t, "fifo").State == StateFailed })
			st := rt.sourceStat(t, "fifo")
			if !strings.Contains(st.LastError, fifo+" "+tc.want) || !strings.Contains(st.LastError, "edgeipc ctl restart") {
				t.Fatalf("last error %q; want it to say %q and how to recover", st.LastError, fifo+" "+tc.want)
			}
			if n := strings.Count(logb.String(), "reading new records"); n != 0 {
				t.Fatalf("the source resumed reading %d times from a path that is no longer its FIFO", n)
			}
			if n := strings.Count(logb.String(), "\n"); n > 20 {
				t.Fatalf("%d log lines for one broken stream", n)
			}
		})
	}
}

// openTestFIFO calls openFIFO and closes what it opened when the test ends.
func openTestFIFO(t *testing.T, path string, mode os.FileMode, group string) error {
	t.Helper()
	r, dummy, _, err := openFIFO(path, mode, group)
	if err == nil {
		t.Cleanup(func() { r.Close(); unix.Close(dummy) })
	}
	return err
}

func statT(t *testing.T, path string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

// A symlink or regular file swapped in after the path was checked is
// refused, and its target keeps its mode and owner: openFIFO sets the mode
// and group on the descriptor it opened with O_NOFOLLOW, never by path.
func TestFIFOSwappedAfterCheck(t *testing.T) {
	t.Cleanup(func() { testHookFIFOChecked = nil })
	for _, tc := range []struct {
		name string
		swap func(t *testing.T, path, target string)
		want string
	}{
		{"symlink", func(t *testing.T, path, target string) {
			os.Remove(path)
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
		}, "is a symlink"},
		{"regular file", func(t *testing.T, path, target string) {
			if err := os.Rename(target, path); err != nil {
				t.Fatal(err)
			}
		}, "is not a FIFO"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "in.fifo")
			target := filepath.Join(dir, "precious")
			if err := os.WriteFile(target, []byte("data"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(target, 0o644); err != nil { // not narrowed by the umask
				t.Fatal(err)
			}
			testHookFIFOChecked = func(p string) { tc.swap(t, p, target) }
			err := openTestFIFO(t, path, 0o660, strconv.Itoa(os.Getegid()))
			testHookFIFOChecked = nil
			st := statT(t, path)
			if tc.name == "symlink" {
				st = statT(t, target)
			}
			if st.Mode&0o7777 != 0o644 {
				t.Errorf("the %s's target was changed to mode %#o", tc.name, st.Mode&0o7777)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("openFIFO after the path became a %s: %v; want an error saying %q", tc.name, err, tc.want)
			}
		})
	}
}

// An existing FIFO is reused (and given the configured mode and group) only
// if the runtime's user owns it; a FIFO of another user is refused, both by
// the configuration check and at start, and left as it is.
func TestFIFOOwnership(t *testing.T) {
	t.Run("own FIFO reused", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "own.fifo")
		if err := unix.Mkfifo(path, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		ino := statT(t, path).Ino
		gid := os.Getegid()
		if os.Geteuid() == 0 {
			gid = 65534 // root can give it any group: check that it does
		}
		if err := openTestFIFO(t, path, 0, strconv.Itoa(gid)); err != nil {
			t.Fatal(err)
		}
		st := statT(t, path)
		if st.Ino != ino || st.Mode&0o7777 != 0o620 || int(st.Gid) != gid {
			t.Fatalf("reused FIFO: ino %d (was %d), mode %#o, gid %d; want the same inode, 0620, gid %d", st.Ino, ino, st.Mode&0o7777, st.Gid, gid)
		}
	})
	t.Run("foreign FIFO refused", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "foreign.fifo")
		if err := unix.Mkfifo(path, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o666); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(path, 65534, 65534); err != nil {
			t.Skipf("cannot give a FIFO to uid 65534 (%v): this case needs root or CAP_CHOWN (CI runs it as root)", err)
		}
		text := "[rings.r]\n[[sources]]\nname = \"f\"\nkind = \"fifo\"\nring = \"r\"\npath = \"" + path + "\"\n"
		want := fmt.Sprintf("%s is a FIFO owned by uid 65534, not by the runtime's user (uid %d)", path, os.Geteuid())
		if _, err := Parse("f.toml", []byte(text)); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "rm "+path) {
			t.Errorf("config check: %v; want %q and how to fix it", err, want)
		}
		if err := openTestFIFO(t, path, 0, ""); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("openFIFO: %v; want %q", err, want)
		}
		st := statT(t, path)
		if st.Uid != 65534 || st.Mode&0o7777 != 0o666 {
			t.Fatalf("the foreign FIFO was changed: uid %d mode %#o", st.Uid, st.Mode&0o7777)
		}
	})
}

// After a writer breaks the stream and stays open, everything read from the
// FIFO is dropped until every writer has closed it, other writers' records
// included (the stream cannot be resynchronised). The bytes dropped and how
// long it lasted are reported; writers that come afterwards are read.
func TestFIFODrainDropsAndCounts(t *testing.T) {
	e := newEnv(t)
	fifo := filepath.Join(e.dir, "in.fifo")
	rt, logb := fifoRuntime(t, fifo)
	rec := func(p string) []byte { return append(binary.LittleEndian.AppendUint32(nil, uint32(len(p))), p...) }
	bad := openWriter(t, fifo)
	if _, err := bad.Write(brokenLength); err != nil { // 4 bytes, and it stays open
		t.Fatal(err)
	}
	logb.waitFor(t, "stream broken", 1)
	good := openWriter(t, fifo)
	if _, err := good.Write(rec("lost")); err != nil { // 8 bytes, during the drain
		t.Fatal(err)
	}
	good.Close()
	bad.Close()
	logb.waitFor(t, "reading new records", 1)
	after := openWriter(t, fifo)
	if _, err := after.Write(rec("after")); err != nil {
		t.Fatal(err)
	}
	after.Close()
	frames := readFrames(t, e, "f", 1)
	if string(frames[0].Data) != "after" {
		t.Fatalf("first frame %q; want \"after\" (the record written during the drain is dropped)", frames[0].Data)
	}
	if !strings.Contains(logb.String(), "dropped 12 bytes over ") {
		t.Fatalf("the log does not say how many bytes the drain dropped (12)")
	}
	st := rt.sourceStat(t, "fifo")
	if st.Bad != 1 || st.Dropped != 12 || !strings.Contains(st.LastError, "dropped 12 bytes") {
		t.Fatalf("stat %+v; want 1 bad record, 12 dropped bytes, and them in the last error", st)
	}
	rt.logStats("test")
	if !strings.Contains(logb.String(), "dropped 12 B") {
		t.Fatal("the stats line does not show the dropped bytes")
	}
}

// The bytes a drain drops are counted as it drops them: while a writer
// that broke the stream keeps the FIFO open, dropped_bytes already shows
// what the drain has discarded (it stayed 0 until the drain ended).
func TestFIFODrainCountsWhileDraining(t *testing.T) {
	e := newEnv(t)
	fifo := filepath.Join(e.dir, "in.fifo")
	rt, logb := fifoRuntime(t, fifo)
	bad := openWriter(t, fifo)
	if _, err := bad.Write(brokenLength); err != nil { // 4 bytes, and it stays open
		t.Fatal(err)
	}
	logb.waitFor(t, "stream broken", 1)
	good := openWriter(t, fifo)
	if _, err := good.Write(append(binary.LittleEndian.AppendUint32(nil, 4), "lost"...)); err != nil {
		t.Fatal(err)
	}
	good.Close()
	eventually(t, "dropped_bytes to reach 12 during the drain", func() bool { return rt.sourceStat(t, "fifo").Dropped == 12 })
	bad.Close()
	logb.waitFor(t, "reading new records", 1)
	if st := rt.sourceStat(t, "fifo"); st.Dropped != 12 || st.Bad != 1 {
		t.Fatalf("stat %+v after the drain; want 12 dropped bytes (not counted twice), 1 bad", st)
	}
}

// childFIFORacer races opens of the FIFO at path as another user
// (racer.Child) whose only group is $RACE_GID.
func childFIFORacer(path string) int {
	gid, _ := strconv.Atoi(os.Getenv("RACE_GID"))
	return racer.Child(gid, racer.OpenPath(path))
}

// childFIFOMember is a writer in the FIFO's group (uid racer.UID, only
// group 65534, the group the test gives the FIFO): it tries to open the
// FIFO for reading, which would let it take other writers' records, then
// opens it for writing and writes one record. It prints what the read
// open returned.
func childFIFOMember(path string) int {
	if !racer.Become(65534) {
		return 3
	}
	if err := racer.OpenPath(path)(); err != nil {
		fmt.Println("read:", err)
	} else {
		fmt.Println("read: opened")
	}
	w, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open for writing:", err)
		return 4
	}
	defer w.Close()
	if _, err := w.WriteString("from a member\n"); err != nil {
		fmt.Fprintln(os.Stderr, "write:", err)
		return 5
	}
	return 0
}

// TestFIFOGroupMayWriteNotRead: a FIFO given to a group with no mode set is
// 0620: a member may write records, and may not open it for reading, which
// would let it take records other writers sent the runtime (a FIFO has
// one byte stream, and whoever reads first gets the bytes). Before, the
// default was 0660 and any member could read.
func TestFIFOGroupMayWriteNotRead(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the writer as another uid")
	}
	path := filepath.Join(racer.Dir(t), "in.fifo")
	r, dummy, _, err := openFIFO(path, 0, "65534")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer unix.Close(dummy)
	if m := statT(t, path).Mode & 0o7777; m != 0o620 {
		t.Errorf("FIFO for a group is mode %#o, want 0620", m)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "EDGEIPC_TEST_FIFO_MEMBER="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("member: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != "read: permission denied" {
		t.Errorf("a member's read-only open: %q, want \"read: permission denied\"", got)
	}
	r.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	n, err := r.Read(buf)
	if got := string(buf[:n]); err != nil || got != "from a member\n" {
		t.Fatalf("the runtime read %q, %v; want the member's record", got, err)
	}
}

// TestFIFONoGroupWindow: a FIFO created for a group is never open to the
// runtime's own primary group, not even between mkfifo and the fchown to
// the configured group: a member of that group could otherwise open it and
// read records meant for the runtime. A process of another user whose only
// group is the runtime's races every creation.
func TestFIFONoGroupWindow(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the racer as another uid")
	}
	old := syscall.Umask(0o002) // a common umask: 0660 is not narrowed by mkfifo
	defer syscall.Umask(old)
	dir := racer.Dir(t)
	path := filepath.Join(dir, "in.fifo")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "EDGEIPC_TEST_FIFO_RACER="+path, "RACE_GID="+strconv.Itoa(os.Getegid()))
	stop := racer.Start(t, cmd)
	for i := 0; i < 300; i++ {
		r, dummy, _, err := openFIFO(path, 0, "65534") // nogroup: the racer is not in it
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		unix.Close(dummy)
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
	if n := stop(); n != 0 {
		t.Fatalf("a process outside group 65534 opened the FIFO %d times during 300 creations", n)
	}
}

// A fifo source that is stopped has closed the FIFO's read end, and so
// released its lock, by the time stop returns: remove_on_exit (cleanup)
// then removes the FIFO, whoever of the source and the context's
// AfterFunc closes the descriptor. TestSecondRuntimeTouchesNothing once
// found the FIFO left after a clean exit ("another process holds its
// lock"): the descriptor was still being closed by the AfterFunc.
func TestFIFOStopReleasesLock(t *testing.T) {
	e := newEnv(t)
	cfg, err := Parse("test.toml", []byte(fmt.Sprintf(`
[rings.f]
slots = 16
slot_payload = 64
[[sources]]
name = "fifo"
kind = "fifo"
ring = "f"
path = %q
remove_on_exit = true
`, filepath.Join(e.dir, "s.fifo"))))
	if err != nil {
		t.Fatal(err)
	}
	rt, logb := newTestRuntime(t, cfg)
	rs, err := rt.openRing(cfg.Rings["f"], e.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.close(true)
	defer goruntime.GOMAXPROCS(goruntime.GOMAXPROCS(4))
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		ss := newSource(rt, cfg.Sources[0], rs)
		ss.start()
		for ss.getState() != StateRunning {
			if ss.getState() == StateFailed {
				t.Fatalf("iteration %d: source failed; log:\n%s", i, logb.String())
			}
			time.Sleep(50 * time.Microsecond)
		}
		ss.stop()
		ss.cleanup()
		if inode(cfg.Sources[0].Path) != 0 {
			t.Fatalf("iteration %d: remove_on_exit left the FIFO after the source stopped; log:\n%s", i, logb.String())
		}
	}
}

// A FIFO path in a directory that every user may write and that is not
// sticky is refused, by the configuration check and at start: any user
// could rename the runtime's FIFO away and put their own in its place,
// then read what writers send and forge records. A sticky directory (as
// /tmp is) is fine: only the FIFO's owner may remove or rename it there.
// Before, such a path was used.
func TestFIFOInWorldWritableDir(t *testing.T) {
	for _, tc := range []struct {
		mode    os.FileMode
		refused bool
	}{{0o777, true}, {0o777 | os.ModeSticky, false}, {0o755, false}} {
		t.Run(fmt.Sprintf("%v", tc.mode), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "d")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tc.mode); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "in.fifo")
			text := "[rings.r]\n[[sources]]\nname = \"f\"\nkind = \"fifo\"\nring = \"r\"\npath = \"" + path + "\"\n"
			want := fmt.Sprintf("%s is in %s, which every user may write (mode 0777) and is not sticky", path, dir)
			_, perr := Parse("f.toml", []byte(text))
			oerr := openTestFIFO(t, path, 0, "")
			if !tc.refused {
				if perr != nil || oerr != nil {
					t.Fatalf("config check: %v; openFIFO: %v; want both to accept a FIFO in a directory of mode %v", perr, oerr, tc.mode)
				}
				return
			}
			if perr == nil || !strings.Contains(perr.Error(), want) || !strings.Contains(perr.Error(), "chmod +t "+dir) {
				t.Errorf("config check: %v; want %q and how to fix it", perr, want)
			}
			if oerr == nil || !strings.Contains(oerr.Error(), want) {
				t.Errorf("openFIFO: %v; want %q", oerr, want)
			}
			if _, err := os.Lstat(path); !os.IsNotExist(err) {
				t.Errorf("a FIFO was created in the refused directory: %v", err)
			}
		})
	}
}

// childFIFOLocker is a hostile FIFO writer: it has only a write-only
// descriptor of the FIFO at path (as a program whose stdout a shell
// redirected there), takes the FIFO's flock with it, says "locked", and
// holds it until its stdin closes.
func childFIFOLocker(path string) int {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println("locked")
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// startFIFOLocker starts childFIFOLocker on path and waits until it holds
// the lock; release makes it let go and exit.
func startFIFOLocker(t *testing.T, path string) (release func()) {
	t.Helper()
	release, err := startLocker(path)
	if release != nil {
		t.Cleanup(release)
	}
	if err != nil {
		t.Fatal(err)
	}
	return release
}

// startLocker is startFIFOLocker for any goroutine: the caller releases.
func startLocker(path string) (release func(), err error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "EDGEIPC_TEST_FIFO_LOCKER="+path)
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var once sync.Once
	release = func() { once.Do(func() { in.Close(); cmd.Wait() }) }
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "locked\n" {
		return release, fmt.Errorf("locker: %q", line)
	}
	return release, nil
}

// lockWhileStopped starts a locker on the FIFO at path, which no process
// reads: a read end is held open only until the locker has opened it.
func lockWhileStopped(t *testing.T, path string) (release func()) {
	t.Helper()
	hold, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(hold)
	return startFIFOLocker(t, path)
}

// A writer can take the FIFO's lock (flock needs no read access; a
// write-only descriptor will do) while the source is stopped. The source
// then starts anyway and reads the FIFO, since no process reads it: the
// lock says "another runtime reads this" only together with a reader. It
// takes the lock once the writer lets it go, and another runtime is still
// refused meanwhile (this one reads the FIFO). remove_on_exit removes
// the FIFO despite such a lock. Before, the source failed ("is read by
// another edgeipc runtime") for as long as the writer held the lock, and
// stayed failed, and remove_on_exit left the FIFO.
func TestFIFOLockHeldByWriter(t *testing.T) {
	r := newFIFORig(t, "remove_on_exit = true\n")
	if err := r.rt.StopSource("fifo"); err != nil {
		t.Fatal(err)
	}
	r.w.Close() // the writer that kept the FIFO open: the locker's open waits for a reader
	release := lockWhileStopped(t, r.fifo)
	if err := r.rt.StartSource("fifo"); err != nil {
		t.Fatal(err)
	}
	r.logb.waitFor(t, "its lock is held by a process that does not read it", 1)
	eventually(t, "the source running", func() bool { return r.rt.sourceStat(t, "fifo").State == StateRunning })
	w := openWriter(t, r.fifo)
	if _, err := w.Write([]byte("read\n")); err != nil {
		t.Fatal(err)
	}
	if got := readFrames(t, r.e, "f", 1); string(got[0].Data) != "read" {
		t.Fatalf("frame %q; want \"read\"", got[0].Data)
	}
	if err := openTestFIFO(t, r.fifo, 0, ""); err == nil || !strings.Contains(err.Error(), "is read by another edgeipc runtime") {
		t.Fatalf("another runtime's openFIFO while the source reads without the lock: %v; want it refused", err)
	}
	release()
	r.logb.waitFor(t, "took its lock", 1)
	if err := openTestFIFO(t, r.fifo, 0, ""); err == nil || !strings.Contains(err.Error(), "is read by another edgeipc runtime") {
		t.Fatalf("another runtime's openFIFO once the source holds the lock: %v; want it refused", err)
	}
	// At exit, a writer holding the lock does not keep the FIFO.
	if err := r.rt.StopSource("fifo"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	lockWhileStopped(t, r.fifo)
	r.rt.mu.Lock()
	ss := r.rt.sources["fifo"]
	r.rt.mu.Unlock()
	ss.cleanup()
	if _, err := os.Lstat(r.fifo); !os.IsNotExist(err) {
		t.Fatalf("remove_on_exit left the FIFO whose lock a writer held (%v); log:\n%s", err, r.logb.String())
	}
}

// A writer that takes the FIFO's lock in the gap of a restart, while the
// runtime holds a read end over it (the old run has closed its descriptor,
// the new one has not opened the FIFO yet), does not make the new run
// refuse the FIFO: that read end is the runtime's own. Before, the read
// end held over the gap was taken for another runtime's ("is read by
// another edgeipc runtime"), and the source failed.
func TestRestartFIFOLockTakenInGap(t *testing.T) {
	r := newFIFORig(t, "")
	var release func()
	var lockErr error
	testHookRunReturned = func(name string) {
		if name == "fifo" && release == nil && lockErr == nil {
			release, lockErr = startLocker(r.fifo)
		}
	}
	t.Cleanup(func() {
		testHookRunReturned = nil
		if release != nil {
			release()
		}
	})
	if err := r.rt.RestartSource("fifo"); err != nil {
		t.Fatal(err)
	}
	testHookRunReturned = nil
	if lockErr != nil || release == nil {
		t.Fatalf("the locker did not take the lock in the gap: %v", lockErr)
	}
	r.logb.waitFor(t, "its lock is held by a process that does not read it", 1)
	eventually(t, "the source running", func() bool {
		st := r.rt.sourceStat(t, "fifo")
		if st.State == StateFailed {
			t.Fatalf("the source failed: %s", st.LastError)
		}
		return st.State == StateRunning
	})
	if _, err := r.w.Write([]byte("after\n")); err != nil {
		t.Fatal(err)
	}
	if got := readFrames(t, r.e, "f", 1); string(got[0].Data) != "after" {
		t.Fatalf("frame %q; want \"after\"", got[0].Data)
	}
}
