package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
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
