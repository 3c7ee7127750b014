package clients_test

import (
	"bufio"
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeipc/edgeipc/internal/qemuwatch"
	"github.com/edgeipc/edgeipc/shm"
)

// childTimeout bounds every child process; it guards against hangs only.
const childTimeout = 60 * time.Second

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
	ringSeq   atomic.Int64
)

func TestMain(m *testing.M) {
	qemuwatch.Start() // a qemu-user fork deadlock fails fast instead of hanging
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// cBinary compiles the C examples once and returns the path of prog.
func cBinary(t *testing.T, prog string) string {
	t.Helper()
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler: install gcc (cc not found on PATH)")
	}
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
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found on PATH: install python3 to test clients/python")
	}
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

// TestForeignWriterBusy: while a Go writer holds the lease, the C and
// Python producers must refuse to write and name the holder.
func TestForeignWriterBusy(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			argv := im.argv(t, "producer")
			r, dir := newRing(t, shm.Config{Slots: 4, SlotPayload: 64})
			w, err := r.NewWriter()
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			c := start(t, dir, nil, append(argv, "-n", "1", r.Name())...)
			<-c.exited
			err = <-c.done
			c.done <- err
			want := fmt.Sprintf("pid %d", os.Getpid())
			if err == nil || !strings.Contains(c.stderr(), want) {
				t.Fatalf("producer exit %v, stderr %q; want a failure naming %q", err, c.stderr(), want)
			}
			if h := r.Head(); h != 0 {
				t.Fatalf("head moved to %d: the producer wrote despite the lease", h)
			}
		})
	}
}

// TestForeignOpenValidation: each header check of docs/abi.md, broken in a
// copy of a real ring, makes the C and Python consumers refuse the ring.
func TestForeignOpenValidation(t *testing.T) {
	type patch struct {
		name      string
		off       int // -1: truncate the file instead
		val       uint32
		c, python string // expected in stderr
	}
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
	}
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			argv := im.argv(t, "consumer")
			r, dir := newRing(t, shm.Config{Slots: 4, SlotPayload: 64})
			orig, err := os.ReadFile(r.Segment().Path())
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range patches {
				b := append([]byte(nil), orig...)
				if p.off < 0 {
					b = b[:len(b)-64]
				} else {
					b[p.off], b[p.off+1], b[p.off+2], b[p.off+3] = byte(p.val), byte(p.val>>8), byte(p.val>>16), byte(p.val>>24)
				}
				name := "bad-" + p.name
				if err := os.WriteFile(filepath.Join(dir, shm.FilePrefix+name), b, 0o600); err != nil {
					t.Fatal(err)
				}
				want := p.c
				if im.name == "python" {
					want = p.python
				}
				t.Run(p.name, func(t *testing.T) {
					t.Parallel()
					c := start(t, dir, nil, append(argv, "-n", "1", name)...)
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
