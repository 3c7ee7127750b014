package runtime

import (
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

// remadeRig is a runtime whose fifo source "fifo" reads into a block ring
// "f" of 8 slots that a reader, rd, holds full (it reads nothing until the
// test reads it), and whose FIFO was removed while the source waited to
// write "rec 9": the records "rec 9" to "rec 30" wait in the source (read,
// not yet in the ring), and the removed FIFO's pipe holds what the test put
// there.
type remadeRig struct {
	e      *env
	rt     *Runtime
	logb   *syncBuf
	rd     *shm.Reader
	fifo   string
	write  func(string) // writes the config file anew (reload with reloadWithin)
	stop   func() error // stops the runtime
	config func(extra string) string
}

// newRemadeRig starts the rig (dir: the FIFO's directory, "" for the
// test's own; extra: the fifo source's further keys; read: bytes written
// after "rec 30", which the source reads with it), writes inPipe into the FIFO once the source has read "rec 1" to "rec 30"
// and waits in the full ring, removes the FIFO and returns once the source
// has noticed (logged).
func newRemadeRig(t *testing.T, dir, extra, read, inPipe string) *remadeRig {
	t.Helper()
	r := &remadeRig{e: newEnv(t)}
	if dir == "" {
		dir = r.e.dir
	}
	r.fifo = filepath.Join(dir, "in.fifo")
	r.config = func(x string) string {
		return scenarioHead + "[rings.f]\nslots = 8\nslot_payload = 64\npolicy = \"block\"\n" + fifoSource(r.fifo) + x
	}
	path := filepath.Join(t.TempDir(), "c.toml")
	r.write = func(text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r.write(r.config(extra))
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	r.rt, r.logb, r.stop = inprocConfig(t, cfg)
	if r.rd, err = shm.OpenReader("f", r.e.sopts(), &shm.ReaderOptions{From: shm.Oldest}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.rd.Close() })
	eventually(t, "fifo source running", func() bool { return r.rt.sourceStat(t, "fifo").State == StateRunning })
	writeLine(t, r.fifo, recLines(1, 30)+read)
	eventually(t, "the source to read the FIFO and wait in the full ring", func() bool {
		return r.rt.sourceStat(t, "fifo").Frames == 8 && pipeLen(t, r.fifo) == 0
	})
	if inPipe != "" {
		writeLine(t, r.fifo, inPipe)
	}
	// With dir, the directory goes with it: moved away first, so that the
	// source, which notices the FIFO's unlink at once, cannot make it again
	// there before the directory is gone (rm -rf would then fail, "directory
	// not empty").
	if dir != r.e.dir {
		if err = os.Rename(dir, dir+".gone"); err == nil {
			err = os.RemoveAll(dir + ".gone")
		}
	} else {
		err = os.Remove(r.fifo)
	}
	if err != nil {
		t.Fatal(err)
	}
	r.logb.waitFor(t, "FIFO "+r.fifo+" was removed while the source read it", 1)
	return r
}

// waitRemade waits until the FIFO's path names a FIFO again, and checks
// that the source still waits in the full ring then: it has not yet read
// what the removed FIFO held.
func (r *remadeRig) waitRemade(t *testing.T) {
	t.Helper()
	eventually(t, "the FIFO to be created again while the source still waits in the ring", func() bool {
		var st unix.Stat_t
		return unix.Lstat(r.fifo, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFIFO
	})
	r.stillBlocked(t)
}

// stillBlocked checks that the source still waits to write "rec 9".
func (r *remadeRig) stillBlocked(t *testing.T) {
	t.Helper()
	if st := r.rt.sourceStat(t, "fifo"); st.Frames != 8 {
		t.Fatalf("stat %+v; want the source still waiting in the full ring (8 frames)", st)
	}
}

// replaceSource replaces the running source by a new one: how is
// "restart" (a control request), or "reload" (with the type changed).
func (r *remadeRig) replaceSource(t *testing.T, how string) {
	t.Helper()
	if how == "restart" {
		if err := r.rt.RestartSource("fifo"); err != nil {
			t.Fatal(err)
		}
		return
	}
	r.write(r.config("type = 2\n"))
	if err := reloadWithin(t, r.rt); err != nil {
		t.Fatal(err)
	}
}

// pipeLen is how many bytes wait in the pipe of the FIFO at path (which
// something reads).
func pipeLen(t *testing.T, path string) int {
	t.Helper()
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		t.Fatalf("open %s for writing: %v", path, err)
	}
	defer unix.Close(fd)
	n, err := unix.IoctlGetInt(fd, unix.TIOCINQ)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// echoInto writes line to path as a shell's "echo x > path" does: open
// with O_CREAT|O_TRUNC (which creates a regular file if nothing is at the
// path), write, close.
func echoInto(t *testing.T, path, line string) {
	t.Helper()
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o666)
	if err != nil {
		t.Fatalf("echo > %s: %v", path, err)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte(line)); err != nil {
		t.Fatalf("echo > %s: %v", path, err)
	}
}

// A FIFO removed while the source is held up reading it (a block ring
// behind a slow reader) is created again at once, not once the source has
// read what the removed one holds: writers that open the path meanwhile
// are connected (a shell's "echo x > path" writes into the FIFO) and what
// they write waits in the new FIFO, which another runtime is refused; the
// source reads it after everything from the removed one, and nothing is
// lost or read twice. Before, the path stayed absent until the ring had
// taken the removed FIFO's records, however long that took: writers got
// ENOENT, and "echo x > path" created a regular file there, which the
// source then refused for good ("exists and is not a FIFO").
func TestFIFORemovedIsCreatedAgainAtOnce(t *testing.T) {
	gid := os.Getegid()
	if os.Geteuid() == 0 {
		gid = 65534 // root can give it any group: check that it does
	}
	for _, tc := range []struct {
		name, extra string
		mode        uint32
		gid         int
	}{
		{"default", "", 0o600, os.Getegid()},
		{"group", fmt.Sprintf("mode = \"0660\"\ngroup = \"%d\"\n", gid), 0o660, gid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRemadeRig(t, "", tc.extra, "", recLines(31, 40))
			r.waitRemade(t)
			r.logb.waitFor(t, "source fifo: FIFO "+r.fifo+" was removed; created it again at once", 1)
			var st unix.Stat_t
			if err := unix.Lstat(r.fifo, &st); err != nil {
				t.Fatal(err)
			}
			if st.Mode&0o7777 != tc.mode || int(st.Uid) != os.Geteuid() || int(st.Gid) != tc.gid {
				t.Fatalf("FIFO created again with mode %#o, uid %d, gid %d; want %#o, uid %d, gid %d", st.Mode&0o7777, st.Uid, st.Gid, tc.mode, os.Geteuid(), tc.gid)
			}
			// Another runtime is refused it: this one holds its lock and
			// reads it.
			if f, dummy, _, err := openFIFO(r.fifo, 0, ""); err == nil {
				f.Close()
				unix.Close(dummy)
				t.Fatal("another runtime could open the FIFO created again; want it refused")
			} else if elsewhere := (*readElsewhereError)(nil); !errors.As(err, &elsewhere) {
				t.Fatalf("another runtime's open: %v; want it refused as a FIFO another runtime reads", err)
			}
			writeLine(t, r.fifo, "rec 41\n") // O_NONBLOCK: ENXIO if nothing had it open for reading
			echoInto(t, r.fifo, "rec 42\n")
			if err := unix.Lstat(r.fifo, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
				t.Fatalf("after echo > %s: mode %#o, %v; want the FIFO still there", r.fifo, st.Mode, err)
			}
			r.stillBlocked(t)
			readRecs(t, r.rt, r.rd, 1, 42)
			wantFIFOStat(t, r.rt, 42, 0)
			writeLine(t, r.fifo, "rec 43\n")
			readRecs(t, r.rt, r.rd, 43, 43)
			if st := r.rt.sourceStat(t, "fifo"); st.Dropped != 0 || !strings.Contains(st.LastError, "created it again") {
				t.Fatalf("stat %+v; want nothing dropped, and the last error to say the FIFO was created again", st)
			}
		})
	}
}

// A restart, a reload or a stop of the source while it still reads a
// removed FIFO, the new one created already, leaves the new FIFO to the
// source that follows: a restart or reload hands it over with what writers
// wrote into it (a read end is held over the gap, as for any restart);
// a stop closes the runtime's read end of it (no descriptor is left, and
// writers no longer find a reader) and a start reads it again; the
// shutdown removes it with remove_on_exit (this runtime created it) and
// leaves it otherwise.
func TestFIFORemovedStopDuringRead(t *testing.T) {
	for _, how := range []string{"restart", "reload", "stop", "shutdown", "shutdown-remove_on_exit"} {
		t.Run(how, func(t *testing.T) {
			extra := ""
			if how == "shutdown-remove_on_exit" {
				extra = "remove_on_exit = true\n"
			}
			r := newRemadeRig(t, "", extra, "", "")
			r.waitRemade(t)
			ino := inode(r.fifo)
			writeLine(t, r.fifo, "rec 31\n")
			echoInto(t, r.fifo, "rec 32\n")
			switch how {
			case "restart":
				if err := r.rt.RestartSource("fifo"); err != nil {
					t.Fatal(err)
				}
			case "reload":
				r.write(r.config(extra + "type = 2\n"))
				if err := reloadWithin(t, r.rt); err != nil {
					t.Fatal(err)
				}
			case "stop":
				if err := r.rt.StopSource("fifo"); err != nil {
					t.Fatal(err)
				}
				if fifoHasReader(r.fifo) {
					t.Fatal("the stopped source left the FIFO open for reading")
				}
				if inode(r.fifo) != ino {
					t.Fatal("the stopped source's FIFO is no longer at its path")
				}
				if err := r.rt.StartSource("fifo"); err != nil {
					t.Fatal(err)
				}
				eventually(t, "the source to read the FIFO again", func() bool { return r.rt.sourceStat(t, "fifo").State == StateRunning })
				if inode(r.fifo) != ino {
					t.Fatal("the started source made another FIFO")
				}
				// A stop hands nothing on: what the stopped source had
				// read, and what was in the FIFO then, is gone.
				readRecs(t, r.rt, r.rd, 1, 8)
				writeLine(t, r.fifo, "rec 9\n")
				readRecs(t, r.rt, r.rd, 9, 9)
				return
			default:
				if err := r.stop(); err != nil {
					t.Fatal(err)
				}
				if how == "shutdown-remove_on_exit" {
					if _, err := os.Lstat(r.fifo); !os.IsNotExist(err) {
						t.Fatalf("after the shutdown with remove_on_exit: %v; want the FIFO removed", err)
					}
				} else if inode(r.fifo) != ino {
					t.Fatal("the shutdown did not leave the FIFO in place")
				}
				return
			}
			r.logb.waitFor(t, "source fifo: reading the 0 bytes left in FIFO "+r.fifo+", which was removed", 1)
			readRecs(t, r.rt, r.rd, 1, 32)
			r.logb.waitFor(t, "source fifo: reading FIFO", 2)
			if inode(r.fifo) != ino {
				t.Fatal("the new source made another FIFO")
			}
			writeLine(t, r.fifo, "rec 33\n")
			readRecs(t, r.rt, r.rd, 33, 33)
			if st := r.rt.sourceStat(t, "fifo"); st.Bad != 0 || st.Dropped != 0 {
				t.Fatalf("stat %+v; want nothing bad or dropped", st)
			}
		})
	}
}

// A FIFO created again and removed again while the source still reads the
// first one is created again too, at once: the source reads the three in
// turn, and nothing written into any of them is lost. (Without the watch
// of the FIFO made again, the path stayed absent until the source had read
// the first.)
func TestFIFORemovedTwiceDuringRead(t *testing.T) {
	r := newRemadeRig(t, "", "", "", "")
	r.waitRemade(t)
	writeLine(t, r.fifo, "rec 31\n")
	if err := os.Remove(r.fifo); err != nil {
		t.Fatal(err)
	}
	r.waitRemade(t)
	r.logb.waitFor(t, "source fifo: FIFO "+r.fifo+" was removed; created it again at once", 2)
	echoInto(t, r.fifo, "rec 32\n")
	r.stillBlocked(t)
	readRecs(t, r.rt, r.rd, 1, 32)
	wantFIFOStat(t, r.rt, 32, 0)
	writeLine(t, r.fifo, "rec 33\n")
	readRecs(t, r.rt, r.rd, 33, 33)
	if st := r.rt.sourceStat(t, "fifo"); st.Dropped != 0 || st.Bad != 0 {
		t.Fatalf("stat %+v; want nothing bad or dropped", st)
	}
}

// A FIFO that cannot be created again at once (here its directory was
// removed with it) leaves the source as it was: it reads what the removed
// FIFO holds, and then reports why it cannot create the FIFO, as it did
// before it created a removed FIFO at once.
func TestFIFORemovedCannotBeMadeAgain(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sub")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	r := newRemadeRig(t, dir, "", "", recLines(31, 32))
	r.logb.waitFor(t, fmt.Sprintf("source fifo: FIFO %s was removed; could not create it again at once (mkfifo %s: no such file or directory)", r.fifo, r.fifo), 1)
	r.stillBlocked(t)
	readRecs(t, r.rt, r.rd, 1, 32)
	eventually(t, "the source to say why it cannot create the FIFO", func() bool {
		return strings.Contains(r.rt.sourceStat(t, "fifo").LastError, "mkfifo "+r.fifo)
	})
}

// A restart or reload while the source still reads a FIFO that was
// removed hands that FIFO's pipe to the new source, with what the old one
// had read of a record: the new source reads what was left in it, then
// the FIFO made again at the path, and nothing is lost or cut. Before, the
// old source closed the pipe, and what was still in it was lost without a
// count; the record it had begun was completed from neither FIFO.
func TestFIFORemovedRestartKeepsPipe(t *testing.T) {
	for _, how := range []string{"restart", "reload"} {
		t.Run(how, func(t *testing.T) {
			r := newRemadeRig(t, "", "", "part", "ial\n"+recLines(31, 40))
			r.waitRemade(t)
			writeLine(t, r.fifo, "rec 41\n")
			r.replaceSource(t, how)
			readRecs(t, r.rt, r.rd, 1, 30)
			buf := make([]byte, 64)
			f, err := r.rd.ReadIntoDeadline(time.Now().Add(10*time.Second), buf)
			if err != nil || string(f.Data) != "partial" {
				t.Fatalf("frame %q, %v; want the record begun before the %s, whole", f.Data, err, how)
			}
			readRecs(t, r.rt, r.rd, 31, 41)
			r.logb.waitFor(t, fmt.Sprintf("source fifo: reading the %d bytes left in FIFO %s, which was removed while the source this one replaced read it; then the FIFO at the path", len("ial\n"+recLines(31, 40)), r.fifo), 1)
			r.logb.waitFor(t, "source fifo: reading FIFO", 2)
			writeLine(t, r.fifo, "rec 42\n")
			readRecs(t, r.rt, r.rd, 42, 42)
			if st := r.rt.sourceStat(t, "fifo"); st.Bad != 0 || st.Dropped != 0 || st.State != StateRunning {
				t.Fatalf("stat %+v; want nothing bad or dropped, running", st)
			}
		})
	}
}

// A stop (and the shutdown) hands nothing on, nor a reload that changes
// the framing: what was left in the pipe of a FIFO that was removed while
// the source read it is counted in dropped_bytes and logged, not lost
// without a word.
func TestFIFORemovedStopCountsPipe(t *testing.T) {
	left := recLines(31, 40)
	for _, how := range []string{"stop", "shutdown", "reload-framing"} {
		t.Run(how, func(t *testing.T) {
			r := newRemadeRig(t, "", "", "", left)
			r.waitRemade(t)
			switch how {
			case "stop":
				if err := r.rt.StopSource("fifo"); err != nil {
					t.Fatal(err)
				}
				if st := r.rt.sourceStat(t, "fifo"); st.Dropped != uint64(len(left)) {
					t.Fatalf("stat %+v; want the %d bytes left in the removed FIFO's pipe in dropped_bytes", st, len(left))
				}
			case "reload-framing":
				r.write(r.config("framing = \"len32\"\n"))
				if err := reloadWithin(t, r.rt); err != nil {
					t.Fatal(err)
				}
				// and "rec 10" to "rec 30", read and not decoded
				want := uint64(len(left) + len(recLines(10, 30)))
				eventually(t, "the bytes to be counted", func() bool { return r.rt.sourceStat(t, "fifo").Dropped == want })
			default:
				if err := r.stop(); err != nil {
					t.Fatal(err)
				}
			}
			r.logb.waitFor(t, fmt.Sprintf("source fifo: FIFO %s is gone; dropped %d bytes that were in it", r.fifo, len(left)), 1)
		})
	}
}

// A restart or reload while the source reads a removed FIFO hands on what
// it had read of that FIFO and its pipe, but the start of a record whose
// rest is in neither (its writer sent no more) cannot be completed by the
// FIFO at the path: it is counted as a bad record, and the next source's
// first record from that FIFO is read whole. (Once, the next source decoded
// the start of that record and then the new FIFO, and the two ran into one
// frame: "partrec 31".)
func TestFIFORemovedRestartDropsCutRecord(t *testing.T) {
	for _, how := range []string{"restart", "reload"} {
		t.Run(how, func(t *testing.T) {
			r := newRemadeRig(t, "", "", "part", "")
			r.waitRemade(t)
			writeLine(t, r.fifo, "rec 31\n")
			r.replaceSource(t, how)
			r.logb.waitFor(t, "source fifo: reading the 0 bytes left in FIFO "+r.fifo, 1)
			readRecs(t, r.rt, r.rd, 1, 31)
			wantFIFOStat(t, r.rt, map[string]uint64{"restart": 31, "reload": 23}[how], 1)
			r.logb.waitFor(t, "source fifo: dropped a record: FIFO "+r.fifo+" is gone (removed) and its writers sent no more of the record being read (reading stopped after 4 bytes of it)", 1)
			r.logb.waitFor(t, "source fifo: reading FIFO", 2)
		})
	}
}
