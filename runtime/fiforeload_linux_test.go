package runtime

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
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
			e := newEnv(t)
			path, fifo := filepath.Join(t.TempDir(), "c.toml"), filepath.Join(e.dir, "in.fifo")
			cfg := func(typ int) string {
				return scenarioHead + ringTable("f", "") + fmt.Sprintf("[[sources]]\nname = \"fifo\"\nkind = \"fifo\"\nring = \"f\"\npath = %q\nremove_on_exit = %v\ntype = %d\n", fifo, roe, typ)
			}
			rt, logb, write := reloadFile(t, path, cfg(1))
			eventually(t, "fifo source running", func() bool { return rt.sourceStat(t, "fifo").State == StateRunning })
			w := openWriter(t, fifo)
			if _, err := w.Write([]byte("before\n")); err != nil {
				t.Fatal(err)
			}
			if f := readFrames(t, e, "f", 1); string(f[0].Data) != "before" || f[0].Type != 1 {
				t.Fatalf("frame %q type %d; want \"before\" type 1", f[0].Data, f[0].Type)
			}
			// Write while the old source has stopped and the new one has
			// not started.
			var gapErr atomic.Pointer[error]
			var hooked atomic.Bool
			testHookRunReturned = func(name string) {
				if name == "fifo" && hooked.CompareAndSwap(false, true) {
					_, err := w.Write([]byte("gap\n"))
					gapErr.Store(&err)
				}
			}
			t.Cleanup(func() { testHookRunReturned = nil })
			write(cfg(2))
			if err := reloadWithin(t, rt); err != nil {
				t.Fatal(err)
			}
			testHookRunReturned = nil
			logb.waitFor(t, "source fifo: reading FIFO", 2)
			if p := gapErr.Load(); p == nil {
				t.Fatal("the old source's run never returned")
			} else if *p != nil {
				t.Fatalf("write while the source was restarted: %v; want it to succeed", *p)
			}
			if _, err := w.Write([]byte("after\n")); err != nil {
				t.Fatalf("write after the reload, on the descriptor opened before it: %v", err)
			}
			got := readFrames(t, e, "f", 3)
			for i, want := range []string{"before", "gap", "after"} {
				wantType := uint32(2)
				if i == 0 {
					wantType = 1
				}
				if string(got[i].Data) != want || got[i].Type != wantType {
					t.Fatalf("frame %d: %q type %d; want %q type %d", i, got[i].Data, got[i].Type, want, wantType)
				}
			}
			if _, err := os.Lstat(fifo); err != nil {
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
			e := newEnv(t)
			path, fifo := filepath.Join(t.TempDir(), "c.toml"), filepath.Join(e.dir, "in.fifo")
			cfg := func(typ int) string {
				return scenarioHead + ringTable("f", "") + fmt.Sprintf("[[sources]]\nname = \"fifo\"\nkind = \"fifo\"\nring = \"f\"\npath = %q\nframing = %q\ntype = %d\n", fifo, fr, typ)
			}
			rec := func(s string) []byte {
				if fr == "lines" {
					return []byte(s + "\n")
				}
				return binary.LittleEndian.AppendUint32(nil, uint32(len(s))) // + s, by the caller
			}
			frame := func(s string) []byte {
				if fr == "lines" {
					return rec(s)
				}
				return append(rec(s), s...)
			}
			rt, logb, write := reloadFile(t, path, cfg(1))
			eventually(t, "fifo source running", func() bool { return rt.sourceStat(t, "fifo").State == StateRunning })
			w := openWriter(t, fifo)
			whole := frame("cut-by-the-reload")
			half := len(whole) / 2
			if _, err := w.Write(append(frame("before"), whole[:half]...)); err != nil {
				t.Fatal(err)
			}
			// Wait until the source has read it all (the pipe is empty), so
			// that the first half is in the old source's buffer.
			eventually(t, "the source reads the pipe", func() bool {
				n, err := unix.IoctlGetInt(int(w.Fd()), unix.TIOCINQ)
				return err == nil && n == 0
			})
			if f := readFrames(t, e, "f", 1); string(f[0].Data) != "before" {
				t.Fatalf("frame %q; want \"before\"", f[0].Data)
			}
			if c.how == "reload" {
				write(cfg(2))
				if err := reloadWithin(t, rt); err != nil {
					t.Fatal(err)
				}
			} else if err := rt.RestartSource("fifo"); err != nil {
				t.Fatal(err)
			}
			logb.waitFor(t, "source fifo: reading FIFO", 2)
			if _, err := w.Write(append(whole[half:], frame("after")...)); err != nil {
				t.Fatal(err)
			}
			got := readFrames(t, e, "f", 3)
			for i, want := range []string{"before", "cut-by-the-reload", "after"} {
				if string(got[i].Data) != want {
					t.Fatalf("frame %d: %q; want %q (frames %q %q %q)", i, got[i].Data, want, got[0].Data, got[1].Data, got[2].Data)
				}
			}
			if st := rt.sourceStat(t, "fifo"); st.Bad != 0 || st.Dropped != 0 {
				t.Fatalf("bad records %d, dropped bytes %d; want none", st.Bad, st.Dropped)
			}
		})
	}
}

// A reload that changes a fifo source's framing drops what the old source
// had read of a partial record (it is framed the old way), and counts and
// logs it.
func TestReloadFIFOFramingChangeDropsPartial(t *testing.T) {
	e := newEnv(t)
	path, fifo := filepath.Join(t.TempDir(), "c.toml"), filepath.Join(e.dir, "in.fifo")
	cfg := func(fr string) string {
		return scenarioHead + ringTable("f", "") + fmt.Sprintf("[[sources]]\nname = \"fifo\"\nkind = \"fifo\"\nring = \"f\"\npath = %q\nframing = %q\n", fifo, fr)
	}
	rt, logb, write := reloadFile(t, path, cfg("lines"))
	eventually(t, "fifo source running", func() bool { return rt.sourceStat(t, "fifo").State == StateRunning })
	w := openWriter(t, fifo)
	if _, err := w.Write([]byte("before\nhalf-a-line")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the source reads the pipe", func() bool {
		n, err := unix.IoctlGetInt(int(w.Fd()), unix.TIOCINQ)
		return err == nil && n == 0
	})
	readFrames(t, e, "f", 1)
	write(cfg("len32"))
	if err := reloadWithin(t, rt); err != nil {
		t.Fatal(err)
	}
	logb.waitFor(t, "source fifo: reading FIFO", 2)
	if _, err := w.Write(binary.LittleEndian.AppendUint32(nil, 5)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
	if got := readFrames(t, e, "f", 2); string(got[1].Data) != "after" {
		t.Fatalf("frame after the reload %q; want \"after\"", got[1].Data)
	}
	if st := rt.sourceStat(t, "fifo"); st.Dropped != uint64(len("half-a-line")) {
		t.Fatalf("dropped_bytes %d; want %d", st.Dropped, len("half-a-line"))
	}
	logb.waitFor(t, "dropped 11 bytes of a partial record", 1)
}

// `edgeipc ctl restart` of a fifo source holds a read end over the gap as
// a reload does: a writer's write while the old run has ended and the new
// one has not opened the FIFO succeeds and is read by the new run. Before,
// it failed with EPIPE (SIGPIPE kills a writer that does not handle it).
func TestRestartFIFOKeepsWriters(t *testing.T) {
	e := newEnv(t)
	path, fifo := filepath.Join(t.TempDir(), "c.toml"), filepath.Join(e.dir, "in.fifo")
	rt, logb, _ := reloadFile(t, path, scenarioHead+ringTable("f", "")+fmt.Sprintf("[[sources]]\nname = \"fifo\"\nkind = \"fifo\"\nring = \"f\"\npath = %q\n", fifo))
	eventually(t, "fifo source running", func() bool { return rt.sourceStat(t, "fifo").State == StateRunning })
	w := openWriter(t, fifo)
	var gapErr atomic.Pointer[error]
	var hooked atomic.Bool
	testHookRunReturned = func(name string) {
		if name == "fifo" && hooked.CompareAndSwap(false, true) {
			_, err := w.Write([]byte("gap\n"))
			gapErr.Store(&err)
		}
	}
	t.Cleanup(func() { testHookRunReturned = nil })
	if err := rt.RestartSource("fifo"); err != nil {
		t.Fatal(err)
	}
	testHookRunReturned = nil
	logb.waitFor(t, "source fifo: reading FIFO", 2)
	if p := gapErr.Load(); p == nil {
		t.Fatal("the old run never returned")
	} else if *p != nil {
		t.Fatalf("write while the source was restarted: %v; want it to succeed", *p)
	}
	if got := readFrames(t, e, "f", 1); string(got[0].Data) != "gap" {
		t.Fatalf("frame %q; want \"gap\"", got[0].Data)
	}
}

// What a stop left of a partial record is handed only to the run that
// replaces the stopped one at once: `edgeipc ctl stop`, then later
// `edgeipc ctl restart`, starts afresh, since the writers may have
// moved on. (With the stale bytes the first new record read "halfwhole".)
func TestRestartAfterStopDropsStalePartial(t *testing.T) {
	e := newEnv(t)
	path, fifo := filepath.Join(t.TempDir(), "c.toml"), filepath.Join(e.dir, "in.fifo")
	rt, logb, _ := reloadFile(t, path, scenarioHead+ringTable("f", "")+fmt.Sprintf("[[sources]]\nname = \"fifo\"\nkind = \"fifo\"\nring = \"f\"\npath = %q\n", fifo))
	eventually(t, "fifo source running", func() bool { return rt.sourceStat(t, "fifo").State == StateRunning })
	w := openWriter(t, fifo)
	if _, err := w.Write([]byte("before\nhalf")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the source reads the pipe", func() bool {
		n, err := unix.IoctlGetInt(int(w.Fd()), unix.TIOCINQ)
		return err == nil && n == 0
	})
	readFrames(t, e, "f", 1)
	if err := rt.StopSource("fifo"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := rt.RestartSource("fifo"); err != nil {
		t.Fatal(err)
	}
	logb.waitFor(t, "source fifo: reading FIFO", 2)
	w2 := openWriter(t, fifo)
	if _, err := w2.Write([]byte("whole\n")); err != nil {
		t.Fatal(err)
	}
	if got := readFrames(t, e, "f", 2); string(got[1].Data) != "whole" {
		t.Fatalf("first frame after stop and restart %q; want \"whole\"", got[1].Data)
	}
}
