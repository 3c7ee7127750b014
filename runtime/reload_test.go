//go:build linux

package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/shm"
)

// reloadWithin runs rt.Reload and fails the test if it has not answered
// within wait (a guard against a reload that hangs, not a speed check).
func reloadWithin(t *testing.T, rt *Runtime) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- rt.Reload() }()
	select {
	case err := <-done:
		return err
	case <-time.After(wait):
		t.Fatal("Reload did not answer")
		return nil
	}
}

// A config path replaced by something that is not a regular file (a
// symlink to a FIFO or a device, a directory, a dangling symlink) or by a
// file far too large is refused by a reload, at once and without reading
// it, and the running configuration stays; a symlink to a regular file is
// read. Before, a FIFO blocked the main loop in open(2) until something
// wrote it (reloads, the stats line and the shutdown with it), and a
// device such as /dev/zero was read until memory ran out.
func TestReloadConfigNotARegularFile(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		replace    func(t *testing.T, path string)
	}{
		{"symlink to a FIFO", "is a FIFO, not a regular file", func(t *testing.T, path string) {
			fifo := filepath.Join(t.TempDir(), "fifo")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			// If the reload blocks on the FIFO, a writer ends the wait (the
			// test has failed by then).
			t.Cleanup(func() {
				if fd, err := syscall.Open(fifo, syscall.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					syscall.Close(fd)
				}
			})
			symlink(t, fifo, path)
		}},
		{"symlink to /dev/zero", "is a device, not a regular file", func(t *testing.T, path string) {
			symlink(t, "/dev/zero", path)
		}},
		{"directory", "is a directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}},
		{"dangling symlink", "no such file or directory", func(t *testing.T, path string) {
			symlink(t, filepath.Join(t.TempDir(), "gone.toml"), path)
		}},
		{"too large", "larger than 4 MiB", func(t *testing.T, path string) {
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := f.Truncate(MaxConfigBytes + 1); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			newEnv(t)
			path := filepath.Join(t.TempDir(), "c.toml")
			rt, logb, _ := reloadFile(t, path, ringConfig(16, 64, "overwrite", ""))
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			tc.replace(t, path)
			err := reloadWithin(t, rt)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("reload: %v; want an error saying %q", err, tc.want)
			}
			logb.waitFor(t, "keeping the running configuration", 1)
			stillRuns(t, rt)
		})
	}
	t.Run("symlink to a regular file", func(t *testing.T) {
		newEnv(t)
		dir := t.TempDir()
		path := filepath.Join(dir, "c.toml")
		rt, _, _ := reloadFile(t, path, ringConfig(16, 64, "overwrite", ""))
		next := filepath.Join(dir, "next.toml")
		if err := os.WriteFile(next, []byte(ringConfig(32, 64, "overwrite", "")), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		symlink(t, next, path)
		if err := reloadWithin(t, rt); err != nil {
			t.Fatal(err)
		}
		if row, _ := ringRow(rt, "r"); row.Slots != 32 {
			t.Fatalf("ring r after reloading through a symlink: %+v", row)
		}
	})
}

// A reload refuses a config path that names something other than a
// regular file without opening it: opening has effects of its own on a
// FIFO (a writer waiting in open(2) is let through, and its writes then
// fail) and on some devices (a watchdog is armed, a serial line's DTR
// resets the board on it). Before, the reload opened the path and only
// then saw what it was. inotify reports every open of the FIFO.
func TestReloadDoesNotOpenANonRegularConfig(t *testing.T) {
	newEnv(t)
	path := filepath.Join(t.TempDir(), "c.toml")
	rt, _, _ := reloadFile(t, path, ringConfig(16, 64, "overwrite", ""))
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	in, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(in)
	if _, err := unix.InotifyAddWatch(in, fifo, unix.IN_OPEN); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	symlink(t, fifo, path)
	if err := reloadWithin(t, rt); err == nil || !strings.Contains(err.Error(), "is a FIFO, not a regular file") {
		t.Fatalf("reload: %v; want it refused", err)
	}
	buf := make([]byte, 4096)
	if n, err := unix.Read(in, buf); n > 0 {
		t.Fatalf("the reload opened the FIFO its config path names (%d bytes of inotify IN_OPEN events)", n)
	} else if err != unix.EAGAIN {
		t.Fatalf("reading inotify events: %v", err)
	}
	stillRuns(t, rt)
}

func symlink(t *testing.T, target, path string) {
	t.Helper()
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

// A control stop that finds a source a reload has just added stops it.
// Before, apply made new sources visible to the control plane before it
// started them: a stop arriving in between answered "not running", and
// the source started right after it.
func TestStopDuringReloadStart(t *testing.T) {
	newEnv(t)
	path := filepath.Join(t.TempDir(), "c.toml")
	rt, _, write := reloadFile(t, path, "[control]\nenabled = false\n[runtime]\nstats_interval = \"0s\"\n[rings.r]\nslots = 16\nslot_payload = 64\n")
	stopped := make(chan error, 1)
	testHookStarted = func() {
		testHookStarted = nil
		stopped <- rt.StopSource("gen")
	}
	t.Cleanup(func() { testHookStarted = nil })
	write(ringConfig(16, 64, "overwrite", ""))
	if err := reloadWithin(t, rt); err != nil {
		t.Fatal(err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("stop of the source the reload had just added: %v", err)
	}
	if st := rt.sourceStat(t, "gen"); st.State != StateStopped {
		t.Fatalf("source gen after a stop during the reload that added it: %+v", st)
	}
}

// A reload while a control stop of a source is under way (its child
// ignores SIGTERM for stop_timeout): a reload that leaves the source
// alone leaves it stopped once the stop is done; one that changes it
// waits for the stop, then starts the new child. Either way the stop
// succeeds and no child of the old run is left.
func TestReloadDuringStop(t *testing.T) {
	for _, change := range []bool{false, true} {
		t.Run(fmt.Sprintf("source changed %v", change), func(t *testing.T) {
			e := newEnv(t)
			pids := filepath.Join(e.dir, "pids")
			killPIDs(t, pids)
			stub := writeScript(t, e.dir, "stub.sh", fmt.Sprintf("trap '' TERM\necho $$ >> %s\nwhile :; do echo x; sleep 0.05; done\n", pids))
			text := func(arg string) string {
				return scenarioHead + ringTable("r", "") + fmt.Sprintf("[[sources]]\nname = \"stub\"\nkind = \"exec\"\nring = \"r\"\ncommand = [%q, %q]\nstop_timeout = \"2s\"\n", stub, arg)
			}
			rt, _, write := reloadFile(t, filepath.Join(t.TempDir(), "c.toml"), text("a"))
			eventually(t, "the child", func() bool { return len(readPIDs(pids)) == 1 })
			first := readPIDs(pids)[0]
			rt.mu.Lock()
			ss := rt.sources["stub"]
			rt.mu.Unlock()
			stopped := make(chan error, 1)
			go func() { stopped <- rt.StopSource("stub") }()
			eventually(t, "the stop to be under way", func() bool {
				ss.mu.Lock()
				defer ss.mu.Unlock()
				return ss.cancel == nil
			})
			if change {
				write(text("b"))
			}
			if err := reloadWithin(t, rt); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-stopped:
				if err != nil {
					t.Fatalf("StopSource: %v", err)
				}
			case <-time.After(wait):
				t.Fatal("StopSource did not return")
			}
			if pidAlive(first) {
				t.Fatalf("the stopped child %d still runs", first)
			}
			if !change {
				if st := rt.sourceStat(t, "stub"); st.State != StateStopped || len(readPIDs(pids)) != 1 {
					t.Fatalf("source after the stop and a reload that left it alone: %+v, children %v", st, readPIDs(pids))
				}
				return
			}
			eventually(t, "the new child", func() bool { return len(readPIDs(pids)) == 2 })
			eventually(t, "the new source to run", func() bool { return rt.sourceStat(t, "stub").State == StateRunning })
			if got := readPIDs(pids); !pidAlive(got[1]) || len(got) != 2 {
				t.Fatalf("children %v: want the first gone and the second running", got)
			}
		})
	}
}

// A reload that cannot create the last of the rings it adds (something
// is in the way) changes nothing: the rings it would have added first are
// not created, the ring it would have recreated keeps its segment, and the
// exec source on it keeps its child.
func TestReloadFailingHalfwayChangesNothing(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	killPIDs(t, pids)
	stub := writeScript(t, dir, "stub.sh", fmt.Sprintf("echo $$ >> %s\nwhile :; do echo x; sleep 0.05; done\n", pids))
	src := fmt.Sprintf("[[sources]]\nname = \"stub\"\nkind = \"exec\"\nring = \"r\"\ncommand = [%q]\n", stub)
	rt, _, write := reloadFile(t, filepath.Join(dir, "c.toml"), scenarioHead+ringTable("r", "")+src)
	eventually(t, "the child", func() bool { return len(readPIDs(pids)) == 1 })
	segIno := inode(shm.SegmentPath("r", e.sopts()))
	if err := os.Mkdir(shm.SegmentPath("zz", e.sopts()), 0o700); err != nil {
		t.Fatal(err)
	}
	write(scenarioHead + "[rings.r]\nslots = 32\nslot_payload = 64\n" + src + ringTable("aa", "") + ringTable("zz", ""))
	err := reloadWithin(t, rt)
	if err == nil || !strings.Contains(err.Error(), "ring zz") || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("reload with a directory in the way of ring zz: %v", err)
	}
	if _, err := os.Stat(shm.SegmentPath("aa", e.sopts())); !os.IsNotExist(err) {
		t.Fatalf("ring aa was created by the failed reload: %v", err)
	}
	if got := inode(shm.SegmentPath("r", e.sopts())); got != segIno {
		t.Fatal("ring r was recreated by the failed reload")
	}
	if rs := rt.Rings(); len(rs) != 1 || rs[0].Slots != 16 {
		t.Fatalf("rings after the failed reload: %+v", rs)
	}
	if got := readPIDs(pids); len(got) != 1 || !pidAlive(got[0]) {
		t.Fatalf("children %v: want the first, still running", got)
	}
}
