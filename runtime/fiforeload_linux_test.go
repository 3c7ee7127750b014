package runtime

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/shm"
)

// A reload that restarts a fifo source on the same path (here only its
// frame type changes) keeps the FIFO: a writer that holds it open across
// the reload goes on writing, also while the old source has stopped and
// the new one has not yet opened the FIFO (the runtime holds a read end
// over that gap), and what it writes then is read by the new source.
// Before, a write in that gap failed with EPIPE (SIGPIPE kills a writer
// that does not handle it), and with remove_on_exit the reload removed the
// FIFO and created a new one, so every later write of the writer failed
// too, while new writers found a FIFO that the old ones never reached.
func TestReloadFIFOKeepsWriters(t *testing.T) {
	for _, roe := range []bool{false, true} {
		t.Run(fmt.Sprintf("remove_on_exit=%v", roe), func(t *testing.T) {
			cfg := func(typ int) string { return fmt.Sprintf("remove_on_exit = %v\ntype = %d\n", roe, typ) }
			r := newFIFORig(t, cfg(1))
			if _, err := r.w.Write([]byte("before\n")); err != nil {
				t.Fatal(err)
			}
			if f := readFrames(t, r.e, "f", 1); string(f[0].Data) != "before" || f[0].Type != 1 {
				t.Fatalf("frame %q type %d; want \"before\" type 1", f[0].Data, f[0].Type)
			}
			// Write while the old source has stopped and the new one has
			// not started.
			gapDone := r.writeInGap(t, []byte("gap\n"))
			r.write(r.config(cfg(2)))
			if err := reloadWithin(t, r.rt); err != nil {
				t.Fatal(err)
			}
			gapDone()
			if _, err := r.w.Write([]byte("after\n")); err != nil {
				t.Fatalf("write after the reload, on the descriptor opened before it: %v", err)
			}
			got := readFrames(t, r.e, "f", 3)
			for i, want := range []string{"before", "gap", "after"} {
				wantType := uint32(2)
				if i == 0 {
					wantType = 1
				}
				if string(got[i].Data) != want || got[i].Type != wantType {
					t.Fatalf("frame %d: %q type %d; want %q type %d", i, got[i].Data, got[i].Type, want, wantType)
				}
			}
			if _, err := os.Lstat(r.fifo); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A reload (or `edgeipc ctl restart`) that restarts a fifo source while a
// writer is in the middle of a record keeps that record whole: the part the old source had read is
// decoded by the new one before the rest. Before, the part was lost
// without a count and the rest was published as a record of its own
// (lines), or broke the stream until every writer closed (len32).
func TestReloadFIFOKeepsPartialRecord(t *testing.T) {
	for _, c := range []struct{ fr, how string }{{"lines", "reload"}, {"len32", "reload"}, {"lines", "restart"}, {"len32", "restart"}} {
		fr := c.fr
		t.Run(c.fr+"/"+c.how, func(t *testing.T) {
			cfg := func(typ int) string { return fmt.Sprintf("framing = %q\ntype = %d\n", fr, typ) }
			frame := func(s string) []byte {
				if fr == "lines" {
					return []byte(s + "\n")
				}
				return append(binary.LittleEndian.AppendUint32(nil, uint32(len(s))), s...)
			}
			r := newFIFORig(t, cfg(1))
			whole := frame("cut-by-the-reload")
			half := len(whole) / 2
			r.writeRead(t, append(frame("before"), whole[:half]...))
			if f := readFrames(t, r.e, "f", 1); string(f[0].Data) != "before" {
				t.Fatalf("frame %q; want \"before\"", f[0].Data)
			}
			if c.how == "reload" {
				r.write(r.config(cfg(2)))
				if err := reloadWithin(t, r.rt); err != nil {
					t.Fatal(err)
				}
			} else if err := r.rt.RestartSource("fifo"); err != nil {
				t.Fatal(err)
			}
			r.logb.waitFor(t, "source fifo: reading FIFO", 2)
			if _, err := r.w.Write(append(whole[half:], frame("after")...)); err != nil {
				t.Fatal(err)
			}
			got := readFrames(t, r.e, "f", 3)
			for i, want := range []string{"before", "cut-by-the-reload", "after"} {
				if string(got[i].Data) != want {
					t.Fatalf("frame %d: %q; want %q (frames %q %q %q)", i, got[i].Data, want, got[0].Data, got[1].Data, got[2].Data)
				}
			}
			if st := r.rt.sourceStat(t, "fifo"); st.Bad != 0 || st.Dropped != 0 {
				t.Fatalf("bad records %d, dropped bytes %d; want none", st.Bad, st.Dropped)
			}
		})
	}
}

// A reload that changes a fifo source's framing drops what the old source
// had read of a partial record (it is framed the old way), and counts and
// logs it.
func TestReloadFIFOFramingChangeDropsPartial(t *testing.T) {
	r := newFIFORig(t, "framing = \"lines\"\n")
	r.writeRead(t, []byte("before\nhalf-a-line"))
	readFrames(t, r.e, "f", 1)
	r.write(r.config("framing = \"len32\"\n"))
	if err := reloadWithin(t, r.rt); err != nil {
		t.Fatal(err)
	}
	r.logb.waitFor(t, "source fifo: reading FIFO", 2)
	if _, err := r.w.Write(binary.LittleEndian.AppendUint32(nil, 5)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.w.Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
	if got := readFrames(t, r.e, "f", 2); string(got[1].Data) != "after" {
		t.Fatalf("frame after the reload %q; want \"after\"", got[1].Data)
	}
	if st := r.rt.sourceStat(t, "fifo"); st.Dropped != uint64(len("half-a-line")) {
		t.Fatalf("dropped_bytes %d; want %d", st.Dropped, len("half-a-line"))
	}
	r.logb.waitFor(t, "dropped 11 bytes of a partial record", 1)
}

// `edgeipc ctl restart` of a fifo source holds a read end over the gap as
// a reload does: a writer's write while the old run has ended and the new
// one has not opened the FIFO succeeds and is read by the new run. Before,
// it failed with EPIPE (SIGPIPE kills a writer that does not handle it).
func TestRestartFIFOKeepsWriters(t *testing.T) {
	r := newFIFORig(t, "")
	gapDone := r.writeInGap(t, []byte("gap\n"))
	if err := r.rt.RestartSource("fifo"); err != nil {
		t.Fatal(err)
	}
	gapDone()
	if got := readFrames(t, r.e, "f", 1); string(got[0].Data) != "gap" {
		t.Fatalf("frame %q; want \"gap\"", got[0].Data)
	}
}

// What a stop left of a partial record is handed only to the run that
// replaces the stopped one at once: `edgeipc ctl stop`, then later
// `edgeipc ctl restart`, starts afresh, since the writers may have
// moved on. (With the stale bytes the first new record read "halfwhole".)
func TestRestartAfterStopDropsStalePartial(t *testing.T) {
	r := newFIFORig(t, "")
	r.writeRead(t, []byte("before\nhalf"))
	readFrames(t, r.e, "f", 1)
	if err := r.rt.StopSource("fifo"); err != nil {
		t.Fatal(err)
	}
	r.w.Close()
	if err := r.rt.RestartSource("fifo"); err != nil {
		t.Fatal(err)
	}
	r.logb.waitFor(t, "source fifo: reading FIFO", 2)
	w2 := openWriter(t, r.fifo)
	if _, err := w2.Write([]byte("whole\n")); err != nil {
		t.Fatal(err)
	}
	if got := readFrames(t, r.e, "f", 2); string(got[1].Data) != "whole" {
		t.Fatalf("first frame after stop and restart %q; want \"whole\"", got[1].Data)
	}
}

// fifoRig is a runtime started from a config file with one ring "f" fed by
// the fifo source "fifo", the source running and a writer w holding the FIFO
// open. write replaces the
// file (reload it with reloadWithin).
type fifoRig struct {
	e     *env
	rt    *Runtime
	logb  *syncBuf
	write func(string)
	fifo  string
	w     *os.File
}

// newFIFORig starts the rig; extra is the source's keys after its path
// (e.g. "framing = \"len32\"\n").
func newFIFORig(t *testing.T, extra string) *fifoRig {
	t.Helper()
	r := &fifoRig{e: newEnv(t)}
	path := filepath.Join(t.TempDir(), "c.toml")
	r.fifo = filepath.Join(r.e.dir, "in.fifo")
	r.rt, r.logb, r.write = reloadFile(t, path, r.config(extra))
	eventually(t, "fifo source running", func() bool { return r.rt.sourceStat(t, "fifo").State == StateRunning })
	r.w = openWriter(t, r.fifo)
	return r
}

// config is the rig's config with the source's keys extra.
func (r *fifoRig) config(extra string) string {
	return scenarioHead + ringTable("f", "") + fifoSource(r.fifo) + extra
}

// fifoSource is the [[sources]] table of a fifo source "fifo" on ring f.
func fifoSource(path string) string {
	return fmt.Sprintf("[[sources]]\nname = \"fifo\"\nkind = \"fifo\"\nring = \"f\"\npath = %q\n", path)
}

// writeRead writes p to the FIFO and waits until the source has read all of
// it (the pipe is empty), so that a partial record at its end is in the
// running source's buffer.
func (r *fifoRig) writeRead(t *testing.T, p []byte) {
	t.Helper()
	if _, err := r.w.Write(p); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the source reads the pipe", func() bool {
		n, err := unix.IoctlGetInt(int(r.w.Fd()), unix.TIOCINQ)
		return err == nil && n == 0
	})
}

// writeInGap arranges for p to be written to the FIFO the moment the
// source's current run returns, while no run has it open; done, after the
// restart, fails the test unless the run returned and the write succeeded.
func (r *fifoRig) writeInGap(t *testing.T, p []byte) (done func()) {
	var gapErr atomic.Pointer[error]
	var hooked atomic.Bool
	testHookRunReturned = func(name string) {
		if name == "fifo" && hooked.CompareAndSwap(false, true) {
			_, err := r.w.Write(p)
			gapErr.Store(&err)
		}
	}
	t.Cleanup(func() { testHookRunReturned = nil })
	return func() {
		t.Helper()
		testHookRunReturned = nil
		r.logb.waitFor(t, "source fifo: reading FIFO", 2)
		if p := gapErr.Load(); p == nil {
			t.Fatal("the source's old run never returned")
		} else if *p != nil {
			t.Fatalf("write while the source was restarted: %v; want it to succeed", *p)
		}
	}
}

// A restart (or a reload that restarts the source) while the source drains
// a broken stream does not hand the bytes the drain dropped to the new
// source: they were counted as dropped, and they are the broken record.
// The new source reads afresh, and a writer that still holds the FIFO open
// is read as soon as it writes a whole record. Before, the new source got
// the broken header back as the "partial record" of the old one: it broke
// the stream again at once (a second bad record, the bytes counted as
// dropped twice) and drained the writer's next record too.
func TestRestartDuringDrainStartsAfresh(t *testing.T) {
	for _, how := range []string{"restart", "reload", "reload-framing"} {
		t.Run(how, func(t *testing.T) {
			r := newFIFORig(t, "framing = \"len32\"\n")
			if _, err := r.w.Write(brokenLength); err != nil { // and it stays open
				t.Fatal(err)
			}
			r.logb.waitFor(t, "stream broken", 1)
			eventually(t, "the drain to count the broken header", func() bool { return r.rt.sourceStat(t, "fifo").Dropped == 4 })
			framing := "len32"
			switch how {
			case "restart":
				if err := r.rt.RestartSource("fifo"); err != nil {
					t.Fatal(err)
				}
			case "reload-framing":
				framing = "lines"
				fallthrough
			default:
				r.write(r.config(fmt.Sprintf("framing = %q\ntype = 2\n", framing)))
				if err := reloadWithin(t, r.rt); err != nil {
					t.Fatal(err)
				}
			}
			r.logb.waitFor(t, "source fifo: reading FIFO", 2)
			rec := []byte("after\n")
			if framing == "len32" {
				rec = append(binary.LittleEndian.AppendUint32(nil, 5), "after"...)
			}
			if _, err := r.w.Write(rec); err != nil {
				t.Fatal(err)
			}
			if got := readFrames(t, r.e, "f", 1); string(got[0].Data) != "after" {
				t.Fatalf("frame %q; want \"after\"", got[0].Data)
			}
			// A reload replaces the source and its counters.
			wantBad, wantDropped := uint64(0), uint64(0)
			if how == "restart" {
				wantBad, wantDropped = 1, 4
			}
			if st := r.rt.sourceStat(t, "fifo"); st.Bad != wantBad || st.Dropped != wantDropped {
				t.Fatalf("bad records %d, dropped bytes %d; want %d and %d (the broken header, counted once, by the old source)", st.Bad, st.Dropped, wantBad, wantDropped)
			}
		})
	}
}

// A reload (or `edgeipc ctl restart`) that restarts a fifo source while it
// waits to write a record into a block ring (a reader is slow) hands that
// record to the new source, which writes it before what follows: nothing
// the writers sent is lost. Before, the record was read from the FIFO and
// then dropped without a count: the reader got r1, r2, r4.
func TestRestartFIFOKeepsRecordWaitingForRoom(t *testing.T) {
	for _, how := range []string{"restart", "reload", "reload-framing"} {
		t.Run(how, func(t *testing.T) {
			e := newEnv(t)
			fifo := filepath.Join(e.dir, "in.fifo")
			config := func(extra string) string {
				return scenarioHead + "[rings.f]\nslots = 2\nslot_payload = 64\npolicy = \"block\"\nstats = false\n" +
					fmt.Sprintf("[[sources]]\nname = \"fifo\"\nkind = \"fifo\"\nring = \"f\"\npath = %q\n", fifo) + extra
			}
			rt, logb, write := reloadFile(t, filepath.Join(t.TempDir(), "c.toml"), config(""))
			eventually(t, "fifo source running", func() bool { return rt.sourceStat(t, "fifo").State == StateRunning })
			// The slow reader: it joins before the first frame and reads
			// nothing until the source has restarted.
			rd, err := shm.OpenReader("f", e.sopts(), &shm.ReaderOptions{From: shm.Oldest})
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			w := openWriter(t, fifo)
			if _, err := w.Write([]byte("r1\nr2\nr3\nr4\n")); err != nil {
				t.Fatal(err)
			}
			// r1 and r2 fill the ring; the source has read r3 and r4 and
			// waits for room for r3.
			eventually(t, "the source to fill the ring and read the pipe", func() bool {
				n, err := unix.IoctlGetInt(int(w.Fd()), unix.TIOCINQ)
				return err == nil && n == 0 && rt.sourceStat(t, "fifo").Frames == 2
			})
			switch how {
			case "restart":
				if err := rt.RestartSource("fifo"); err != nil {
					t.Fatal(err)
				}
			case "reload":
				write(config("type = 2\n"))
				if err := reloadWithin(t, rt); err != nil {
					t.Fatal(err)
				}
			case "reload-framing":
				// r4 is framed as a line, the old way, and dropped; r3 was
				// decoded already and is written.
				write(config("framing = \"len32\"\n"))
				if err := reloadWithin(t, rt); err != nil {
					t.Fatal(err)
				}
			}
			logb.waitFor(t, "source fifo: reading FIFO", 2)
			want := []string{"r1", "r2", "r3", "r4"}
			if how == "reload-framing" {
				want = want[:3]
			}
			buf := make([]byte, 64)
			for i, s := range want {
				f, err := rd.ReadIntoDeadline(time.Now().Add(wait), buf)
				if err != nil {
					t.Fatalf("frame %d: %v; want %q", i, err, s)
				}
				if string(f.Data) != s {
					t.Fatalf("frame %d: %q; want %q", i, f.Data, s)
				}
			}
			wantDropped := uint64(0)
			if how == "reload-framing" {
				wantDropped = uint64(len("r4\n"))
			}
			if st := rt.sourceStat(t, "fifo"); st.Bad != 0 || st.Dropped != wantDropped {
				t.Fatalf("bad records %d, dropped bytes %d; want none and %d", st.Bad, st.Dropped, wantDropped)
			}
		})
	}
}

// What a restart hands a fifo source (the start of a record whose rest is
// still in the FIFO) is handed on again by a reload that replaces the
// source before it has begun to read: here while it waits for the ring's
// writer lease, which another writer took in the gap. Before, the partial
// record was lost without a count, and its rest became a record ("f").
func TestReloadWhileWaitingForLeaseKeepsPartialRecord(t *testing.T) {
	r := newFIFORig(t, "")
	r.writeRead(t, []byte("before\nhal"))
	if f := readFrames(t, r.e, "f", 1); string(f[0].Data) != "before" {
		t.Fatalf("frame %q; want \"before\"", f[0].Data)
	}
	// Take the ring's writer lease while the source restarts.
	leased := make(chan *shm.Writer, 1)
	var hooked atomic.Bool
	testHookRunReturned = func(name string) {
		if name == "fifo" && hooked.CompareAndSwap(false, true) {
			w, err := shm.OpenWriter("f", r.e.sopts())
			if err != nil {
				t.Errorf("take the writer lease of ring f: %v", err)
			}
			leased <- w
		}
	}
	t.Cleanup(func() { testHookRunReturned = nil })
	if err := r.rt.RestartSource("fifo"); err != nil {
		t.Fatal(err)
	}
	lease := <-leased
	if lease == nil {
		t.FailNow()
	}
	defer lease.Close()
	testHookRunReturned = nil
	eventually(t, "the restarted source to wait for the lease", func() bool { return r.rt.sourceStat(t, "fifo").State == StateBackoff })
	r.write(r.config("type = 2\n"))
	if err := reloadWithin(t, r.rt); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new source to wait for the lease", func() bool { return r.rt.sourceStat(t, "fifo").State == StateBackoff })
	lease.Close()
	r.logb.waitFor(t, "source fifo: reading FIFO", 2)
	if _, err := r.w.Write([]byte("f\nafter\n")); err != nil {
		t.Fatal(err)
	}
	got := readFrames(t, r.e, "f", 3)
	for i, want := range []string{"before", "half", "after"} {
		if string(got[i].Data) != want {
			t.Fatalf("frame %d: %q; want %q (frames %q %q %q)", i, got[i].Data, want, got[0].Data, got[1].Data, got[2].Data)
		}
	}
	if st := r.rt.sourceStat(t, "fifo"); st.Bad != 0 || st.Dropped != 0 {
		t.Fatalf("bad records %d, dropped bytes %d; want none", st.Bad, st.Dropped)
	}
}
