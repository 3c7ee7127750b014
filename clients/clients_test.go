package clients_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/edgeipc/edgeipc/internal/qemuwatch"
	"github.com/edgeipc/edgeipc/internal/sys"
	"github.com/edgeipc/edgeipc/internal/testenv"
	"github.com/edgeipc/edgeipc/shm"
)

// cNotOpen is edgeipc_strerror(EDGEIPC_EINVAL).
const cNotOpen = "invalid argument (or a reader, writer or ring that is not open)"

// childTimeout bounds every child process; it guards against hangs only.
const childTimeout = 60 * time.Second

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
	ringSeq   atomic.Int64
)

func TestMain(m *testing.M) {
	qemuwatch.Start()      // a qemu-user fork deadlock fails fast instead of hanging
	code := testenv.Run(m) // fails on leaked descriptors
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// cBinary compiles the C examples once and returns the path of prog.
func cBinary(t *testing.T, prog string) string {
	t.Helper()
	cc := testenv.Tool(t, "cc", "install gcc to test clients/c")
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "edgeipc-clients-")
		if buildErr != nil {
			return
		}
		for _, p := range []string{"consumer", "producer"} {
			cmd := exec.Command(cc, "-O2", "-Wall", "-Werror", "-std=c11", "-I", "c",
				"-o", filepath.Join(buildDir, p), filepath.Join("c", "examples", p+".c"))
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("%v: %v\n%s", cmd.Args, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatalf("building the C examples: %v", buildErr)
	}
	return filepath.Join(buildDir, prog)
}

// pythonScript returns the command that runs a Python example.
func pythonScript(t *testing.T, prog string) []string {
	t.Helper()
	py := testenv.Tool(t, "python3", "install python3 to test clients/python")
	abs, err := filepath.Abs(filepath.Join("python", "examples", prog+".py"))
	if err != nil {
		t.Fatal(err)
	}
	return []string{py, "-u", abs}
}

type impl struct {
	name string
	argv func(t *testing.T, prog string) []string
	env  []string
}

var impls = []impl{
	{name: "c", argv: func(t *testing.T, prog string) []string { return []string{cBinary(t, prog)} }},
	{name: "python", argv: pythonScript},
}

// newRing creates a uniquely named ring in a fresh segment directory.
func newRing(t *testing.T, cfg shm.Config) (*shm.Ring, string) {
	t.Helper()
	dir := t.TempDir()
	cfg.Segment.Dir = dir
	name := fmt.Sprintf("clients-%d-%d", os.Getpid(), ringSeq.Add(1))
	r, err := shm.Create(name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, dir
}

// payload is frame i of the test pattern shared with the C and Python
// producers.
func payload(i, maxPayload int) []byte {
	mod := min(maxPayload, 251)
	n := min(1+(i*37)%mod, maxPayload)
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(i*131 + j*7 + 1)
	}
	return b
}

func sum(b []byte) uint32 {
	h := fnv.New32a()
	h.Write(b)
	return h.Sum32()
}

type child struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	errb  *strings.Builder
	done  chan error
	// exited is closed when the process has exited.
	exited chan struct{}
}

func start(t *testing.T, dir string, extraEnv []string, argv ...string) *child {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), childTimeout)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(append(os.Environ(), "EDGEIPC_SHM_DIR="+dir), extraEnv...)
	cmd.WaitDelay = 5 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{t: t, cmd: cmd, stdin: stdin, lines: make(chan string, 1024), errb: &strings.Builder{}, done: make(chan error, 1), exited: make(chan struct{})}
	cmd.Stderr = &lockedWriter{b: c.errb}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %v: %v", argv, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		err := cmd.Wait()
		close(c.exited)
		c.done <- err
		cancel()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-c.done
		c.done <- nil
	})
	return c
}

type lockedWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (c *child) stderr() string {
	w := c.cmd.Stderr.(*lockedWriter)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// line returns the next stdout line or fails the test.
func (c *child) line() string {
	c.t.Helper()
	select {
	case l, ok := <-c.lines:
		if !ok {
			c.t.Fatalf("%s exited early; stderr:\n%s", c.cmd.Path, c.stderr())
		}
		return l
	case <-time.After(childTimeout):
		c.t.Fatalf("%s: no output for %v; stderr:\n%s", c.cmd.Path, childTimeout, c.stderr())
	}
	return ""
}

// wait waits for the child to exit and fails the test unless it exited 0
// without further output.
func (c *child) wait() {
	c.t.Helper()
	for l := range c.lines {
		c.t.Errorf("unexpected output: %q", l)
	}
	err := <-c.done
	c.done <- err
	if err != nil {
		c.t.Fatalf("%s: %v; stderr:\n%s", c.cmd.Path, err, c.stderr())
	}
}

type frameLine struct {
	seq, length, typ, flags, lost, sum uint32
}

func (c *child) frame() frameLine {
	c.t.Helper()
	l := c.line()
	var f frameLine
	if _, err := fmt.Sscanf(l, "frame seq=%d len=%d type=%d flags=%d lost=%d sum=%x",
		&f.seq, &f.length, &f.typ, &f.flags, &f.lost, &f.sum); err != nil {
		c.t.Fatalf("bad frame line %q: %v; stderr:\n%s", l, err, c.stderr())
	}
	return f
}

func (c *child) joined() (cursor uint32) {
	c.t.Helper()
	l := c.line()
	var idx string
	if _, err := fmt.Sscanf(l, "joined index=%s cursor=%d", &idx, &cursor); err != nil {
		c.t.Fatalf("bad joined line %q: %v; stderr:\n%s", l, err, c.stderr())
	}
	return cursor
}

func (c *child) expect(want string) {
	c.t.Helper()
	if l := c.line(); l != want {
		c.t.Fatalf("got %q, want %q; stderr:\n%s", l, want, c.stderr())
	}
}

func writeFrames(t *testing.T, w *shm.Writer, from, to, maxPayload int) []uint32 {
	t.Helper()
	var seqs []uint32
	for i := from; i < to; i++ {
		s, err := w.WriteFrame(uint32(1000+i), uint32(3*i), payload(i, maxPayload))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, s)
	}
	return seqs
}

func checkFrame(t *testing.T, got frameLine, seq uint32, i, maxPayload int, lost uint32) {
	t.Helper()
	p := payload(i, maxPayload)
	want := frameLine{seq: seq, length: uint32(len(p)), typ: uint32(1000 + i), flags: uint32(3 * i), lost: lost, sum: sum(p)}
	if got != want {
		t.Fatalf("frame %d: got %+v, want %+v", i, got, want)
	}
}

// TestGoWriterForeignReader: Go writes frames with known payloads (across
// the 2^32 sequence wrap); the C or Python consumer reads them from the
// oldest, half from history and half live, and prints what it saw.
func TestGoWriterForeignReader(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			argv := im.argv(t, "consumer")
			const n, maxPayload = 12, 256
			base := uint32(0xFFFFFFF8)
			r, dir := newRing(t, shm.Config{Slots: 16, SlotPayload: maxPayload, BaseSeq: base})
			w, err := r.NewWriter()
			if err != nil {
				t.Fatal(err)
			}
			seqs := writeFrames(t, w, 0, n/2, maxPayload)
			c := start(t, dir, nil, append(argv, "-o", "-n", fmt.Sprint(n), r.Name())...)
			if cur := c.joined(); cur != base {
				t.Fatalf("joined at cursor %d, want the oldest frame %d", cur, base)
			}
			seqs = append(seqs, writeFrames(t, w, n/2, n, maxPayload)...)
			for i := 0; i < n; i++ {
				if seqs[i] != base+uint32(i) {
					t.Fatalf("Go wrote seq %d for frame %d", seqs[i], i)
				}
				checkFrame(t, c.frame(), base+uint32(i), i, maxPayload, 0)
			}
			c.expect(fmt.Sprintf("done frames=%d lost=0", n))
			c.wait()
			if rs := r.Inspect().Readers; len(rs) != 0 {
				t.Errorf("reader entries left after the consumer left: %+v", rs)
			}
		})
	}
}

// TestForeignWriterGoReader: the C or Python producer writes many more
// frames than the ring has slots into a block-policy ring; a Go reader that
// joined first must see every one, in order, with the right contents.
func TestForeignWriterGoReader(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			argv := im.argv(t, "producer")
			n := 200
			if im.name == "python" {
				n = 100
			}
			const maxPayload = 300
			r, dir := newRing(t, shm.Config{Slots: 8, SlotPayload: maxPayload, Policy: shm.Block})
			mp := r.SlotPayload() // rounded up to a multiple of 64
			rd, err := r.NewReader(&shm.ReaderOptions{From: shm.Oldest})
			if err != nil {
				t.Fatal(err)
			}
			timeout := "30000" // C: milliseconds
			if im.name == "python" {
				timeout = "30" // Python: seconds
			}
			c := start(t, dir, nil, append(argv, "-n", fmt.Sprint(n), "-t", timeout, r.Name())...)
			// Stop waiting when the producer is gone (frames it left in the
			// ring are still returned) or after the hang guard.
			ctx, cancel := context.WithTimeout(context.Background(), childTimeout)
			defer cancel()
			go func() {
				select {
				case <-c.exited:
					cancel()
				case <-ctx.Done():
				}
			}()
			buf := make([]byte, mp)
			for i := 0; i < n; i++ {
				f, err := rd.ReadInto(ctx, buf)
				if err != nil {
					t.Fatalf("frame %d: %v; producer stderr:\n%s", i, err, c.stderr())
				}
				p := payload(i, mp)
				if f.Seq != uint32(i) || f.Lost != 0 || f.Type != uint32(1000+i) || f.Flags != uint32(3*i) || string(f.Data) != string(p) {
					t.Fatalf("frame %d: seq %d lost %d type %d flags %d len %d; want seq %d lost 0 type %d flags %d len %d (data equal: %v)",
						i, f.Seq, f.Lost, f.Type, f.Flags, len(f.Data), i, 1000+i, 3*i, len(p), string(f.Data) == string(p))
				}
				if now := shm.Now(); f.Time <= 0 || f.Time > now {
					t.Fatalf("frame %d: timestamp %d not a CLOCK_MONOTONIC time before now (%d)", i, f.Time, now)
				}
			}
			c.expect(fmt.Sprintf("wrote first=0 last=%d", n-1))
			c.wait()
			if st := rd.Stats(); st.Lost != 0 || st.Frames != uint64(n) {
				t.Fatalf("reader stats %+v, want %d frames and nothing lost", st, n)
			}
			info := r.Inspect()
			if info.Head != uint32(n) || info.WriterPID != 0 || info.WriterEpoch != 1 {
				t.Fatalf("after the producer exited: head %d writer pid %d epoch %d; want head %d, lease released, epoch 1",
					info.Head, info.WriterPID, info.WriterEpoch, n)
			}
			// The lease is free again: a Go writer can take it.
			w, err := r.NewWriter()
			if err != nil {
				t.Fatalf("Go writer after the producer left: %v", err)
			}
			w.Close()
		})
	}
}

// TestForeignReaderFutexWake: a consumer blocked in FUTEX_WAIT on the ring
// head (it waits without a timeout, so only a wake can finish it) wakes when
// Go commits one frame.
func TestForeignReaderFutexWake(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			argv := im.argv(t, "consumer")
			const maxPayload = 128
			r, dir := newRing(t, shm.Config{Slots: 4, SlotPayload: maxPayload})
			w, err := r.NewWriter()
			if err != nil {
				t.Fatal(err)
			}
			c := start(t, dir, nil, append(argv, "-n", "1", r.Name())...)
			if cur := c.joined(); cur != 0 {
				t.Fatalf("joined at %d, want 0", cur)
			}
			// Wait until the consumer has registered as a futex sleeper.
			deadline := time.Now().Add(childTimeout)
			for r.Inspect().Sleepers != 1 {
				select {
				case <-c.exited:
					t.Fatalf("consumer exited before a frame was written; stderr:\n%s", c.stderr())
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("consumer never went to sleep on the head futex; stderr:\n%s", c.stderr())
				}
				time.Sleep(5 * time.Millisecond)
			}
			// It set the asleep bit of its entry before raising the count.
			if fl := word(r, readersOff+rFlags); fl&flagAsleep == 0 {
				t.Fatalf("consumer counted in sleepers with entry flags %#x: asleep bit (2) not set", fl)
			}
			// Where the kernel reports it, the consumer must be in a futex wait.
			for time.Now().Before(deadline) {
				b, err := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", c.cmd.Process.Pid))
				ch := strings.TrimSpace(string(b))
				if err != nil || ch == "" || ch == "0" {
					t.Logf("wchan not available (%q, %v): relying on the sleeper count", ch, err)
					break
				}
				if strings.Contains(ch, "futex") {
					t.Logf("consumer sleeps in %s", ch)
					break
				}
				time.Sleep(5 * time.Millisecond) // between sleepers++ and the syscall
			}
			writeFrames(t, w, 0, 1, maxPayload)
			checkFrame(t, c.frame(), 0, 0, maxPayload, 0)
			c.expect("done frames=1 lost=0")
			c.wait()
			if s := r.Inspect().Sleepers; s != 0 {
				t.Fatalf("sleepers = %d after the consumer exited", s)
			}
			if fl := word(r, readersOff+rFlags); fl != 0 {
				t.Fatalf("entry flags %#x after the consumer exited", fl)
			}
		})
	}
}

// TestForeignReaderOverwriteLoss: Go laps a consumer that joined at the
// oldest frame; the consumer must report exactly the loss Go computes.
func TestForeignReaderOverwriteLoss(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			argv := im.argv(t, "consumer")
			const slots, maxPayload = 8, 128
			base := uint32(0xFFFFFFFC)
			r, dir := newRing(t, shm.Config{Slots: slots, SlotPayload: maxPayload, BaseSeq: base})
			w, err := r.NewWriter()
			if err != nil {
				t.Fatal(err)
			}
			writeFrames(t, w, 0, 3, maxPayload)
			// The Go writer opens the slot of its next frame as it commits
			// one (shm.Writer.openNext), so slots-1 frames stay readable.
			const readable = slots - 1
			c := start(t, dir, nil, append(argv, "-o", "-s", "-n", fmt.Sprint(readable), r.Name())...)
			cursor := c.joined()
			if cursor != base {
				t.Fatalf("joined at %d, want %d", cursor, base)
			}
			const total = 20
			writeFrames(t, w, 3, total, maxPayload)
			head := r.Head()
			wantLost := head - readable - cursor
			if wantLost != total-readable {
				t.Fatalf("test arithmetic: lost %d", wantLost)
			}
			if _, err := io.WriteString(c.stdin, "go\n"); err != nil {
				t.Fatal(err)
			}
			for k := 0; k < readable; k++ {
				i := int(wantLost) + k
				lost := uint32(0)
				if k == 0 {
					lost = wantLost
				}
				checkFrame(t, c.frame(), base+uint32(i), i, maxPayload, lost)
			}
			c.expect(fmt.Sprintf("done frames=%d lost=%d", readable, wantLost))
			c.wait()
		})
	}
}

// TestForeignReaderJoinsOldestAfterWrap: a C or Python reader that joins
// at the oldest frame of a ring the Go writer has lapped starts after the
// slot the writer has already opened for its next frame, and so reports
// no loss.
func TestForeignReaderJoinsOldestAfterWrap(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			const slots, maxPayload, total = 8, 128, 20
			r, dir := newRing(t, shm.Config{Slots: slots, SlotPayload: maxPayload})
			w, err := r.NewWriter()
			if err != nil {
				t.Fatal(err)
			}
			writeFrames(t, w, 0, total, maxPayload)
			c := start(t, dir, nil, append(im.argv(t, "consumer"), "-o", "-n", fmt.Sprint(slots-1), r.Name())...)
			if cursor := c.joined(); cursor != total-(slots-1) {
				t.Fatalf("joined at %d, want %d", cursor, total-(slots-1))
			}
			for i := total - (slots - 1); i < total; i++ {
				checkFrame(t, c.frame(), uint32(i), i, maxPayload, 0)
			}
			c.expect(fmt.Sprintf("done frames=%d lost=0", slots-1))
			c.wait()
		})
	}
}

// TestPythonUnregisteredPolling: without libatomic/libc (forced here) the
// Python reader must still read correctly, unregistered and polling.
func TestPythonUnregisteredPolling(t *testing.T) {
	argv := pythonScript(t, "consumer")
	const n, maxPayload = 6, 128
	r, dir := newRing(t, shm.Config{Slots: 4, SlotPayload: maxPayload})
	w, err := r.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	c := start(t, dir, []string{"EDGEIPC_PY_NO_NATIVE=1"}, append(argv, "-n", fmt.Sprint(n), r.Name())...)
	c.expect("joined index=None cursor=0 native=False")
	if rs := r.Inspect().Readers; len(rs) != 0 {
		t.Fatalf("unregistered reader took an entry: %+v", rs)
	}
	for i := 0; i < n; i++ {
		writeFrames(t, w, i, i+1, maxPayload)
		checkFrame(t, c.frame(), uint32(i), i, maxPayload, 0)
	}
	c.expect(fmt.Sprintf("done frames=%d lost=0", n))
	c.wait()
}

// TestPythonOldLibatomicOnARM: a libatomic older than GCC 7 has no
// atomic_thread_fence. The module stood a seq_cst fetch-add on a private
// word in for it everywhere; on ARM that orders only its own word (a later
// load may pass its store-release), so the reader's load->load barrier
// before the stamp re-check and the store->load orders of the sleep
// protocol were gone while NATIVE said True. Now only x86, where the
// locked instruction is a full barrier, takes the stand-in; elsewhere the
// module counts libatomic as missing and says why. The real libatomic is
// loaded with that one symbol withheld, and the CPU kind is set both ways.
func TestPythonOldLibatomicOnARM(t *testing.T) {
	py := testenv.Tool(t, "python3", "install python3 to test clients/python")
	pyDir, err := filepath.Abs("python")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-c", `import edgeipc_ring as er
real = er._load
class Old:
    def __init__(self, lib): self._lib = lib
    def __getattr__(self, name):
        if name == "atomic_thread_fence":
            raise AttributeError(name)
        return getattr(self._lib, name)
    def __getitem__(self, name): return self._lib[name]
er._load = lambda short, *a, **k: Old(real(short, *a, **k)) if short == "atomic" else real(short, *a, **k)
for tso in (True, False):
    er._TSO = tso
    n = er._Native()
    print("tso=%s ok=%s fence=%s why=%s" % (tso, n.ok, getattr(getattr(n, "fence", None), "__name__", None), n.why))
`)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+pyDir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || lines[0] != "tso=True ok=True fence=_rmw_fence why=" ||
		!strings.HasPrefix(lines[1], "tso=False ok=False fence=None why=libatomic has no atomic_thread_fence") ||
		!strings.Contains(lines[1], "GCC 7 or later") {
		t.Fatalf("got\n%s\nwant x86 on the read-modify-write stand-in, ARM without libatomic and told to install a newer one", out)
	}
}

// TestForeignWriterBusy: while a Go writer holds the lease, the C and
// Python producers must refuse to write and name the holder. Also where
// /proc/PID/stat cannot be read (hidepid, or no /proc in a container):
// docs/abi.md has the holder checked with kill(PID, 0) there (alive unless
// ESRCH), so a producer started with /proc hidden (a tmpfs over it in a
// mount namespace) must still find the Go writer alive, not take its lease
// and write beside it. That case needs unshare -m and mount (root) and is
// skipped without them.
func TestForeignWriterBusy(t *testing.T) {
	var hide []string // the command prefix that hides /proc
	hideErr := "no unshare"
	if unshare, err := exec.LookPath("unshare"); err == nil {
		hide = []string{unshare, "-m", "--propagation", "private", "sh", "-c", `mount -t tmpfs tmpfs /proc && exec "$@"`, "sh"}
		if out, err := exec.Command(hide[0], append(hide[1:], "test", "!", "-e", "/proc/self")...).CombinedOutput(); err != nil {
			hide, hideErr = nil, fmt.Sprintf("cannot hide /proc in a mount namespace (needs root): %v %s", err, out)
		}
	}
	for _, noProc := range []bool{false, true} {
		for _, im := range impls {
			name := im.name
			if noProc {
				name += "/without /proc"
			}
			t.Run(name, func(t *testing.T) {
				var prefix []string
				if noProc {
					if hide == nil {
						t.Skip(hideErr)
					}
					prefix = hide
				}
				argv := im.argv(t, "producer")
				r, dir := newRing(t, shm.Config{Slots: 4, SlotPayload: 64})
				w, err := r.NewWriter()
				if err != nil {
					t.Fatal(err)
				}
				defer w.Close()
				c := start(t, dir, nil, append(append(prefix, argv...), "-n", "1", r.Name())...)
				<-c.exited
				err = <-c.done
				c.done <- err
				want := fmt.Sprintf("pid %d", os.Getpid())
				if err == nil || !strings.Contains(c.stderr(), want) {
					t.Fatalf("producer exit %v, stderr %q; want a failure naming %q", err, c.stderr(), want)
				}
				if h := r.Head(); h != 0 {
					t.Fatalf("head moved to %d: the producer wrote beside the live Go writer", h)
				}
			})
		}
	}
}

// TestForeignOpenValidation: each header check of docs/abi.md, broken in a
// copy of a real ring, makes the C and Python consumers refuse the ring.
func TestForeignOpenValidation(t *testing.T) {
	type patch struct {
		name      string
		off       int // -1: truncate the file instead; -2: edits[name] makes it
		val       uint32
		c, python string // expected in stderr
	}
	put := func(b []byte, off int, v uint32) {
		b[off], b[off+1], b[off+2], b[off+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
	// A consistent header for slots one cache line larger than the limit
	// (64 MiB + 64), in a sparse file of the right size: only the
	// slot_size limit is wrong with it.
	hugeSlots := func(orig []byte) ([]byte, int64) {
		const slotSize, slots = 64<<20 + 128, 2
		b := append([]byte(nil), orig[:headerSize]...)
		put(b, 12, slotSize)
		put(b, 16, slots)
		put(b, 20, slotSize-64)
		total := uint64(headerSize + slots*slotSize)
		put(b, 48, uint32(total))
		put(b, 52, uint32(total>>32))
		return b, int64(total)
	}
	// A file that stays shorter than header_size (8192): a creator that
	// died before sizing it.
	short := func(orig []byte) ([]byte, int64) { return orig[:100], 0 }
	patches := []patch{
		{"magic", 0, 0x12345678, "not an edgeipc ring", "NotRingError"},
		{"semaphore", 0, 0x53504945, "not an edgeipc ring", "NotRingError"},
		{"abi_version", 4, 2, "incompatible ring ABI", "VersionError"},
		{"header_size", 8, 4096, "corrupt", "CorruptError"},
		{"slot_size", 12, 100, "corrupt", "CorruptError"},
		{"slot_count", 16, 3, "corrupt", "CorruptError"},
		{"max_payload", 20, 1, "corrupt", "CorruptError"},
		{"policy", 24, 2, "corrupt", "CorruptError"},
		{"max_readers", 28, 32, "incompatible ring ABI", "VersionError"},
		{"readers_off", 32, 512, "incompatible ring ABI", "VersionError"},
		{"reader_stride", 36, 128, "incompatible ring ABI", "VersionError"},
		{"ready", 44, 0, "never completed", "never completed"},
		{"total_size", 48, 12345, "corrupt", "CorruptError"},
		{"file_size", -1, 0, "corrupt", "CorruptError"},
		{"slot_size_limit", -2, 0, "corrupt", "CorruptError"},
		{"short_file", -2, 0, "never completed", "never completed"},
	}
	edits := map[string]func(orig []byte) (b []byte, size int64){"slot_size_limit": hugeSlots, "short_file": short}
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			argv := im.argv(t, "consumer")
			timeout := "5000" // C: milliseconds
			if im.name == "python" {
				timeout = "5" // Python: seconds
			}
			r, dir := newRing(t, shm.Config{Slots: 4, SlotPayload: 64})
			orig, err := os.ReadFile(r.Segment().Path())
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range patches {
				b := append([]byte(nil), orig...)
				var size int64
				switch {
				case p.off == -2:
					b, size = edits[p.name](orig)
				case p.off < 0:
					b = b[:len(b)-64]
				default:
					put(b, p.off, p.val)
				}
				name := "bad-" + p.name
				path := filepath.Join(dir, shm.FilePrefix+name)
				if err := os.WriteFile(path, b, 0o600); err != nil {
					t.Fatal(err)
				}
				if size > 0 {
					if err := os.Truncate(path, size); err != nil {
						t.Fatal(err)
					}
				}
				want := p.c
				if im.name == "python" {
					want = p.python
				}
				t.Run(p.name, func(t *testing.T) {
					t.Parallel()
					// A ring accepted by mistake would wait for a frame: -t
					// makes the consumer give up (with another message).
					c := start(t, dir, nil, append(argv, "-n", "1", "-t", timeout, name)...)
					<-c.exited
					err := <-c.done
					c.done <- err
					if err == nil || !strings.Contains(c.stderr(), want) {
						t.Errorf("exit %v, stderr %q; want a failure mentioning %q", err, c.stderr(), want)
					}
				})
			}
		})
	}
}

// Offsets of docs/abi.md the tests below read or write directly.
const (
	hLeaseOwner    = 64
	hLeaseStart    = 68
	hLeasePidNS    = 72
	hHead          = 128
	hSleepers      = 132
	hReaderJoins   = 140
	hSpaceValue    = 192
	hWriterWaiting = 200
	readersOff     = 256
	readerStride   = 64
	rOwner         = 0
	rStart         = 4
	rPidNS         = 8
	rCursor        = 12
	rFlags         = 24
	flagAsleep     = 2
	headerSize     = 8192
)

// word atomically loads the u32 at off in the ring's shared memory.
func word(r *shm.Ring, off int) uint32 {
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.Segment().Bytes()[off])))
}

// setWord atomically stores v at off in the ring's shared memory.
func setWord(r *shm.Ring, off int, v uint32) {
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&r.Segment().Bytes()[off])), v)
}

// deadPID returns the PID of a process that has exited and been reaped.
func deadPID(t *testing.T) uint32 {
	t.Helper()
	cmd := exec.Command("sh", "-c", "exit 0")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return uint32(cmd.Process.Pid)
}

// selfPidNS is the low 32 bits of the inode of our PID namespace, as the
// clients store it next to an owner word.
func selfPidNS(t *testing.T) uint32 {
	t.Helper()
	l, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		t.Fatal(err)
	}
	var ino uint64
	if _, err := fmt.Sscanf(l, "pid:[%d]", &ino); err != nil {
		t.Fatalf("/proc/self/ns/pid = %q: %v", l, err)
	}
	return uint32(ino)
}

// plantDeadReader makes reader entry i look held by a dead process at
// cursor, asleep on the head futex (flags bit 1) and counted in sleepers.
func plantDeadReader(t *testing.T, r *shm.Ring, i int, cursor uint32) {
	t.Helper()
	e := readersOff + i*readerStride
	setWord(r, e+rStart, 12345)
	setWord(r, e+rPidNS, selfPidNS(t))
	setWord(r, e+rCursor, cursor)
	setWord(r, e+rFlags, flagAsleep)
	setWord(r, e+rOwner, deadPID(t))
	setWord(r, hSleepers, word(r, hSleepers)+1)
}

// until polls cond every 2 ms until it holds; it fails the test if the child
// exits first or nothing happens within childTimeout.
func (c *child) until(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(childTimeout)
	for !cond() {
		select {
		case <-c.exited:
			if cond() {
				return
			}
			c.t.Fatalf("%s exited before %s; stderr:\n%s", c.cmd.Path, what, c.stderr())
		default:
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no %s within %v; stderr:\n%s", what, childTimeout, c.stderr())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// producerTimeout is the producer's -t for a wait it must survive.
func producerTimeout(im impl) string {
	if im.name == "python" {
		return "30" // seconds
	}
	return "30000" // milliseconds
}

// readFrom reads the next frame with the Go reader and checks it is frame i
// of the shared test pattern with sequence seq and nothing lost.
func readFrom(t *testing.T, c *child, rd *shm.Reader, seq uint32, i, maxPayload int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), childTimeout)
	defer cancel()
	buf := make([]byte, maxPayload)
	f, err := rd.ReadInto(ctx, buf)
	if err != nil {
		t.Fatalf("reading frame %d: %v; child stderr:\n%s", seq, err, c.stderr())
	}
	p := payload(i, maxPayload)
	if f.Seq != seq || f.Lost != 0 || f.Type != uint32(1000+i) || f.Flags != uint32(3*i) || string(f.Data) != string(p) {
		t.Fatalf("got seq %d lost %d type %d flags %d len %d (pattern %v); want frame %d of the pattern as seq %d, nothing lost",
			f.Seq, f.Lost, f.Type, f.Flags, len(f.Data), string(f.Data) == string(p), i, seq)
	}
}

// TestForeignReaderCountsJoin: a C or Python reader adds 1 to reader_joins
// (offset 140) after publishing its entry, and leaving does not undo it.
func TestForeignReaderCountsJoin(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			argv := im.argv(t, "consumer")
			const maxPayload = 128
			r, dir := newRing(t, shm.Config{Slots: 4, SlotPayload: maxPayload})
			w, err := r.NewWriter()
			if err != nil {
				t.Fatal(err)
			}
			setWord(r, hReaderJoins, 41) // any value: the count wraps
			c := start(t, dir, nil, append(argv, "-s", "-n", "1", r.Name())...)
			c.joined()
			if j := word(r, hReaderJoins); j != 42 {
				t.Fatalf("reader_joins = %d after the consumer joined, want 42", j)
			}
			if _, err := io.WriteString(c.stdin, "go\n"); err != nil {
				t.Fatal(err)
			}
			writeFrames(t, w, 0, 1, maxPayload)
			checkFrame(t, c.frame(), 0, 0, maxPayload, 0)
			c.expect("done frames=1 lost=0")
			c.wait()
			if j := word(r, hReaderJoins); j != 42 {
				t.Fatalf("reader_joins = %d after the consumer left, want 42", j)
			}
		})
	}
}

// TestForeignWriterPublishesOrphanFrame: the previous writer died between
// the stamp and the head store of frame 3 (simulated by writing the slot
// and a dead lease holder into the segment). A Go reader has already taken
// frame 3 by its stamp. The C or Python writer that takes the lease must
// publish frame 3 (head = 4) and write its own frames as 4 and 5, not
// reuse sequence 3 for a different frame.
func TestForeignWriterPublishesOrphanFrame(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			argv := im.argv(t, "producer")
			r, dir := newRing(t, shm.Config{Slots: 8, SlotPayload: 128})
			mp := r.SlotPayload()
			w, err := r.NewWriter()
			if err != nil {
				t.Fatal(err)
			}
			writeFrames(t, w, 0, 3, mp)
			w.Close()
			rd, err := r.NewReader(nil) // at head: 3
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			const s = 3
			mem := r.Segment().Bytes()
			off := headerSize + (s&7)*r.Inspect().SlotSize
			orphan := []byte("committed, never published")
			copy(mem[off+64:], orphan)
			setWord(r, off+4, uint32(len(orphan)))
			setWord(r, off+8, 777) // type
			setWord(r, off+12, 0)  // flags
			now := uint64(shm.Now())
			setWord(r, off+16, uint32(now))
			setWord(r, off+20, uint32(now>>32))
			setWord(r, off+24, s) // seq
			setWord(r, off, s<<1) // stamp: committed
			setWord(r, hLeaseStart, 12345)
			setWord(r, hLeasePidNS, selfPidNS(t))
			setWord(r, hLeaseOwner, deadPID(t))
			if h := r.Head(); h != s {
				t.Fatalf("head %d, want %d", h, s)
			}
			buf := make([]byte, mp)
			f, err := rd.TryReadInto(buf)
			if err != nil || f.Seq != s || f.Type != 777 || string(f.Data) != string(orphan) {
				t.Fatalf("Go reader did not take frame %d by its stamp: %+v, %v", s, f, err)
			}
			c := start(t, dir, nil, append(argv, "-n", "2", r.Name())...)
			c.expect(fmt.Sprintf("wrote first=%d last=%d", s+1, s+2))
			c.wait()
			readFrom(t, c, rd, s+1, 0, mp)
			readFrom(t, c, rd, s+2, 1, mp)
			info := r.Inspect()
			if info.Head != s+3 || info.WriterPID != 0 || info.WriterEpoch != 2 {
				t.Fatalf("head %d writer %d epoch %d; want head %d, lease released, epoch 2", info.Head, info.WriterPID, info.WriterEpoch, s+3)
			}
		})
	}
}

// TestForeignBlockWriterSeesJoin: a block-policy C or Python writer writes
// 10 frames into an 8-slot ring with no reader, so its cached space check
// says frames up to 15 fit; it pauses, a Go reader joins at the oldest
// frame (2), and the writer resumes. It must notice the join (reader_joins)
// and wait for the reader instead of overwriting frames 2..7.
func TestForeignBlockWriterSeesJoin(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			argv := im.argv(t, "producer")
			const slots, n, pause = 8, 20, 10
			r, dir := newRing(t, shm.Config{Slots: slots, SlotPayload: 128, Policy: shm.Block})
			mp := r.SlotPayload()
			c := start(t, dir, nil, append(argv, "-n", fmt.Sprint(n), "-p", fmt.Sprint(pause), "-t", producerTimeout(im), r.Name())...)
			c.expect(fmt.Sprintf("paused next=%d", pause))
			rd, err := r.NewReader(&shm.ReaderOptions{From: shm.Oldest})
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			first := uint32(pause - slots)
			if cur := rd.Cursor(); cur != first {
				t.Fatalf("Go reader joined at %d, want %d", cur, first)
			}
			if _, err := io.WriteString(c.stdin, "go\n"); err != nil {
				t.Fatal(err)
			}
			c.until("block or write", func() bool { return word(r, hWriterWaiting) == 1 || r.Head() != pause })
			if h := r.Head(); h != pause {
				t.Fatalf("the writer went on to head %d over frames the reader that joined at %d holds: it did not rescan after reader_joins changed", h, first)
			}
			for i := int(first); i < n; i++ {
				readFrom(t, c, rd, uint32(i), i, mp)
			}
			c.expect(fmt.Sprintf("wrote first=0 last=%d", n-1))
			c.wait()
		})
	}
}

// TestForeignBlockWriterScansFirst: a Go block-policy writer fills the ring
// for a Go reader that has read nothing and leaves; a new C or Python
// writer must scan the reader table before its first frame and wait,
// rather than overwrite frame 0. And it must wait just the same when the
// reader's cursor is more than a ring behind (a reader whose join it saw
// late), rather than take it for stale and overwrite its frames for as
// long as it stays ahead.
func TestForeignBlockWriterScansFirst(t *testing.T) {
	const slots, n = 8, 3
	const cursor0 = 256 + 12 // reader entry 0's cursor
	for _, behind := range []bool{false, true} {
		for _, im := range impls {
			name := im.name
			if behind {
				name += "/more than a ring behind"
			}
			t.Run(name, func(t *testing.T) {
				argv := im.argv(t, "producer")
				r, dir := newRing(t, shm.Config{Slots: slots, SlotPayload: 128, Policy: shm.Block})
				mp := r.SlotPayload()
				rd, err := r.NewReader(&shm.ReaderOptions{From: shm.Oldest}) // entry 0, cursor 0
				if err != nil {
					t.Fatal(err)
				}
				defer rd.Close()
				w, err := r.NewWriter()
				if err != nil {
					t.Fatal(err)
				}
				writeFrames(t, w, 0, slots, mp)
				w.Close()
				if behind {
					setWord(r, cursor0, ^uint32(0)-3) // 2^32-4: 12 behind head 8
				}
				c := start(t, dir, nil, append(argv, "-n", fmt.Sprint(n), "-t", producerTimeout(im), r.Name())...)
				c.until("block or write", func() bool { return word(r, hWriterWaiting) == 1 || r.Head() != slots })
				if h := r.Head(); h != slots {
					t.Fatalf("the new writer went on to head %d over frames the reader holds (its cursor: %d)", h, int32(word(r, cursor0)))
				}
				setWord(r, cursor0, 0) // where the reader really is
				for i := 0; i < slots; i++ {
					readFrom(t, c, rd, uint32(i), i, mp)
				}
				for i := 0; i < n; i++ {
					readFrom(t, c, rd, uint32(slots+i), i, mp)
				}
				c.expect(fmt.Sprintf("wrote first=%d last=%d", slots, slots+n-1))
				c.wait()
			})
		}
	}
}

// TestForeignReaderTakesBackDeadSleeper: a C or Python reader that takes
// over the entry of a reader that died asleep takes back its sleeper count.
func TestForeignReaderTakesBackDeadSleeper(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			argv := im.argv(t, "consumer")
			r, dir := newRing(t, shm.Config{Slots: 4, SlotPayload: 64})
			plantDeadReader(t, r, 0, 0)
			c := start(t, dir, nil, append(argv, "-s", "-n", "1", r.Name())...)
			c.joined()
			e := readersOff + rOwner
			if o := word(r, e); o != uint32(c.cmd.Process.Pid) {
				t.Fatalf("entry 0 owner %d, want the consumer %d", o, c.cmd.Process.Pid)
			}
			if s, fl := word(r, hSleepers), word(r, readersOff+rFlags); s != 0 || fl != 0 {
				t.Fatalf("after taking over a dead sleeper's entry: sleepers %d flags %d, want 0 and 0", s, fl)
			}
		})
	}
}

// TestForeignWriterEvictsDeadSleeper: a block-policy C or Python writer held
// up by a dead reader (asleep when it died) evicts it, takes back its
// sleeper count, and goes on; also when space_value holds a huge count
// (shared memory: any process may store one), whose units bring no space
// and never let the writer sleep.
func TestForeignWriterEvictsDeadSleeper(t *testing.T) {
	for _, garbage := range []bool{false, true} {
		for _, im := range impls {
			name := im.name
			if garbage {
				name += "/garbage space_value"
			}
			t.Run(name, func(t *testing.T) {
				argv := im.argv(t, "producer")
				const slots, n = 4, 10
				r, dir := newRing(t, shm.Config{Slots: slots, SlotPayload: 64, Policy: shm.Block})
				plantDeadReader(t, r, 0, 0)
				if garbage {
					setWord(r, hSpaceValue, 1<<31-1)
				}
				c := start(t, dir, nil, append(argv, "-n", fmt.Sprint(n), "-t", producerTimeout(im), r.Name())...)
				c.expect(fmt.Sprintf("wrote first=0 last=%d", n-1))
				c.wait()
				if s, o := word(r, hSleepers), word(r, readersOff+rOwner); s != 0 || o != 0 {
					t.Fatalf("after evicting a dead sleeper: sleepers %d, entry owner %d; want 0 and 0", s, o)
				}
			})
		}
	}
}

// TestForeignWriterTakesBackKilledSleeper: a C or Python consumer is
// SIGKILLed while asleep on the head futex, leaving its count in sleepers
// and its entry's asleep bit set. An overwrite-policy C or Python writer
// (which never evicts readers for space) then writes 100 frames: its
// FUTEX_WAKEs reach nobody, and after 64 of them in a row it must take the
// dead reader's count back (and free its entry), as the Go writer does.
// Without that, sleepers stays 1 and the writer makes a futex system call
// on every commit for as long as it runs. The same check resets a count
// above 64 (garbage: more sleepers than entries) that no reader holds.
func TestForeignWriterTakesBackKilledSleeper(t *testing.T) {
	const n = 100
	for _, garbage := range []bool{false, true} {
		for _, im := range impls {
			name := im.name
			if garbage {
				name += "/garbage count"
			}
			t.Run(name, func(t *testing.T) {
				producer := im.argv(t, "producer")
				r, dir := newRing(t, shm.Config{Slots: 4, SlotPayload: 128})
				e := readersOff // the consumer's entry: the table was empty
				if garbage {
					setWord(r, hSleepers, ^uint32(0))
				} else {
					c := start(t, dir, nil, append(im.argv(t, "consumer"), "-n", "1", r.Name())...)
					if cur := c.joined(); cur != 0 {
						t.Fatalf("joined at %d, want 0", cur)
					}
					c.until("the consumer asleep on the head futex", func() bool {
						return word(r, hSleepers) == 1 && word(r, e+rFlags)&flagAsleep != 0
					})
					// Kill it inside FUTEX_WAIT where the kernel shows where
					// it sleeps; the count and the asleep bit are what matter.
					pid := c.cmd.Process.Pid
					for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
						b, err := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", pid))
						ch := strings.TrimSpace(string(b))
						if err != nil || ch == "" || ch == "0" || strings.Contains(ch, "futex") {
							break
						}
					}
					if err := c.cmd.Process.Kill(); err != nil {
						t.Fatal(err)
					}
					<-c.exited
					if s, fl, o := word(r, hSleepers), word(r, e+rFlags), word(r, e+rOwner); s != 1 || fl&flagAsleep == 0 || o != uint32(pid) {
						t.Fatalf("after SIGKILL: sleepers %d, entry flags %#x, owner %d; want 1, asleep bit, %d", s, fl, o, pid)
					}
				}
				p := start(t, dir, nil, append(producer, "-n", fmt.Sprint(n), r.Name())...)
				p.expect(fmt.Sprintf("wrote first=0 last=%d", n-1))
				p.wait()
				if s, fl, o := word(r, hSleepers), word(r, e+rFlags), word(r, e+rOwner); s != 0 || fl&flagAsleep != 0 || o != 0 {
					t.Fatalf("after %d commits whose wakes reached nobody: sleepers %d, entry flags %#x, owner %d; "+
						"want the stale count taken back and a dead sleeper's entry freed (0, no asleep bit, 0)", n, s, fl, o)
				}
			})
		}
	}
}

// TestForeignOpenWaitsForCreator: the creator makes the file empty, then
// sizes and fills it. A C or Python consumer that opens it while it is
// still empty waits for it instead of refusing it.
func TestForeignOpenWaitsForCreator(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			argv := im.argv(t, "consumer")
			const maxPayload = 64
			src, _ := newRing(t, shm.Config{Slots: 4, SlotPayload: maxPayload})
			img := append([]byte(nil), src.Segment().Bytes()...)
			dir := t.TempDir()
			path := filepath.Join(dir, shm.FilePrefix+"growing")
			f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			c := start(t, dir, nil, append(argv, "-n", "1", "growing")...)
			// Wait until the consumer has the empty file open.
			fi, err := f.Stat()
			if err != nil {
				t.Fatal(err)
			}
			c.until("the consumer opening the file", func() bool {
				fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", c.cmd.Process.Pid))
				for _, fd := range fds {
					if st, err := os.Stat(fd); err == nil && os.SameFile(st, fi) {
						return true
					}
				}
				return false
			})
			// Size it, fill it with ready = 0, then set ready, as a creator does.
			ready := img[44:48]
			if err := f.Truncate(int64(len(img))); err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(img[48:], 48); err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(img[:44], 0); err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(ready, 44); err != nil {
				t.Fatal(err)
			}
			if cur := c.joined(); cur != 0 {
				t.Fatalf("joined at %d, want 0", cur)
			}
			r, err := shm.Open("growing", &shm.SegmentOptions{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			w, err := r.NewWriter()
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			writeFrames(t, w, 0, 1, maxPayload)
			checkFrame(t, c.frame(), 0, 0, maxPayload, 0)
			c.expect("done frames=1 lost=0")
			c.wait()
		})
	}
}

// publishSilently writes frame i of the test pattern as sequence seq into
// its slot and stores head = seq + 1 without FUTEX_WAKE, as a writer that
// skips step 6 of docs/abi.md would.
func publishSilently(r *shm.Ring, seq uint32, i int) {
	mem := r.Segment().Bytes()
	info := r.Inspect()
	off := headerSize + int(seq&uint32(info.Slots-1))*info.SlotSize
	p := payload(i, info.SlotPayload)
	setWord(r, off, seq<<1|1)
	copy(mem[off+64:], p)
	setWord(r, off+4, uint32(len(p)))
	setWord(r, off+8, uint32(1000+i))
	setWord(r, off+12, uint32(3*i))
	now := uint64(shm.Now())
	setWord(r, off+16, uint32(now))
	setWord(r, off+20, uint32(now>>32))
	setWord(r, off+24, seq)
	setWord(r, off, seq<<1)
	setWord(r, hHead, seq+1)
}

// TestForeignReaderSleepIsBounded: a consumer that waits without a timeout
// sleeps in bounded futex waits (here bounded to 200 ms with -m), so a
// frame published without a wake-up reaches it late instead of never. Its
// count is taken from under it, as a writer's repair can (docs/abi.md,
// Sleeping): its own subtract must then leave sleepers at 0. A plain
// subtract left 2^32-1, which the next sleeper's add made 0, so that every
// later sleep lasted its bound.
func TestForeignReaderSleepIsBounded(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			bound := "200" // C: milliseconds
			if im.name == "python" {
				bound = "0.2" // Python: seconds
			}
			r, dir := newRing(t, shm.Config{Slots: 4, SlotPayload: 128})
			c := start(t, dir, nil, append(im.argv(t, "consumer"), "-n", "1", "-m", bound, r.Name())...)
			if cur := c.joined(); cur != 0 {
				t.Fatalf("joined at %d, want 0", cur)
			}
			c.until("the consumer counted in sleepers", func() bool { return word(r, hSleepers) == 1 })
			time.Sleep(50 * time.Millisecond) // between sleepers++ and the syscall
			setWord(r, hSleepers, 0)          // taken by a repair
			publishSilently(r, 0, 0)
			checkFrame(t, c.frame(), 0, 0, r.SlotPayload(), 0)
			c.expect("done frames=1 lost=0")
			c.wait()
			if n := word(r, hSleepers); n != 0 {
				t.Errorf("sleepers %d after the consumer woke, want 0", n)
			}
		})
	}
}

// TestForeignWriterWakesAfterSilentPublish: a writer killed between the head
// store of a commit and its wake (steps 5 and 6 of Writing in docs/abi.md)
// leaves its frame published and the readers asleep on the head asleep. A
// C or Python writer that takes the lease wakes them. The sleeper here is a
// bare FUTEX_WAIT on the head with no timeout, counted in sleepers (the
// clients' own readers bound their sleeps to 10 s), and the producer pauses
// before its first frame, so only its lease take can wake it.
func TestForeignWriterWakesAfterSilentPublish(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			argv := im.argv(t, "producer")
			r, dir := newRing(t, shm.Config{Slots: 4, SlotPayload: 128})
			dead := deadPID(t) // its SIGCHLD before the sleep: a signal would end it
			head := (*uint32)(unsafe.Pointer(&r.Segment().Bytes()[hHead]))
			setWord(r, hSleepers, 1)
			defer setWord(r, hSleepers, 0)
			woke := make(chan error, 1)
			go func() { woke <- sys.FutexWait(head, 0, 0) }()
			time.Sleep(50 * time.Millisecond) // into the syscall
			// The dead writer: it held the lease and published frame 0
			// without its wake.
			setWord(r, hLeaseStart, 12345)
			setWord(r, hLeasePidNS, selfPidNS(t))
			setWord(r, hLeaseOwner, dead)
			publishSilently(r, 0, 0)
			p := start(t, dir, nil, append(argv, "-n", "1", "-p", "0", r.Name())...)
			p.expect("paused next=1")
			select {
			case err := <-woke:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(childTimeout):
				t.Fatal("a writer that took the lease of one that died before its wake did not wake the sleeper")
			}
			if _, err := io.WriteString(p.stdin, "go\n"); err != nil {
				t.Fatal(err)
			}
			p.expect("wrote first=1 last=1")
			p.wait()
		})
	}
}

// voluntarySwitches reads voluntary_ctxt_switches of process pid: each
// FUTEX_WAIT that sleeps, or returns from an expired timeout, counts one.
func voluntarySwitches(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "voluntary_ctxt_switches:"); ok {
			var n int
			if _, err := fmt.Sscan(v, &n); err != nil {
				t.Fatalf("%q: %v", l, err)
			}
			return n
		}
	}
	t.Fatalf("no voluntary_ctxt_switches in /proc/%d/status", pid)
	return 0
}

// run32 is the command that runs the 32-bit x86 program bin: bin itself,
// or, on a kernel built without IA32 emulation (exec fails with "exec
// format error", as in some VMs), bin under qemu-i386, which hands the
// program's system calls to the kernel as that kernel would take them from
// a 32-bit process (its timespec is read as two 32-bit longs).
func run32(t *testing.T, bin string) []string {
	t.Helper()
	err := exec.Command(bin, "-h").Run() // usage: exits 2
	if !errors.Is(err, syscall.ENOEXEC) {
		return []string{bin}
	}
	return []string{testenv.Tool(t, "qemu-i386-static", "this kernel cannot run 32-bit x86 programs (no IA32 emulation): install qemu-user-static"), "-cpu", "max", bin}
}

// TestCReader32BitSleeps: the C consumer built for a 32-bit ABI (size_t
// of 32 bits), also with a 64-bit time_t (-D_TIME_BITS=64, as musl and
// newer 32-bit ARM distributions have it), sleeps in futex waits of the
// length it asked for: 100 ms with -m 100. With struct timespec handed to
// SYS_futex the kernel read tv_sec's high word as tv_nsec, every wait
// shorter than a second returned at once, and the reader polled thousands
// of times a second. Needs a compiler that builds -m32 (gcc-multilib on
// x86-64, which make test requires there); skipped where there is none.
func TestCReader32BitSleeps(t *testing.T) {
	cc := testenv.Tool(t, "cc", "install gcc to test clients/c")
	for _, v := range []struct{ name, flags string }{
		{"m32", "-m32"},
		{"m32-time64", "-m32 -D_TIME_BITS=64 -D_FILE_OFFSET_BITS=64"},
	} {
		t.Run(v.name, func(t *testing.T) {
			bin := filepath.Join(t.TempDir(), "consumer")
			args := append(strings.Fields(v.flags), "-O2", "-Wall", "-Werror", "-std=c11", "-I", "c",
				"-o", bin, filepath.Join("c", "examples", "consumer.c"))
			out, err := exec.Command(cc, args...).CombinedOutput()
			testenv.CanBuild32(t, cc, err, out)
			r, dir := newRing(t, shm.Config{Slots: 4, SlotPayload: 64})
			c := start(t, dir, nil, append(run32(t, bin), "-n", "1", "-m", "100", r.Name())...)
			if cur := c.joined(); cur != 0 {
				t.Fatalf("joined at %d, want 0", cur)
			}
			c.until("the consumer counted in sleepers", func() bool { return word(r, hSleepers) == 1 })
			pid := c.cmd.Process.Pid
			before := voluntarySwitches(t, pid)
			time.Sleep(time.Second)
			// About 10 sleeps of 100 ms; allow for slow machines, but not
			// for a wait that returns at once (thousands).
			if n := voluntarySwitches(t, pid) - before; n > 100 {
				t.Fatalf("%d futex waits in a second with -m 100, want about 10: its sleeps do not sleep", n)
			}
			publishSilently(r, 0, 0)
			checkFrame(t, c.frame(), 0, 0, r.SlotPayload(), 0)
			c.expect("done frames=1 lost=0")
			c.wait()
		})
	}
}

// TestForeignOpenRefusesSemaphore: a named semaphore (edgeipc.<name>, 4096
// bytes, magic "EIPS") shares the rings' namespace. The C and Python
// consumers refuse it at once as not a ring (docs/abi.md: check magic
// first), instead of waiting a second for the "creator" to size it and
// then telling the user to remove the segment, a live semaphore.
func TestForeignOpenRefusesSemaphore(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			argv := im.argv(t, "consumer")
			dir := t.TempDir()
			name := fmt.Sprintf("clients-sem-%d-%d", os.Getpid(), ringSeq.Add(1))
			s, err := shm.CreateSemaphore(name, 0, &shm.SegmentOptions{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			timeout := "5000" // C: milliseconds; a ring accepted by mistake gives up
			if im.name == "python" {
				timeout = "5" // Python: seconds
			}
			c := start(t, dir, nil, append(argv, "-n", "1", "-t", timeout, name)...)
			<-c.exited
			err = <-c.done
			c.done <- err
			want := "not an edgeipc ring"
			if im.name == "python" {
				want = "NotRingError: segment is a semaphore"
			}
			if msg := c.stderr(); err == nil || !strings.Contains(msg, want) || strings.Contains(msg, "remove") {
				t.Fatalf("exit %v, stderr %q; want a failure mentioning %q (and no advice to remove it)", err, msg, want)
			}
		})
	}
}

// TestForeignReaderOddFileSize: total_size may be less than the file size
// (docs/abi.md: total_size <= file size), and a file can end on any byte.
// The C and Python consumers open a ring whose file is one byte longer
// than the ring and read from it; the Python module used to fail with a
// TypeError from memoryview.cast.
func TestForeignReaderOddFileSize(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			argv := im.argv(t, "consumer")
			const maxPayload = 64
			r, dir := newRing(t, shm.Config{Slots: 4, SlotPayload: maxPayload})
			path := r.Segment().Path()
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, fi.Size()+1); err != nil {
				t.Fatal(err)
			}
			w, err := r.NewWriter()
			if err != nil {
				t.Fatal(err)
			}
			c := start(t, dir, nil, append(argv, "-n", "1", r.Name())...)
			if cur := c.joined(); cur != 0 {
				t.Fatalf("joined at %d, want 0", cur)
			}
			writeFrames(t, w, 0, 1, maxPayload)
			checkFrame(t, c.frame(), 0, 0, maxPayload, 0)
			c.expect("done frames=1 lost=0")
			c.wait()
		})
	}
}

// TestForeignReaderHostileMemory: shared memory another process rewrote
// (docs/abi.md: nothing in it is trusted). A C or Python consumer that
// waits with a timeout must neither return a frame that is not one nor
// wait past its timeout: a head far ahead of every frame, a head behind
// its cursor, a slot whose stamp says frame c but whose seq field says
// another, a committed slot whose length exceeds max_payload, garbage
// sleeper counts.
func TestForeignReaderHostileMemory(t *testing.T) {
	const slots = 4
	cases := []struct {
		name string
		// poke runs before the consumer starts (joining at the oldest
		// frame), or, if late, once it has joined (at the newest).
		poke func(t *testing.T, r *shm.Ring)
		late bool
		// the consumer reports a corrupt slot, skips it and goes on
		corrupt bool
	}{
		{name: "head far ahead", poke: func(t *testing.T, r *shm.Ring) {
			setWord(r, hHead, 0x7000_0000)
		}},
		{name: "head behind cursor", late: true, poke: func(t *testing.T, r *shm.Ring) {
			setWord(r, hHead, 3)
		}},
		{name: "stamp of c, seq of another", poke: func(t *testing.T, r *shm.Ring) {
			publishSilently(r, 1, 1)
			setWord(r, headerSize+1*r.Inspect().SlotSize+24, 5) // seq
		}},
		{name: "length over max_payload", corrupt: true, poke: func(t *testing.T, r *shm.Ring) {
			publishSilently(r, 1, 1)
			setWord(r, headerSize+1*r.Inspect().SlotSize+4, uint32(r.SlotPayload()+1))
		}},
		{name: "garbage sleepers", poke: func(t *testing.T, r *shm.Ring) {
			setWord(r, hSleepers, ^uint32(0))
			setWord(r, hSleepers+4, ^uint32(0)) // ev_sleepers
		}},
	}
	for _, im := range impls {
		for _, tc := range cases {
			t.Run(im.name+"/"+tc.name, func(t *testing.T) {
				argv := im.argv(t, "consumer")
				timeout := "300" // C: milliseconds
				if im.name == "python" {
					timeout = "0.3" // Python: seconds
				}
				r, dir := newRing(t, shm.Config{Slots: slots, SlotPayload: 64, BaseSeq: 1})
				w, err := r.NewWriter()
				if err != nil {
					t.Fatal(err)
				}
				if tc.late {
					writeFrames(t, w, 0, 10, r.SlotPayload())
				}
				w.Close()
				args := []string{"-n", "1", "-t", timeout}
				if tc.late {
					args = append(args, "-s")
				} else {
					tc.poke(t, r)
					args = append(args, "-o")
				}
				began := time.Now()
				c := start(t, dir, nil, append(append(argv, args...), r.Name())...)
				c.joined()
				if tc.late {
					tc.poke(t, r)
					if _, err := io.WriteString(c.stdin, "go\n"); err != nil {
						t.Fatal(err)
					}
				}
				var out []string
				for l := range c.lines {
					out = append(out, l)
				}
				<-c.exited
				err = <-c.done
				c.done <- err
				took := time.Since(began)
				if err == nil || len(out) != 1 || !strings.HasPrefix(out[0], "done frames=0 ") {
					t.Fatalf("exit %v, output %q; want no frame, a timeout and \"done frames=0 ...\"; stderr:\n%s", err, out, c.stderr())
				}
				want := "timed out"
				if tc.corrupt {
					want = "skipped a corrupt slot"
				}
				if !strings.Contains(c.stderr(), want) {
					t.Fatalf("stderr %q; want %q", c.stderr(), want)
				}
				if took > 10*time.Second {
					t.Fatalf("took %v with a timeout of %s", took, timeout)
				}
			})
		}
	}
}

// TestForeignWriterHostileMemory: a block-policy C or Python producer with
// a timeout, on a ring whose shared words another process rewrote. A live
// reader's cursor more than a ring behind fills the ring: the producer
// must give up within its timeout, also when space_value holds a huge
// count (units that never let it sleep) and the sleeper counts are
// garbage. A cursor ahead of the writer is ignored, and a lease word that
// names no possible process is taken: it writes.
func TestForeignWriterHostileMemory(t *testing.T) {
	const slots, n = 4, 3
	cases := []struct {
		name   string
		cursor uint32 // the live Go reader's cursor, as rewritten
		poke   func(r *shm.Ring)
		blocks bool
	}{
		{name: "cursor far behind", cursor: ^uint32(0) - 99, blocks: true},
		{name: "cursor far behind, garbage space_value and sleepers", cursor: ^uint32(0) - 99, blocks: true, poke: func(r *shm.Ring) {
			setWord(r, hSpaceValue, 1<<31-1)
			setWord(r, hSleepers, ^uint32(0))
			setWord(r, hSpaceValue+4, ^uint32(0)) // space_waiters
		}},
		{name: "cursor ahead", cursor: 1000},
		{name: "garbage lease owner", poke: func(r *shm.Ring) {
			setWord(r, hLeaseStart, ^uint32(0))
			setWord(r, hLeasePidNS, 0)
			setWord(r, hLeaseOwner, ^uint32(0))
		}},
	}
	for _, im := range impls {
		for _, tc := range cases {
			t.Run(im.name+"/"+tc.name, func(t *testing.T) {
				argv := im.argv(t, "producer")
				timeout := "300" // C: milliseconds
				if im.name == "python" {
					timeout = "0.3" // Python: seconds
				}
				r, dir := newRing(t, shm.Config{Slots: slots, SlotPayload: 64, Policy: shm.Block})
				rd, err := r.NewReader(nil) // entry 0, cursor 0
				if err != nil {
					t.Fatal(err)
				}
				defer rd.Close()
				setWord(r, readersOff+rCursor, tc.cursor)
				if tc.poke != nil {
					tc.poke(r)
				}
				began := time.Now()
				c := start(t, dir, nil, append(argv, "-n", fmt.Sprint(n), "-t", timeout, r.Name())...)
				var out []string
				for l := range c.lines {
					out = append(out, l)
				}
				<-c.exited
				err = <-c.done
				c.done <- err
				took := time.Since(began)
				if took > 10*time.Second {
					t.Fatalf("took %v with a timeout of %s", took, timeout)
				}
				if !tc.blocks {
					if err != nil || r.Head() != n {
						t.Fatalf("exit %v, head %d, output %q; want %d frames written; stderr:\n%s", err, r.Head(), out, n, c.stderr())
					}
					return
				}
				want := "timed out"
				if im.name == "python" {
					want = "TimeoutError"
				}
				if err == nil || !strings.Contains(c.stderr(), want) || r.Head() != 0 {
					t.Fatalf("exit %v, head %d, stderr %q; want a failure mentioning %q and nothing written", err, r.Head(), c.stderr(), want)
				}
			})
		}
	}
}

// TestForeignProducerRefusesForeignRing: the C and Python producers write
// only a ring of their own user or root's, or of the uid -u names
// (edgeipc_open_owned, Ring(owners=...)): anyone may create a file in
// /dev/shm under a ring's name, and its owner would read every frame. The
// refusal names the owner and comes before the segment is mapped; the
// producers used to write into whatever file the name opened.
func TestForeignProducerRefusesForeignRing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a ring to another user needs root")
	}
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			argv := im.argv(t, "producer")
			r, dir := newRing(t, shm.Config{Slots: 4, SlotPayload: 64})
			if err := os.Chown(shm.SegmentPath(r.Name(), &shm.SegmentOptions{Dir: dir}), 65534, 65534); err != nil {
				t.Fatal(err)
			}
			c := start(t, dir, im.env, append(argv, "-n", "1", r.Name())...)
			<-c.exited
			err := <-c.done
			c.done <- err
			if err == nil || !strings.Contains(c.stderr(), "belongs to uid 65534") || !strings.Contains(c.stderr(), "-u 65534") {
				t.Fatalf("producer exit %v, stderr %q; want a refusal naming uid 65534 and -u", err, c.stderr())
			}
			if h := r.Head(); h != 0 {
				t.Fatalf("head moved to %d: the producer wrote into another user's ring", h)
			}
			c = start(t, dir, im.env, append(argv, "-n", "1", "-u", "65534", r.Name())...)
			if l := c.line(); !strings.HasPrefix(l, "wrote first=0 last=0") {
				t.Fatalf("producer -u 65534: %q; stderr:\n%s", l, c.stderr())
			}
			c.wait()
			if h := r.Head(); h != 1 {
				t.Fatalf("head %d after producer -u 65534, want 1", h)
			}
		})
	}
}

// TestForeignOpenEmptyOwners: an empty list of trusted owners is refused
// as a caller's mistake, the same way by both clients, before the ring is
// opened: C answers EDGEIPC_EINVAL for a non-NULL owners with n == 0 (and
// for NULL with n > 0), Python raises ValueError naming owners=None for
// owners=[] or set(). C took n == 0 for "anyone" and opened the ring,
// while Python's owners=[] refused every ring as foreign. No list (C's
// NULL, 0 and edgeipc_open; Python's owners=None) still accepts any owner,
// and a list with this user's uid opens the ring.
func TestForeignOpenEmptyOwners(t *testing.T) {
	r, dir := newRing(t, shm.Config{Slots: 4, SlotPayload: 64})
	me := os.Geteuid()
	t.Run("c", func(t *testing.T) {
		bin := buildC(t, "emptyowners", `#include "edgeipc.h"
static void try_open(const char *what, const char *name, const uid_t *owners, size_t n)
{
	edgeipc_ring r;
	uid_t owner = 4242;
	int rc = edgeipc_open_owned(&r, name, owners, n, &owner);
	printf("%s: %s fd=%d owner=%u\n", what, edgeipc_strerror(rc), r.fd, (unsigned)owner);
	if (rc == 0)
		edgeipc_close(&r);
}
int main(int argc, char **argv)
{
	uid_t none[1] = {0}, mine[1] = {geteuid()};
	try_open("empty list", argv[1], none, 0);
	try_open("NULL list with n 1", argv[1], NULL, 1);
	try_open("no list", argv[1], NULL, 0);
	try_open("own uid", argv[1], mine, 1);
	edgeipc_ring r;
	int rc = edgeipc_open(&r, argv[1]);
	printf("edgeipc_open: %s\n", edgeipc_strerror(rc));
	if (rc == 0)
		edgeipc_close(&r);
	return 0;
}
`)
		c := start(t, dir, nil, bin, r.Name())
		c.expect("empty list: " + cNotOpen + " fd=-1 owner=4242")
		c.expect("NULL list with n 1: " + cNotOpen + " fd=-1 owner=4242")
		c.expect("no list: ok fd=3 owner=4242") // no list: the owner is not looked at
		c.expect(fmt.Sprintf("own uid: ok fd=3 owner=%d", me))
		c.expect("edgeipc_open: ok")
		c.wait()
	})
	t.Run("python", func(t *testing.T) {
		py := testenv.Tool(t, "python3", "install python3 to test clients/python")
		pyDir, err := filepath.Abs("python")
		if err != nil {
			t.Fatal(err)
		}
		c := start(t, dir, []string{"PYTHONPATH=" + pyDir}, py, "-u", "-c", `import os, sys
import edgeipc_ring as er
fds = len(os.listdir("/proc/self/fd"))
for owners in ([], set(), ()):
    try:
        er.Ring(sys.argv[1], owners=owners).close()
        print(repr(owners), "opened")
    except ValueError as e:
        print(repr(owners), "ValueError", "owners=None" in str(e))
print("fds left", len(os.listdir("/proc/self/fd")) - fds)
for owners in (None, [os.geteuid()], iter([os.geteuid()])):
    er.Ring(sys.argv[1], owners=owners).close()
    print("opened with", type(owners).__name__)
`, r.Name())
		for _, want := range []string{
			"[] ValueError True", "set() ValueError True", "() ValueError True", "fds left 0",
			"opened with NoneType", "opened with list", "opened with list_iterator",
		} {
			c.expect(want)
		}
		c.wait()
	})
}

// TestPythonFutexUnderOtherPersonality: the Python module takes SYS_futex
// for the ABI of the process it runs in, not for what uname -m says. A
// 32-bit Python on a 64-bit kernel (Raspberry Pi OS's 32-bit userland on
// its 64-bit kernel reports aarch64) or a 64-bit one under setarch linux32
// (i686, as here) sees the other ABI's machine name; with the number taken
// from it the module called another system call (mq_notify on x86-64)
// instead of the futex: the consumer spun instead of sleeping, and the
// producer's wake reached no sleeping reader, which got its frame only
// when its 10 s sleep bound ran out.
func TestPythonFutexUnderOtherPersonality(t *testing.T) {
	setarch := testenv.Tool(t, "setarch", "install util-linux to run a process under another personality")
	if out, err := exec.Command(setarch, "linux32", "true").CombinedOutput(); err != nil {
		t.Skipf("setarch linux32 does not work here: %v %s", err, out)
	}
	const maxPayload = 128
	t.Run("reader", func(t *testing.T) {
		r, dir := newRing(t, shm.Config{Slots: 4, SlotPayload: maxPayload})
		w, err := r.NewWriter()
		if err != nil {
			t.Fatal(err)
		}
		argv := append([]string{setarch, "linux32"}, pythonScript(t, "consumer")...)
		c := start(t, dir, nil, append(argv, "-n", "1", "-m", "0.1", r.Name())...)
		c.expect("joined index=0 cursor=0 native=True")
		c.until("the consumer counted in sleepers", func() bool { return word(r, hSleepers) == 1 })
		pid := c.cmd.Process.Pid
		before := voluntarySwitches(t, pid)
		time.Sleep(time.Second)
		// About 10 futex sleeps of 100 ms; a wait that is not a futex
		// wait returns at once and never sleeps.
		if n := voluntarySwitches(t, pid) - before; n < 3 {
			t.Fatalf("%d voluntary context switches in a second with -m 0.1, want about 10: the consumer does not sleep in FUTEX_WAIT", n)
		}
		writeFrames(t, w, 0, 1, maxPayload)
		checkFrame(t, c.frame(), 0, 0, maxPayload, 0)
		c.expect("done frames=1 lost=0")
		c.wait()
	})
	t.Run("writer", func(t *testing.T) {
		r, dir := newRing(t, shm.Config{Slots: 4, SlotPayload: maxPayload})
		rd, err := r.NewReader(nil)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), childTimeout)
			defer cancel()
			f, err := rd.ReadInto(ctx, make([]byte, maxPayload))
			if err == nil && (f.Seq != 0 || string(f.Data) != string(payload(0, maxPayload))) {
				err = fmt.Errorf("got frame %d %q", f.Seq, f.Data)
			}
			got <- err
		}()
		deadline := time.Now().Add(childTimeout)
		for word(r, hSleepers) != 1 {
			if time.Now().After(deadline) {
				t.Fatal("the Go reader never slept on the head futex")
			}
			time.Sleep(2 * time.Millisecond)
		}
		argv := append([]string{setarch, "linux32"}, pythonScript(t, "producer")...)
		c := start(t, dir, nil, append(argv, "-n", "1", r.Name())...)
		c.expect("wrote first=0 last=0")
		c.wait()
		// The Go reader sleeps up to 10 s at a time: a producer whose
		// FUTEX_WAKE is another system call leaves it asleep that long.
		select {
		case err := <-got:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the Go reader asleep on the head was not woken by the Python producer's commit")
		}
	})
}

// buildC compiles the C program src (with edgeipc.h on the include path)
// and returns the binary's path.
func buildC(t *testing.T, name, src string) string {
	t.Helper()
	cc := testenv.Tool(t, "cc", "install gcc to test clients/c")
	dir := t.TempDir()
	file := filepath.Join(dir, name+".c")
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, name)
	if out, err := exec.Command(cc, "-O2", "-Wall", "-Werror", "-std=c11", "-I", "c", "-o", bin, file).CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", name, err, out)
	}
	return bin
}

// TestCReaderLeaveAfterFailedJoin: edgeipc_reader_leave on a reader whose
// join failed (the table was full) changes nothing, as
// edgeipc_writer_close after a failed edgeipc_writer_open does. The failed
// join left the reader pointing at the ring with index 0, and leaving it
// freed entry 0 when another reader of the same process held it: that
// reader was then told it had been evicted.
func TestCReaderLeaveAfterFailedJoin(t *testing.T) {
	bin := buildC(t, "fulljoin", `#include "edgeipc.h"
int main(int argc, char **argv)
{
	edgeipc_ring r;
	int rc = edgeipc_open(&r, argv[1]);
	if (rc) {
		printf("open: %s\n", edgeipc_strerror(rc));
		return 1;
	}
	static edgeipc_reader rds[EDGEIPC_MAX_READERS + 1];
	for (int i = 0; i < (int)EDGEIPC_MAX_READERS; i++)
		if ((rc = edgeipc_reader_join(&rds[i], &r, EDGEIPC_FROM_NEWEST)) != 0) {
			printf("join %d: %s\n", i, edgeipc_strerror(rc));
			return 1;
		}
	edgeipc_reader *extra = &rds[EDGEIPC_MAX_READERS];
	printf("extra join: %s\n", edgeipc_strerror(edgeipc_reader_join(extra, &r, EDGEIPC_FROM_NEWEST)));
	edgeipc_reader_leave(extra); /* cleanup that does not look at rc */
	edgeipc_frame f;
	uint8_t buf[64];
	printf("reader 0 reads: %s\n", edgeipc_strerror(edgeipc_read(&rds[0], &f, buf, sizeof buf)));
	for (int i = 0; i < (int)EDGEIPC_MAX_READERS; i++)
		edgeipc_reader_leave(&rds[i]);
	edgeipc_close(&r);
	return 0;
}
`)
	r, dir := newRing(t, shm.Config{Slots: 4, SlotPayload: 64})
	c := start(t, dir, nil, bin, r.Name())
	c.expect("extra join: reader table is full")
	c.expect("reader 0 reads: would block")
	c.wait()
	if rs := r.Inspect().Readers; len(rs) != 0 {
		t.Fatalf("entries still held after every reader left: %+v", rs)
	}
}

// TestPythonExportsEveryError: `from edgeipc_ring import *` brings every
// error class the module raises (README names ForeignOwnerError, which
// __all__ left out).
func TestPythonExportsEveryError(t *testing.T) {
	py := testenv.Tool(t, "python3", "install python3 to test clients/python")
	cmd := exec.Command(py, "-c", `import edgeipc_ring as er
missing = sorted(n for n, v in vars(er).items()
                 if isinstance(v, type) and issubclass(v, er.RingError) and n not in er.__all__)
print(" ".join(missing))`)
	cmd.Dir = "python"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Fatalf("edgeipc_ring.__all__ leaves out %s", s)
	}
}

// mainThreadState returns the state letter of pid's main thread, or 0.
func mainThreadState(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/stat", pid, pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// TestMainThreadExitedWriterKeepsLease: a C writer whose main thread
// called pthread_exit, its other thread still writing, shows state Z in
// /proc like a zombie. Go, C and Python all took it for dead and took its
// lease: two writers on one ring. Each must now report it busy, and take
// the lease once the process has really exited.
func TestMainThreadExitedWriterKeepsLease(t *testing.T) {
	holder := buildC(t, "mainexit", `#include "edgeipc.h"
#include <pthread.h>
#include <stdio.h>
static void *worker(void *a) { char c; (void)a; while (read(0, &c, 1) > 0) {} _exit(0); }
int main(int argc, char **argv) {
	edgeipc_ring r; edgeipc_writer w; uint32_t holder = 0; pthread_t t;
	if (argc != 2 || edgeipc_open(&r, argv[1]) || edgeipc_writer_open(&w, &r, &holder)) { fprintf(stderr, "cannot take the lease\n"); return 1; }
	printf("held\n"); fflush(stdout);
	if (pthread_create(&t, 0, worker, 0)) return 1;
	pthread_exit(0);
}
`)
	r, dir := newRing(t, shm.Config{Slots: 4, SlotPayload: 64})
	h := start(t, dir, nil, holder, r.Name())
	h.expect("held")
	pid := h.cmd.Process.Pid
	for i := 0; mainThreadState(pid) != 'Z'; i++ {
		if i == 1000 {
			t.Fatalf("holder pid %d: main thread state %q after 10 s, want Z", pid, mainThreadState(pid))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if w, err := r.NewWriter(); !errors.Is(err, shm.ErrBusy) {
		if err == nil {
			w.Close()
		}
		t.Errorf("Go NewWriter beside a writer whose main thread exited: %v, want ErrBusy", err)
	}
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			c := start(t, dir, nil, append(im.argv(t, "producer"), "-n", "1", r.Name())...)
			<-c.exited
			err := <-c.done
			c.done <- err
			if want := fmt.Sprintf("pid %d", pid); err == nil || !strings.Contains(c.stderr(), want) {
				t.Errorf("producer beside a writer whose main thread exited: exit %v, stderr %q; want a failure naming %q", err, c.stderr(), want)
			}
		})
	}
	if hd := r.Head(); hd != 0 {
		t.Errorf("head moved to %d: a second writer wrote beside the live one", hd)
	}
	// Once the process has exited, its lease is free again.
	h.stdin.Close()
	<-h.exited
	w, err := r.NewWriter()
	if err != nil {
		t.Fatalf("Go NewWriter after the holder exited: %v", err)
	}
	w.Close()
}

// TestWriterLeaseAcrossTimeNamespace: the kernel adds the reader's boottime
// offset to the start times in /proc/PID/stat, so a writer in a time
// namespace (unshare --time, a CRIU-restored container) and a process
// outside it read different start times for the writer. Each took the
// other's live lease for a dead holder's and wrote beside it. With start
// times stored and compared less the boottime offset (docs/abi.md), a C or
// Python writer in a time namespace keeps its lease against Go outside,
// and a Go writer outside keeps it against C and Python inside.
func TestWriterLeaseAcrossTimeNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("creating a time namespace needs root (CAP_SYS_ADMIN); make test runs as root in CI")
	}
	unshare := testenv.Tool(t, "unshare", "install util-linux to test time namespaces")
	inNS := []string{unshare, "--time", "--boottime", "1000"}
	if out, err := exec.Command(inNS[0], append(inNS[1:], "true")...).CombinedOutput(); err != nil {
		t.Fatalf("unshare --time as root: %v\n%s", err, out)
	}
	for _, im := range impls {
		t.Run(im.name+"/inside holds", func(t *testing.T) {
			r, dir := newRing(t, shm.Config{Slots: 4, SlotPayload: 64})
			c := start(t, dir, nil, append(append(inNS, im.argv(t, "producer")...), "-n", "2", "-p", "1", r.Name())...)
			if l := c.line(); !strings.HasPrefix(l, "paused") {
				t.Fatalf("producer in a time namespace: %q, want paused; stderr:\n%s", l, c.stderr())
			}
			if w, err := r.NewWriter(); !errors.Is(err, shm.ErrBusy) {
				if err == nil {
					w.Close()
				}
				t.Errorf("Go NewWriter outside the time namespace of a live writer: %v, want ErrBusy", err)
			}
			io.WriteString(c.stdin, "go\n")
			c.expect("wrote first=0 last=1")
			c.wait()
		})
		t.Run(im.name+"/outside holds", func(t *testing.T) {
			r, dir := newRing(t, shm.Config{Slots: 4, SlotPayload: 64})
			w, err := r.NewWriter()
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			c := start(t, dir, nil, append(append(inNS, im.argv(t, "producer")...), "-n", "1", r.Name())...)
			<-c.exited
			err = <-c.done
			c.done <- err
			if want := fmt.Sprintf("pid %d", os.Getpid()); err == nil || !strings.Contains(c.stderr(), want) {
				t.Errorf("producer in a time namespace beside a live Go writer: exit %v, stderr %q; want a failure naming %q", err, c.stderr(), want)
			}
			if h := r.Head(); h != 0 {
				t.Errorf("head moved to %d: the producer wrote beside the live Go writer", h)
			}
		})
	}
}

// qemuUser returns the command of the qemu-user emulator for this
// machine's own architecture (qemu-x86_64-static on x86-64), which runs a
// native program as qemu would run a foreign one. It names its CPU: when
// the tests themselves run under qemu for ARM, QEMU_CPU (cortex-a53,
// arm1176) is in the environment, and the x86 emulator refuses it.
func qemuUser(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("uname", "-m").Output()
	if err != nil {
		t.Fatalf("uname -m: %v", err)
	}
	arch := strings.TrimSpace(string(out))
	switch {
	case arch == "i686" || arch == "i586" || arch == "i486":
		arch = "i386"
	case strings.HasPrefix(arch, "armv"):
		arch = "arm"
	}
	name := "qemu-" + arch + "-static"
	if p, err := exec.LookPath("qemu-" + arch); err == nil {
		if _, err := exec.LookPath(name); err != nil {
			return []string{p, "-cpu", "max"}
		}
	}
	return []string{testenv.Tool(t, name, "install qemu-user-static"), "-cpu", "max"}
}

// pythonExecutable is the python3 interpreter itself (not a wrapper script
// such as pyenv's shim, which qemu-user cannot run).
func pythonExecutable(t *testing.T) string {
	t.Helper()
	py := testenv.Tool(t, "python3", "install python3 to test clients/python")
	out, err := exec.Command(py, "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		t.Fatalf("%s: %v", py, err)
	}
	return strings.TrimSpace(string(out))
}

// TestForeignHolderUnderQemuUser: qemu-user answers a process's reads of
// its own /proc/PID/stat with a line of its own making, whose start time
// (field 22) is qemu's estimate, some ticks off the kernel's. A C or
// Python writer or reader under qemu-user (an ARM build on an x86 host, as
// the ARM tests run) stored that estimate next to its PID, and every other
// process, reading the kernel's start time, took the live holder for a
// dead one whose PID had been reused: a Go writer took the C or Python
// writer's lease and wrote beside it, and a block-policy writer would
// evict the live reader. qemu does not rewrite /proc/PID/task/PID/stat,
// which shows the same line as the kernel has it (the Go side reads that
// one). Here the emulated program is a native one run by the emulator for
// this machine's own architecture: qemu fakes the file the same way.
func TestForeignHolderUnderQemuUser(t *testing.T) {
	qemu := qemuUser(t)
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			var producer, consumer []string
			if im.name == "python" {
				py := pythonExecutable(t)
				producer = slices.Concat(qemu, []string{py}, pythonScript(t, "producer")[1:])
				consumer = slices.Concat(qemu, []string{py}, pythonScript(t, "consumer")[1:])
			} else {
				producer = append(slices.Clone(qemu), cBinary(t, "producer"))
				consumer = append(slices.Clone(qemu), cBinary(t, "consumer"))
			}
			r, dir := newRing(t, shm.Config{Slots: 4, SlotPayload: 64})
			p := start(t, dir, nil, append(producer, "-n", "1", "-p", "0", r.Name())...)
			p.expect("paused next=0")
			c := start(t, dir, nil, append(consumer, "-s", "-n", "1", r.Name())...)
			c.joined()
			info := r.Inspect()
			if info.WriterPID != p.cmd.Process.Pid || !info.WriterAlive {
				t.Errorf("writer under qemu-user: lease pid %d alive %v, want %d alive", info.WriterPID, info.WriterAlive, p.cmd.Process.Pid)
			}
			if len(info.Readers) != 1 || info.Readers[0].PID != c.cmd.Process.Pid || !info.Readers[0].Alive {
				t.Errorf("reader under qemu-user: entries %+v, want pid %d alive", info.Readers, c.cmd.Process.Pid)
			}
			if w, err := r.NewWriter(); !errors.Is(err, shm.ErrBusy) {
				if err == nil {
					w.Close()
				}
				t.Fatalf("Go NewWriter beside a live writer under qemu-user: %v, want ErrBusy", err)
			}
			if _, err := io.WriteString(p.stdin, "go\n"); err != nil {
				t.Fatal(err)
			}
			p.expect("wrote first=0 last=0")
			p.wait()
			if _, err := io.WriteString(c.stdin, "go\n"); err != nil {
				t.Fatal(err)
			}
			checkFrame(t, c.frame(), 0, 0, r.SlotPayload(), 0)
			c.expect("done frames=1 lost=0")
			c.wait()
		})
	}
}

// TestPythonRingCloseClosesReadersAndWriters: Ring.close(), like the Go
// Ring.Close, first closes the Readers and Writers opened from the ring:
// it leaves the reader table and releases the writer lease, and their
// methods then raise RingError. It used to unmap the ring under them:
// the lease and the reader entry stayed held by the live process (no
// other writer could take the ring, and a block-policy writer would wait
// for the reader until the process exited), and Writer.close() afterwards
// made a compare-and-swap on the unmapped address and killed Python with
// SIGSEGV.
func TestPythonRingCloseClosesReadersAndWriters(t *testing.T) {
	py := testenv.Tool(t, "python3", "install python3 to test clients/python")
	pyDir, err := filepath.Abs("python")
	if err != nil {
		t.Fatal(err)
	}
	for _, pol := range []shm.Policy{shm.Overwrite, shm.Block} {
		t.Run(pol.String(), func(t *testing.T) {
			r, dir := newRing(t, shm.Config{Slots: 4, SlotPayload: 64, Policy: pol})
			c := start(t, dir, []string{"PYTHONPATH=" + pyDir}, py, "-u", "-c", `import sys
import edgeipc_ring as er
ring = er.Ring(sys.argv[1])
w = ring.writer()
rd = ring.reader()
w.write(b"one")
print("open", flush=True)
sys.stdin.readline()
ring.close()
print("closed", flush=True)
sys.stdin.readline()
for what, f in (("write", lambda: w.write(b"two")), ("read", rd.read), ("wait", lambda: rd.wait(0.01)),
                ("read_wait", lambda: rd.read_wait(0.01)), ("reader", ring.reader), ("writer", ring.writer)):
    try:
        f()
        print(what, "did not raise")
    except er.RingError as e:
        print(what, "RingError")
w.close()
rd.close()
ring.close()
print("done")
`, r.Name())
			c.expect("open")
			if info := r.Inspect(); info.WriterPID != c.cmd.Process.Pid || len(info.Readers) != 1 {
				t.Fatalf("before ring.close(): writer %d, readers %+v; want the Python process's lease and one entry", info.WriterPID, info.Readers)
			}
			if _, err := io.WriteString(c.stdin, "close\n"); err != nil {
				t.Fatal(err)
			}
			c.expect("closed")
			if info := r.Inspect(); info.WriterPID != 0 || len(info.Readers) != 0 {
				t.Errorf("after ring.close(): writer pid %d, readers %+v; want the lease released and the entry free", info.WriterPID, info.Readers)
			}
			w, err := r.NewWriter()
			if err != nil {
				t.Errorf("Go NewWriter after the Python ring was closed: %v", err)
			} else {
				if _, err := w.WriteFrame(0, 0, []byte("go")); err != nil {
					t.Errorf("Go writer after the Python ring was closed: %v", err)
				}
				w.Close()
			}
			if _, err := io.WriteString(c.stdin, "go\n"); err != nil {
				t.Fatal(err)
			}
			for _, what := range []string{"write", "read", "wait", "read_wait", "reader", "writer"} {
				c.expect(what + " RingError")
			}
			c.expect("done")
			c.wait()
		})
	}
}

// TestForeignOpenRefusesNonRegularFile: a FIFO under a ring's name (anyone
// may make one in /dev/shm) is not a ring. Go refuses it at once ("not a
// regular file"); the C and Python consumers opened it, waited a second
// for a "creator" to size it, and then called it a ring whose creator died
// and told the user to remove the segment.
func TestForeignOpenRefusesNonRegularFile(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			argv := im.argv(t, "consumer")
			dir := t.TempDir()
			name := fmt.Sprintf("clients-fifo-%d-%d", os.Getpid(), ringSeq.Add(1))
			if err := syscall.Mkfifo(filepath.Join(dir, shm.FilePrefix+name), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := shm.Open(name, &shm.SegmentOptions{Dir: dir}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Fatalf("Go opened the FIFO: %v", err)
			}
			c := start(t, dir, nil, append(argv, "-n", "1", name)...)
			<-c.exited
			err := <-c.done
			c.done <- err
			want := "not an edgeipc ring (bad magic, or not a regular file)"
			if im.name == "python" {
				want = "NotRingError: segment is not a regular file"
			}
			if msg := c.stderr(); err == nil || !strings.Contains(msg, want) || strings.Contains(msg, "never completed") {
				t.Fatalf("exit %v, stderr %q; want a failure saying %q (and not that its creator died)", err, msg, want)
			}
		})
	}
}

// TestPythonWriterRefusesOutOfRangeFields: a frame's type and flags are
// u32 (docs/abi.md). Writer.write stored them masked to 32 bits, so a
// Python int of 2^32+5 went out as type 5 and -1 as 4294967295, without a
// word; it now raises ValueError and writes nothing.
func TestPythonWriterRefusesOutOfRangeFields(t *testing.T) {
	py := testenv.Tool(t, "python3", "install python3 to test clients/python")
	pyDir, err := filepath.Abs("python")
	if err != nil {
		t.Fatal(err)
	}
	r, dir := newRing(t, shm.Config{Slots: 4, SlotPayload: 64})
	c := start(t, dir, []string{"PYTHONPATH=" + pyDir}, py, "-u", "-c", `import sys
import edgeipc_ring as er
ring = er.Ring(sys.argv[1])
w = ring.writer()
for kw in ({"type": 2**32 + 5}, {"flags": 2**32 + 5}, {"type": -1}, {"flags": -1}, {"type": 1.5}):
    try:
        w.write(b"x", **kw)
        print(kw, "written")
    except (ValueError, TypeError) as e:
        print(kw, type(e).__name__)
print("last", w.write(b"ok", type=2**32 - 1, flags=2**32 - 1))
w.close()
ring.close()
`, r.Name())
	for _, want := range []string{
		"{'type': 4294967301} ValueError", "{'flags': 4294967301} ValueError",
		"{'type': -1} ValueError", "{'flags': -1} ValueError", "{'type': 1.5} TypeError", "last 0",
	} {
		c.expect(want)
	}
	c.wait()
	rd, err := r.NewReader(&shm.ReaderOptions{From: shm.Oldest})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	f, err := rd.TryReadInto(make([]byte, 64))
	if err != nil || f.Seq != 0 || f.Type != 1<<32-1 || f.Flags != 1<<32-1 || string(f.Data) != "ok" {
		t.Fatalf("frame %+v, %v; want seq 0, type and flags 2^32-1, data \"ok\"", f, err)
	}
}

// TestPythonRingCloseWakesBlockedCalls: Ring.close() from another thread,
// or from a signal handler of the blocked thread itself, while a Reader
// sleeps in read_wait or a block-policy Writer in write. Ring.close()
// unmapped the ring under them: when the sleep ended (its bound, or the
// handler's exception) the sleeper lowered its count with an atomic add
// on the unmapped address and Python died of SIGSEGV. Now close wakes the
// sleepers of its Readers and Writers and waits for them to leave before
// unmapping (the blocked call raises RingError), and a ring closed by the
// thread that is inside one of its calls stays mapped until a later close
// or the Ring's end. Each sleep here is bounded by 3 s, longer than close
// waits, so "unmapped" shows that the wake, not the bound, ended it.
func TestPythonRingCloseWakesBlockedCalls(t *testing.T) {
	py := testenv.Tool(t, "python3", "install python3 to test clients/python")
	pyDir, err := filepath.Abs("python")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		policy shm.Policy
		script string
		want   []string
	}{
		{name: "reader thread", policy: shm.Overwrite, want: []string{"RingError reader is closed", "unmapped True"}, script: `
rd = ring.reader()
rd.max_sleep = 3
def run():
    try:
        rd.read_wait(None)
        print("read_wait returned")
    except er.RingError as e:
        print("RingError", e, flush=True)
th = threading.Thread(target=run)
th.start()
until(lambda: ring._ld(er.H_SLEEPERS) == 1)
ring.close()
th.join()
print("unmapped", ring._mm is None)
`},
		{name: "writer thread", policy: shm.Block, want: []string{"RingError writer is closed", "unmapped True"}, script: `
w = ring.writer()
for i in range(4):
    w.write(b"x")
def run():
    try:
        w.write(b"y")
        print("write returned")
    except er.RingError as e:
        print("RingError", e, flush=True)
th = threading.Thread(target=run)
th.start()
until(lambda: ring._ld(er.H_SPACE_WAITERS) == 1)
ring.close()
th.join()
print("unmapped", ring._mm is None)
`},
		{name: "signal handler", policy: shm.Overwrite, want: []string{"stopped", "unmapped False", "unmapped True"}, script: `
class Stop(Exception):
    pass
def handler(sig, frame):
    ring.close()
    raise Stop()
signal.signal(signal.SIGUSR1, handler)
rd = ring.reader()
rd.max_sleep = 3
main, main_tid = threading.get_ident(), threading.get_native_id()
def in_head_wait():
    # blocked in FUTEX_WAIT on the head (not on the GIL, nor between the
    # sleeper count and the sleep, where an exception would leave the count)
    with open("/proc/self/task/%d/syscall" % main_tid) as f:
        w = f.read().split()
    # "running", or the system call number and its arguments in hex
    return w[0].isdigit() and int(w[0]) == er._sys_futex() and int(w[1], 16) == ring._addr + er.H_HEAD
def kick():
    until(in_head_wait)
    signal.pthread_kill(main, signal.SIGUSR1)
threading.Thread(target=kick).start()
try:
    rd.read_wait(None)
    print("read_wait returned")
except Stop:
    print("stopped")
print("unmapped", ring._mm is None)
ring.close()
print("unmapped", ring._mm is None)
`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, dir := newRing(t, shm.Config{Slots: 4, SlotPayload: 64, Policy: tc.policy})
			if tc.policy == shm.Block {
				rd, err := r.NewReader(nil) // holds the ring full after 4 frames
				if err != nil {
					t.Fatal(err)
				}
				defer rd.Close()
			}
			c := start(t, dir, []string{"PYTHONPATH=" + pyDir}, py, "-u", "-c", `import signal, sys, threading, time
import edgeipc_ring as er
ring = er.Ring(sys.argv[1])
def until(cond):
    while not cond():
        time.sleep(0.001)
`+tc.script, r.Name())
			for _, want := range tc.want {
				c.expect(want)
			}
			c.wait()
			if info := r.Inspect(); info.WriterPID != 0 || len(info.Readers) != (map[bool]int{true: 1}[tc.policy == shm.Block]) {
				t.Errorf("writer pid %d, readers %+v; want the lease released and the Python entry free", info.WriterPID, info.Readers)
			}
			if s, sw := word(r, hSleepers), word(r, hSpaceValue+4); s != 0 || sw != 0 {
				t.Errorf("sleepers %d, space_waiters %d after the Python process ended; want 0", s, sw)
			}
		})
	}
}

// pyInterruptSweep is the head of the Python scripts of the interrupt
// tests: sweep(name, call, expected, settle) runs call again and again, for k = 0,
// 1, ..., under a profile function that, at the k-th point where CPython
// runs signal handlers (a Python function's entry; the return of a C
// function), sends SIGINT to the thread with pthread_kill; the default
// handler raises KeyboardInterrupt right there. After each run (and
// settle(), if given) it compares
// counts() (defined by the script) with its value before, prints each
// difference, and ends when k is past the call's last such point with
// "NAME: N leaks, interrupted True" (True: every run was interrupted). Loop
// back edges, where CPython also runs handlers, are not covered: the
// profile function sees no event there.
const pyInterruptSweep = `import signal, sys, threading
import edgeipc_ring as er
ring = er.Ring(sys.argv[1])
main = threading.get_ident()
assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
if not er.NATIVE:
    sys.exit("needs libatomic: " + er._native.why)

class Interrupt:
    """Profile function: SIGINT to this thread at the k-th point where
    CPython runs signal handlers (the 'call' of a Python function, the
    'c_return' of a C one); the handler raises KeyboardInterrupt there."""
    def __init__(self, k):
        self.k, self.n, self.where = k, 0, None
    def __call__(self, frame, event, arg):
        if event in ("call", "c_return"):
            if self.n == self.k:
                self.where = "%s %s:%d" % (event, frame.f_code.co_name, frame.f_lineno)
                signal.pthread_kill(main, signal.SIGINT)
            self.n += 1

def sweep(name, call, expected=(), settle=None):
    k = interrupted = leaks = 0
    while True:
        before = counts()
        it = Interrupt(k)
        try:
            sys.setprofile(it)
            call()
        except KeyboardInterrupt:
            interrupted += 1
        except expected:
            pass
        finally:
            sys.setprofile(None)
        if settle:
            settle()
        if it.where is None:  # past the call's last check point
            break
        after = counts()
        if after != before:
            leaks += 1
            print("%s: KeyboardInterrupt at %s left %s, was %s" % (name, it.where, after, before))
        k += 1
    print("%s: %d leaks, %d check points" % (name, leaks, k), file=sys.stderr)
    print("%s: %d leaks, interrupted %s" % (name, leaks, interrupted == k and k > 10))
`

// runInterruptSweep runs pyInterruptSweep followed by script on ring name
// in dir and checks that it prints the lines of want, reporting the leaks
// it prints before them.
func runInterruptSweep(t *testing.T, dir, name, script string, want ...string) {
	t.Helper()
	py := testenv.Tool(t, "python3", "install python3 to test clients/python")
	pyDir, err := filepath.Abs("python")
	if err != nil {
		t.Fatal(err)
	}
	c := start(t, dir, []string{"PYTHONPATH=" + pyDir}, py, "-u", "-c", pyInterruptSweep+script, name)
	for _, w := range want {
		l := c.line()
		for strings.Contains(l, ": KeyboardInterrupt at ") {
			t.Error(l)
			l = c.line()
		}
		if l != w {
			t.Errorf("got %q, want %q", l, w)
		}
	}
	c.wait()
	t.Logf("python: %s", strings.TrimSpace(c.stderr()))
}

// TestPythonInterruptLeavesNoCount: a KeyboardInterrupt (Ctrl-C, an
// exception a Python signal handler raises between bytecodes) that lands
// anywhere in a Python Reader.wait or a block-policy Writer.write leaves
// no count raised: not sleepers, the reader entry's asleep bit,
// space_waiters or writer_waiting in shared memory, nor the ring's record
// of calls in progress (with one left, Ring.close never unmaps the ring).
// The old code raised sleepers (and space_waiters) with an atomic add and
// only then entered the try whose finally lowered it: an interrupt in
// between, or in the finally before the decrement, left the count raised
// for good, and the writer made a FUTEX_WAKE on every commit. Ring._enter
// and writer_waiting had the same window. Deterministic: an interrupt at
// each check point in turn (pyInterruptSweep).
func TestPythonInterruptLeavesNoCount(t *testing.T) {
	// Block policy, 2 slots, held full by a Go reader that never reads
	// (entry 0): the Python writer's write waits for space.
	r, dir := newRing(t, shm.Config{Slots: 2, SlotPayload: 64, Policy: shm.Block})
	hold, err := r.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	runInterruptSweep(t, dir, r.Name(), `
def counts():
    return {"sleepers": ring._ld(er.H_SLEEPERS), "space_waiters": ring._ld(er.H_SPACE_WAITERS),
            "writer_waiting": ring._ld(er.H_WRITER_WAITING),
            "entry_flags": [ring._ld(er.READERS_OFF + i * er.READER_STRIDE + er.R_FLAGS) for i in range(4)],
            "calls_in_progress": len(ring._inside)}

rd = ring.reader()
sweep("wait", lambda: rd.wait(0.01))
rd.close()
w = ring.writer()
w.write(b"x")
w.write(b"x")
sweep("write", lambda: w.write(b"y", timeout=0.005), TimeoutError)
w.close()
ring.close()
print("unmapped", ring._mm is None)
`, "wait: 0 leaks, interrupted True", "write: 0 leaks, interrupted True", "unmapped True")
	// And in the segment, seen from Go after the Python process ended.
	if s, sw, ww, fl := word(r, hSleepers), word(r, hSpaceValue+4), word(r, hWriterWaiting), word(r, readersOff+readerStride+rFlags); s != 0 || sw != 0 || ww != 0 || fl != 0 {
		t.Errorf("sleepers %d, space_waiters %d, writer_waiting %d, Python entry flags %#x after the Python process ended; want all 0", s, sw, ww, fl)
	}
}

// TestPythonInterruptedWriteReusesNoSeq: a KeyboardInterrupt that lands
// anywhere in a Python Writer.write never makes a later write reuse a
// sequence number already published. The writer advanced its own count
// only after it had stored the head: an interrupt between the two left
// the frame published (head = s+1) and the writer at s, so its next write
// overwrote frame s and stored the same head again; a reader that had
// read s never saw the new frame, and nothing counted it lost.
// Deterministic: an interrupt at each check point in turn
// (pyInterruptSweep), each followed by a clean write whose sequence must
// not be below the head published before it.
func TestPythonInterruptedWriteReusesNoSeq(t *testing.T) {
	r, dir := newRing(t, shm.Config{Slots: 8, SlotPayload: 64})
	runInterruptSweep(t, dir, r.Name(), `
reused = []
def counts():
    return {"reused": len(reused)}

w = ring.writer()
def clean_write():
    head = ring._ld(er.H_HEAD)
    s = w.write(b"z")
    if s < head:
        reused.append((s, head))

sweep("write", lambda: w.write(b"y"), settle=clean_write)
w.close()
ring.close()
print("unmapped", ring._mm is None)
`, "write: 0 leaks, interrupted True", "unmapped True")
}

// TestPythonInterruptedOpenHoldsNothing: a KeyboardInterrupt that lands
// anywhere in the Reader or Writer constructor (ring.reader(),
// ring.writer()) leaves no reader entry and no writer lease held. The
// claim was not undone: the live process kept the entry (a block-policy
// writer waits for its cursor) or the lease, and every writer, the same
// program's next ring.writer() too, got BusyError naming this process
// until it exited. Deterministic: an interrupt at each check point in
// turn (pyInterruptSweep); what was opened is closed after each run. Not
// covered (and not fixed): the check point in the caller right after the
// constructor returns, which loses the new object, and close().
func TestPythonInterruptedOpenHoldsNothing(t *testing.T) {
	r, dir := newRing(t, shm.Config{Slots: 4, SlotPayload: 64})
	runInterruptSweep(t, dir, r.Name(), `
def counts():
    return {"held_entries": sum(1 for i in range(er.MAX_READERS) if ring._ld(er.READERS_OFF + i * er.READER_STRIDE + er.R_OWNER)),
            "lease": ring._ld(er.H_LEASE_OWNER), "calls_in_progress": len(ring._inside)}

got = []
def close_got():
    while got:
        got.pop().close()

# FullError, BusyError: the old code's leaks filled the table, held the lease
sweep("reader", lambda: got.append(ring.reader()), er.FullError, close_got)
sweep("writer", lambda: got.append(ring.writer()), er.BusyError, close_got)
w = ring.writer()  # the lease is free: no BusyError
w.close()
ring.close()
print("unmapped", ring._mm is None)
`, "reader: 0 leaks, interrupted True", "writer: 0 leaks, interrupted True", "unmapped True")
	if in := r.Inspect(); in.WriterPID != 0 || len(in.Readers) != 0 {
		t.Errorf("writer pid %d, readers %+v after the Python process ended; want neither", in.WriterPID, in.Readers)
	}
}

// TestCUseWhenNotOpenIsAnError: a C reader used after
// edgeipc_reader_leave or after a failed join, a writer used after
// edgeipc_writer_close, and a ring used after edgeipc_close answer
// EDGEIPC_EINVAL (Python raises RingError, Go ErrClosed). They
// dereferenced the NULL ring pointer the leave, the close or the failed
// join left behind (or the NULL mapping edgeipc_close left) and the
// program died of SIGSEGV.
func TestCUseWhenNotOpenIsAnError(t *testing.T) {
	bin := buildC(t, "notopen", `#include "edgeipc.h"
static void say(const char *what, int rc) { printf("%s: %s\n", what, edgeipc_strerror(rc)); fflush(stdout); }
int main(int argc, char **argv)
{
	edgeipc_ring r;
	int rc = edgeipc_open(&r, argv[1]);
	if (rc) {
		say("open", rc);
		return 1;
	}
	edgeipc_frame f;
	uint8_t buf[64];
	void *p;
	edgeipc_reader rd, late;
	edgeipc_writer w, wl;
	if ((rc = edgeipc_reader_join(&rd, &r, EDGEIPC_FROM_NEWEST)) || (rc = edgeipc_writer_open(&w, &r, NULL))) {
		say("join/open", rc);
		return 1;
	}
	edgeipc_reader_leave(&rd);
	say("read after leave", edgeipc_read(&rd, &f, buf, sizeof buf));
	say("wait after leave", edgeipc_wait(&rd, 10));
	say("read_wait after leave", edgeipc_read_wait(&rd, &f, buf, sizeof buf, 10));
	edgeipc_writer_close(&w);
	say("reserve after close", edgeipc_reserve(&w, 1, &p, 0));
	say("write after close", edgeipc_write(&w, 0, 0, "x", 1, NULL, 0));
	if ((rc = edgeipc_reader_join(&rd, &r, EDGEIPC_FROM_NEWEST)) || (rc = edgeipc_writer_open(&w, &r, NULL))) {
		say("join/open again", rc);
		return 1;
	}
	edgeipc_close(&r); /* before leaving and closing: their entry and lease stay held */
	say("read after ring close", edgeipc_read(&rd, &f, buf, sizeof buf));
	say("wait after ring close", edgeipc_wait(&rd, 10));
	say("write after ring close", edgeipc_write(&w, 0, 0, "x", 1, NULL, 0));
	edgeipc_reader_leave(&rd);
	edgeipc_writer_close(&w);
	say("join on closed ring", edgeipc_reader_join(&late, &r, EDGEIPC_FROM_NEWEST));
	say("read after failed join", edgeipc_read(&late, &f, buf, sizeof buf));
	say("writer_open on closed ring", edgeipc_writer_open(&wl, &r, NULL));
	say("commit after failed open", edgeipc_commit(&wl, 0, 0, NULL));
	return 0;
}
`)
	r, dir := newRing(t, shm.Config{Slots: 4, SlotPayload: 64})
	c := start(t, dir, nil, bin, r.Name())
	for _, what := range []string{
		"read after leave", "wait after leave", "read_wait after leave", "reserve after close", "write after close",
		"read after ring close", "wait after ring close", "write after ring close",
		"join on closed ring", "read after failed join", "writer_open on closed ring", "commit after failed open",
	} {
		c.expect(what + ": " + cNotOpen)
	}
	c.wait()
}
