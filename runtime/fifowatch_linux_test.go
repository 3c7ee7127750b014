package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/shm"
)

// fifoAndSynth runs a runtime with a lines fifo source "fifo" on ring f and
// a synthetic source "synth" on ring s (to check that what happens to the
// FIFO leaves other sources alone), and waits until both run.
func fifoAndSynth(t *testing.T, fifo string) (*Runtime, *syncBuf) {
	t.Helper()
	rt, logb, _ := inproc(t, fmt.Sprintf(`
[control]
enabled = false
[runtime]
stats_interval = "0s"
[rings.f]
slots = 16
slot_payload = 64
[rings.s]
slots = 16
slot_payload = 64
[[sources]]
name = "fifo"
kind = "fifo"
ring = "f"
path = %q
[[sources]]
name = "synth"
kind = "synthetic"
ring = "s"
rate_hz = 100
size = 8
`, fifo))
	eventually(t, "fifo source running", func() bool { return rt.sourceStat(t, "fifo").State == StateRunning })
	eventually(t, "synthetic source running", func() bool { return rt.sourceStat(t, "synth").State == StateRunning })
	return rt, logb
}

// writeLine opens the FIFO for writing (O_NONBLOCK: it fails at once, with
// ENXIO, if nothing reads it), writes line and closes it.
func writeLine(t *testing.T, fifo, line string) {
	t.Helper()
	fd, err := unix.Open(fifo, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		t.Fatalf("open %s for writing: %v", fifo, err)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte(line)); err != nil {
		t.Fatalf("write %s: %v", fifo, err)
	}
}

// synthAdvances checks that the synthetic source still runs and writes.
func synthAdvances(t *testing.T, rt *Runtime) {
	t.Helper()
	n := rt.sourceStat(t, "synth").Frames
	eventually(t, "the synthetic source to go on writing", func() bool {
		st := rt.sourceStat(t, "synth")
		return st.State == StateRunning && st.Frames > n
	})
}

// A FIFO removed while the source reads it (an admin's rm, a cleanup of
// the directory) is created again: writers that open the path afterwards
// reach the runtime. Before, the source went on reading the unlinked
// FIFO, reported itself running, and writers that opened the path got
// ENOENT, or, with a shell's "echo x > path", wrote into a regular file
// that nothing read.
func TestFIFORemovedWhileRunningIsRecreated(t *testing.T) {
	e := newEnv(t)
	fifo := filepath.Join(e.dir, "in.fifo")
	rt, logb := fifoAndSynth(t, fifo)
	if err := os.Remove(fifo); err != nil {
		t.Fatal(err)
	}
	// (tmpfs may give the new FIFO the old one's inode number)
	logb.waitFor(t, fifo+" was removed while the source read it; created it again", 1)
	eventually(t, "the source to read the new FIFO", func() bool {
		return inode(fifo) != 0 && rt.sourceStat(t, "fifo").State == StateRunning
	})
	if st := rt.sourceStat(t, "fifo"); !strings.Contains(st.LastError, "created it again") {
		t.Fatalf("last error %q; want it to say that the FIFO was created again", st.LastError)
	}
	var st unix.Stat_t
	if err := unix.Lstat(fifo, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFIFO || st.Mode&0o7777 != 0o600 || int(st.Uid) != os.Geteuid() {
		t.Fatalf("recreated path: mode %#o uid %d; want a FIFO, 0600, uid %d", st.Mode, st.Uid, os.Geteuid())
	}
	writeLine(t, fifo, "after\n")
	if f := readFrames(t, e, "f", 1); string(f[0].Data) != "after" {
		t.Fatalf("frame %q; want \"after\"", f[0].Data)
	}
	synthAdvances(t, rt)
}

// A FIFO removed, or replaced by a file renamed over it, is noticed when
// it happens (inotify), not at the next periodic check: here that check
// is an hour away. Before, the source took up to a second to notice, and
// in that second writers got ENOENT, or with a shell's "echo x > path"
// created a regular file there, which the source then refused. Without
// inotify (its limits reached: here turned off), the source says so, and
// the periodic check notices.
func TestFIFOGoneNoticedAtOnce(t *testing.T) {
	for _, mode := range []string{"inotify", "periodic"} {
		for _, how := range []string{"removed", "renamed over"} {
			t.Run(mode+"/"+how, func(t *testing.T) {
				old := fifoCheckInterval
				if mode == "inotify" {
					fifoCheckInterval = time.Hour
				} else {
					fifoCheckInterval = 100 * time.Millisecond
					inotifyOff.Store(true)
				}
				// (Put back once the runtime has stopped: inproc's cleanup,
				// registered later, runs first.)
				t.Cleanup(func() { fifoCheckInterval = old; inotifyOff.Store(false) })
				e := newEnv(t)
				fifo := filepath.Join(e.dir, "in.fifo")
				rt, logb := fifoAndSynth(t, fifo)
				noWatch := "cannot watch it with inotify (" + errInotifyOff.Error() + "); checking every 100ms instead"
				if mode == "periodic" {
					// (The watch's goroutine logs it, maybe after the
					// source counts as running.)
					logb.waitFor(t, noWatch, 1)
				} else if strings.Contains(logb.String(), noWatch) {
					t.Fatalf("log says %q with inotify on; log:\n%s", noWatch, logb.String())
				}
				if how == "removed" {
					if err := os.Remove(fifo); err != nil {
						t.Fatal(err)
					}
					logb.waitFor(t, fifo+" was removed while the source read it; created it again", 1)
					eventually(t, "the source to read the new FIFO", func() bool { return rt.sourceStat(t, "fifo").State == StateRunning })
					writeLine(t, fifo, "after\n")
					if f := readFrames(t, e, "f", 1); string(f[0].Data) != "after" {
						t.Fatalf("frame %q; want \"after\"", f[0].Data)
					}
					return
				}
				tmp := filepath.Join(e.dir, "tmp")
				if err := os.WriteFile(tmp, []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(tmp, fifo); err != nil {
					t.Fatal(err)
				}
				eventually(t, "the source to fail", func() bool { return rt.sourceStat(t, "fifo").State == StateFailed })
				if st := rt.sourceStat(t, "fifo"); !strings.Contains(st.LastError, "is no longer a FIFO") {
					t.Fatalf("last error %q; want it to say what replaced the FIFO", st.LastError)
				}
			})
		}
	}
}

// A FIFO replaced while the source reads it (by a regular file, a symlink
// or another FIFO: a path in a directory that others may write) fails the
// source with an error that says so, and what is there now is left alone.
// Before, the source reported itself running while writers wrote into
// the new file.
func TestFIFOReplacedWhileRunning(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(t *testing.T, tmp string)
		want string
	}{
		{"regular file", func(t *testing.T, tmp string) {
			if err := os.WriteFile(tmp, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "is no longer a FIFO"},
		{"another FIFO", func(t *testing.T, tmp string) {
			if err := unix.Mkfifo(tmp, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "is now another FIFO"},
		{"symlink", func(t *testing.T, tmp string) {
			if err := os.Symlink("/dev/null", tmp); err != nil {
				t.Fatal(err)
			}
		}, "is now a symlink"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			fifo := filepath.Join(e.dir, "in.fifo")
			rt, _ := fifoAndSynth(t, fifo)
			tmp := fifo + ".new"
			tc.make(t, tmp)
			if err := os.Rename(tmp, fifo); err != nil {
				t.Fatal(err)
			}
			ino := inode(fifo)
			eventually(t, "the source to fail", func() bool { return rt.sourceStat(t, "fifo").State == StateFailed })
			st := rt.sourceStat(t, "fifo")
			if !strings.Contains(st.LastError, fifo+" "+tc.want) || !strings.Contains(st.LastError, "edgeipc ctl restart") {
				t.Fatalf("last error %q; want it to say %q and how to recover", st.LastError, fifo+" "+tc.want)
			}
			if inode(fifo) != ino {
				t.Fatalf("the %s put at the FIFO's path was replaced", tc.name)
			}
			synthAdvances(t, rt)
		})
	}
}

// blockFIFO runs a runtime with a fifo source "fifo" (framing) on a block
// ring "f" of 8 slots, and opens a reader of the ring that reads nothing
// until the test reads it: the source waits in the ring, and what writers
// send waits in the pipe.
func blockFIFO(t *testing.T, e *env, fifo, framing string) (*Runtime, *syncBuf, *shm.Reader) {
	t.Helper()
	rt, logb, _ := inproc(t, scenarioHead+"[rings.f]\nslots = 8\nslot_payload = 64\npolicy = \"block\"\n"+
		fifoSource(fifo)+fmt.Sprintf("framing = %q\n", framing))
	rd, err := shm.OpenReader("f", e.sopts(), &shm.ReaderOptions{From: shm.Oldest})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rd.Close() })
	eventually(t, "fifo source running", func() bool { return rt.sourceStat(t, "fifo").State == StateRunning })
	return rt, logb, rd
}

// wantFIFOStat waits until source "fifo" has counted frames frames (a
// frame is counted just after it is published), then checks that it
// counted bad bad records and still runs.
func wantFIFOStat(t *testing.T, rt *Runtime, frames, bad uint64) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d frames counted", frames), func() bool { return rt.sourceStat(t, "fifo").Frames == frames })
	if st := rt.sourceStat(t, "fifo"); st.Frames != frames || st.Bad != bad || st.State != StateRunning {
		t.Fatalf("stat %+v; want %d frames, %d bad, running", st, frames, bad)
	}
}

// readRecs reads the frames "rec FROM" to "rec TO" from rd, in order.
func readRecs(t *testing.T, rt *Runtime, rd *shm.Reader, from, to int) {
	t.Helper()
	buf := make([]byte, 64)
	deadline := time.Now().Add(10 * time.Second)
	for i := from; i <= to; i++ {
		f, err := rd.ReadIntoDeadline(deadline, buf)
		if err != nil {
			t.Fatalf("read record %d of %d..%d: %v; source %+v", i, from, to, err, rt.sourceStat(t, "fifo"))
		}
		if want := fmt.Sprintf("rec %d", i); string(f.Data) != want {
			t.Fatalf("frame %q, want %q", f.Data, want)
		}
	}
}

// recLines is "rec FROM\n" ... "rec TO\n".
func recLines(from, to int) string {
	var b strings.Builder
	for i := from; i <= to; i++ {
		fmt.Fprintf(&b, "rec %d\n", i)
	}
	return b.String()
}

// A FIFO removed while records wait in its pipe (the source is held up by a
// block ring behind a slow reader) loses none of them: the source reads what
// its writers had written into it, then creates it again. A record cut
// short there (the writer closed in the middle of it) is counted as bad and
// logged. The source used to let go of the FIFO as soon as it noticed the
// removal, dropping the pipe's contents (and what it had read but not yet
// written) without counting them.
func TestFIFORemovedPipeReadFirst(t *testing.T) {
	e := newEnv(t)
	fifo := filepath.Join(e.dir, "in.fifo")
	rt, logb, rd := blockFIFO(t, e, fifo, "lines")
	writeLine(t, fifo, recLines(1, 30))
	eventually(t, "the source to wait in the full ring", func() bool { return rt.sourceStat(t, "fifo").Frames == 8 })
	// These stay in the pipe: the source waits to write rec 9.
	writeLine(t, fifo, recLines(31, 60)+"part")
	if err := os.Remove(fifo); err != nil {
		t.Fatal(err)
	}
	logb.waitFor(t, "FIFO "+fifo+" was removed while the source read it", 1)
	readRecs(t, rt, rd, 1, 60)
	eventually(t, "60 frames counted", func() bool { return rt.sourceStat(t, "fifo").Frames == 60 })
	logb.waitFor(t, fifo+" was removed while the source read it; created it again", 1)
	eventually(t, "the source to read the new FIFO", func() bool {
		return inode(fifo) != 0 && rt.sourceStat(t, "fifo").State == StateRunning
	})
	if st := rt.sourceStat(t, "fifo"); st.Frames != 60 || st.Bad != 1 || st.Dropped != 0 {
		t.Fatalf("stat %+v; want 60 frames, 1 bad (\"part\"), nothing dropped", st)
	}
	logb.waitFor(t, "source fifo: dropped a record: ", 1)
	writeLine(t, fifo, "rec 61\n")
	readRecs(t, rt, rd, 61, 61)
}

// A record cut short because the FIFO's last writer closed it in the
// middle of the record is counted as one bad record, as on an exec
// source's stdout, and the next writer's records are read whole. The
// runtime's own write end (which keeps the FIFO from reading EOF while no
// writer has it open) used to hide that end: the cut record waited, and
// the next writer's bytes completed it (two lines run into one frame, a
// len32 or msgp record made of the next writer's header and payload).
func TestFIFOLastWriterClosedMidRecord(t *testing.T) {
	for _, tc := range []struct{ framing, first, cut, next string }{
		{"lines", "abc\n", "ab", "cd\n"},
		{"len32", "\x03\x00\x00\x00abc", "\x08\x00\x00\x00ab", "\x02\x00\x00\x00cd"},
		{"msgp", "\xc4\x03abc", "\xc4\x08ab", "\xc4\x02cd"},
	} {
		t.Run(tc.framing, func(t *testing.T) {
			e := newEnv(t)
			fifo := filepath.Join(e.dir, "in.fifo")
			rt, logb, rd := blockFIFO(t, e, fifo, tc.framing)
			writeLine(t, fifo, tc.first+tc.cut)
			eventually(t, "the cut record to be counted", func() bool { return rt.sourceStat(t, "fifo").Bad == 1 })
			logb.waitFor(t, "source fifo: dropped a record: the FIFO's last writer closed it in the middle of a record (the stream ended after ", 1)
			writeLine(t, fifo, tc.next)
			buf := make([]byte, 64)
			for _, want := range []string{"abc", "cd"} {
				f, err := rd.ReadIntoDeadline(time.Now().Add(10*time.Second), buf)
				if err != nil || string(f.Data) != want {
					t.Fatalf("frame %q, %v; want %q", f.Data, err, want)
				}
			}
			wantFIFOStat(t, rt, 2, 1)
		})
	}
}

// A writer that sends a record in two writes and keeps the FIFO open
// meanwhile gets it through whole: the runtime does not take the pause
// for the end of the stream, and a stream that ends between records (the
// writer closes) counts nothing.
func TestFIFOWriterFinishesRecord(t *testing.T) {
	e := newEnv(t)
	fifo := filepath.Join(e.dir, "in.fifo")
	rt, _, rd := blockFIFO(t, e, fifo, "lines")
	w := openWriter(t, fifo)
	if _, err := w.WriteString("rec "); err != nil {
		t.Fatal(err)
	}
	// The source has read the start of the record: it waits for the rest.
	eventually(t, "the source to read the start of the record", func() bool {
		n, err := unix.IoctlGetInt(int(w.Fd()), unix.TIOCINQ)
		return err == nil && n == 0
	})
	if _, err := w.WriteString("1\n"); err != nil {
		t.Fatal(err)
	}
	readRecs(t, rt, rd, 1, 1)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	writeLine(t, fifo, "rec 2\n")
	readRecs(t, rt, rd, 2, 2)
	wantFIFOStat(t, rt, 2, 0)
}

// A FIFO removed while its source waits for the ring's writer lease
// (another writer holds it) cannot be read into the ring: the bytes its
// writers had put in the pipe are dropped, counted in dropped_bytes and
// logged, and the source creates the FIFO again and goes on waiting for
// the lease; once it has the lease, new writers' records reach the ring.
func TestFIFORemovedBeforeLeaseCountsDropped(t *testing.T) {
	e := newEnv(t)
	fifo := filepath.Join(e.dir, "in.fifo")
	path := filepath.Join(t.TempDir(), "c.toml")
	rt, logb, write := reloadFile(t, path, scenarioHead+ringTable("f", ""))
	r, err := shm.Open("f", e.sopts())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w, err := r.NewWriter() // the lease the source will wait for
	if err != nil {
		t.Fatal(err)
	}
	defer func() { w.Close() }()
	write(scenarioHead + ringTable("f", "") + fifoSource(fifo))
	if err := reloadWithin(t, rt); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the source to wait for the lease", func() bool { return rt.sourceStat(t, "fifo").State == StateBackoff })
	const sent = "rec 1\nrec 2\npart"
	writeLine(t, fifo, sent)
	if err := os.Remove(fifo); err != nil {
		t.Fatal(err)
	}
	logb.waitFor(t, fmt.Sprintf("source fifo: FIFO %s is gone; dropped %d bytes that were in it before the source could write to its ring (counted in dropped_bytes)", fifo, len(sent)), 1)
	if st := rt.sourceStat(t, "fifo"); st.Dropped != uint64(len(sent)) || st.Frames != 0 {
		t.Fatalf("stat %+v; want %d dropped bytes, no frames", st, len(sent))
	}
	eventually(t, "the FIFO to be created again", func() bool { return inode(fifo) != 0 })
	w.Close()
	eventually(t, "the source to run", func() bool { return rt.sourceStat(t, "fifo").State == StateRunning })
	writeLine(t, fifo, "after\n")
	if f := readFrames(t, e, "f", 1); string(f[0].Data) != "after" {
		t.Fatalf("frame %q; want \"after\"", f[0].Data)
	}
}

// A FIFO, recorder or segment directory path with a ".." after a symlink
// names what the kernel resolves: with lnk a symlink to real/sub,
// "lnk/../in.fifo" is real/in.fifo. The check cleaned such paths as text
// (filepath.Clean, and shm's filepath.Join), and the runtime created the
// FIFO, the recorder's file and the rings under <dir>, where no program
// that opens the path as written looks.
func TestPathsWithDotDotAfterSymlink(t *testing.T) {
	e := newEnv(t)
	real := filepath.Join(e.dir, "real")
	if err := os.MkdirAll(filepath.Join(real, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(real, "sub"), filepath.Join(e.dir, "lnk")); err != nil {
		t.Fatal(err)
	}
	fifo := e.dir + "/lnk/../in.fifo"
	rec := e.dir + "/lnk/./../rec.bin"
	if err := os.Mkdir(filepath.Join(real, "seg"), 0o700); err != nil {
		t.Fatal(err)
	}
	segs := *e
	segs.dir = e.dir + "/lnk/../seg/"
	rt, _, _ := inproc(t, scenarioHead+fmt.Sprintf("shm_dir = %q\n", segs.dir)+ringTable("f", "")+fifoSource(fifo)+
		fmt.Sprintf("[[sinks]]\nname = \"rec\"\nkind = \"recorder\"\nring = \"f\"\npath = %q\n", rec))
	if got := rt.cfg.Sources[0].Path; got != fifo {
		t.Errorf("fifo path taken as %q; want it as written, %q", got, fifo)
	}
	if got, want := rt.cfg.Sinks[0].Path, e.dir+"/lnk/../rec.bin"; got != want {
		t.Errorf("recorder path taken as %q; want %q (without the \".\" part)", got, want)
	}
	eventually(t, "fifo source running", func() bool { return rt.sourceStat(t, "fifo").State == StateRunning })
	if rt.shmDir != e.dir+"/lnk/../seg" {
		t.Errorf("segment directory taken as %q; want %q", rt.shmDir, e.dir+"/lnk/../seg")
	}
	if _, err := os.Lstat(filepath.Join(real, "seg", "edgeipc.f")); err != nil {
		t.Errorf("ring f is not where the kernel resolves %s: %v", segs.dir, err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(real, "in.fifo"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Fatalf("real/in.fifo: %v (mode %#o); want the FIFO where the kernel resolves %s", err, st.Mode, fifo)
	}
	for _, p := range []string{"in.fifo", "rec.bin", "seg"} {
		if _, err := os.Lstat(filepath.Join(e.dir, p)); !os.IsNotExist(err) {
			t.Errorf("%s exists in the lexical parent (%v); want nothing there", p, err)
		}
	}
	// The recorder records from the frame at the head when it joins: a
	// frame written before that (under qemu the recorder can join after
	// the source runs) would never reach its file.
	waitReaders(t, rt, "f", 1)
	writeLine(t, fifo, "through the link\n")
	if f := readFrames(t, &segs, "f", 1); string(f[0].Data) != "through the link" {
		t.Fatalf("frame %q; want \"through the link\"", f[0].Data)
	}
	eventually(t, "the recorder's file where the kernel resolves its path", func() bool {
		fi, err := os.Stat(filepath.Join(real, "rec.bin"))
		return err == nil && fi.Size() > 0
	})
}

// TestWatchFIFOPathGone: a FIFO whose path is gone by the time watchFIFO
// adds its watch (removed: ENOENT; its directory replaced by a file:
// ENOTDIR) is reported removed by the first check. The watch's error is
// no inotify trouble: ENOTDIR was logged as "cannot watch it with
// inotify".
func TestWatchFIFOPathGone(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "missing"), filepath.Join(file, "fifo")} {
		ctx, fail := context.WithCancelCause(context.Background())
		var noWatch error
		watchFIFO(ctx, fail, path, fifoID{1, 1}, nil, nil, func(err error) { noWatch = err })
		if noWatch != nil {
			t.Errorf("%s: watchFIFO said it cannot watch with inotify: %v", path, noWatch)
		}
		if cause := context.Cause(ctx); !errors.Is(cause, errFIFORemoved) {
			t.Errorf("%s: cause %v, want the FIFO removed", path, cause)
		}
	}
}
