//go:build linux

package shm

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgeipc/edgeipc/internal/atomicx"
)

// TestSoak is a randomized crash soak with real processes: for each policy
// it runs a writer child and several reader children (this test binary
// re-executed, see main_test.go) on small rings, SIGKILLs them at random
// moments and starts new ones (writers that take over the lease, readers
// that join From Oldest or From Newest). Every reader checks every frame it
// gets (payload checksum, sequence order, Lost accounting, no loss under
// the block policy once it has joined) and exits with SOAK-FAIL on stderr
// at the first violation; the parent checks across readers that every
// sequence number stands for one writer's frame only, and at the end of
// each ring that a last writer takes the lease and gets N frames to a new
// reader and to every surviving one within a bounded time.
//
// The default run is short; soak by hand with e.g.
//
//	go test -run Soak ./shm -soak 3m
//
// (the package before -soak: go test hands flags it does not know to the
// test binary only after the package list). -soakseed repeats the parent's
// choices; the kill timing is not reproducible.
var (
	soakFor  = flag.Duration("soak", 3*time.Second, "TestSoak: how long to kill and restart writers and readers (split between the two policies)")
	soakSeed = flag.Uint64("soakseed", 0, "TestSoak: seed for the parent's random choices (0: from the clock)")
)

func init() {
	children["soak-writer"] = childSoakWriter
	children["soak-reader"] = childSoakReader
}

// Payload of a soak frame, little-endian:
//
//	0  writer generation (one per writer child, in lease order)
//	4  sequence number the writer gave it (w.Seq() at Reserve)
//	8  index of the frame among its writer's frames
//	12 payload length | soakLast on a final writer's last frame
//	16 filler derived from (generation, seq)
//	n-4 CRC-32 of bytes 0 .. n-4
const (
	soakHdr    = 16
	soakMinLen = soakHdr + 4
	soakLast   = 1 << 31
)

func soakFill(p []byte, gen, seq, idx uint32, last bool) {
	n := len(p)
	binary.LittleEndian.PutUint32(p[0:], gen)
	binary.LittleEndian.PutUint32(p[4:], seq)
	binary.LittleEndian.PutUint32(p[8:], idx)
	lw := uint32(n)
	if last {
		lw |= soakLast
	}
	binary.LittleEndian.PutUint32(p[12:], lw)
	x := gen*0x9e3779b9 ^ seq*2654435761 | 1
	for i := soakHdr; i < n-4; i++ {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		p[i] = byte(x)
	}
	binary.LittleEndian.PutUint32(p[n-4:], crc32.ChecksumIEEE(p[:n-4]))
}

type soakFrame struct {
	gen, seq, idx uint32
	last          bool
}

func soakCheck(p []byte) (soakFrame, error) {
	var f soakFrame
	n := len(p)
	if n < soakMinLen {
		return f, fmt.Errorf("payload of %d bytes, soak frames have at least %d", n, soakMinLen)
	}
	if got, want := binary.LittleEndian.Uint32(p[n-4:]), crc32.ChecksumIEEE(p[:n-4]); got != want {
		return f, fmt.Errorf("checksum %#08x, computed %#08x (torn or corrupt; header gen %d seq %d idx %d len %#x)",
			got, want, binary.LittleEndian.Uint32(p[0:]), binary.LittleEndian.Uint32(p[4:]),
			binary.LittleEndian.Uint32(p[8:]), binary.LittleEndian.Uint32(p[12:]))
	}
	f.gen = binary.LittleEndian.Uint32(p[0:])
	f.seq = binary.LittleEndian.Uint32(p[4:])
	f.idx = binary.LittleEndian.Uint32(p[8:])
	lw := binary.LittleEndian.Uint32(p[12:])
	f.last = lw&soakLast != 0
	if lw&^soakLast != uint32(n) {
		return f, fmt.Errorf("length field %d, frame has %d bytes", lw&^soakLast, n)
	}
	x := f.gen*0x9e3779b9 ^ f.seq*2654435761 | 1
	for i := soakHdr; i < n-4; i++ {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		if p[i] != byte(x) {
			return f, fmt.Errorf("filler byte %d differs (checksum matched)", i)
		}
	}
	return f, nil
}

// soakWriterStatus is what a writer child records once it holds the lease,
// before its first frame. Sequence numbers in the soak's files are offsets
// from the ring's base_seq.
type soakWriterStatus struct {
	Gen       uint32
	Start     uint32 // offset of its first frame (w.Seq() after NewWriter)
	Published bool   // it published its dead predecessor's committed frame
	Crashed   bool   // it stopped between a commit's stamp and head stores
}

// soakReport is what a reader child records, now and then and when it ends.
type soakReport struct {
	ID          int
	From        string
	Method      string
	Start       uint32 // offset of its first cursor
	Joined      uint32 // offset of the head read after NewReader returned
	Frames      uint64
	Lost        uint64
	Overwritten uint64 // zero-copy frames Release found overwritten
	Late        uint64 // frames taken more than a second after their commit (see below)
	MaxLateMs   float64
	Done        bool // got the final writer's last frame
	Quit        bool // left by itself (Close) after QuitAfter frames
	Runs        []soakRun
}

// soakRun is a stretch of frames of one writer generation as one reader
// got them.
type soakRun struct {
	Gen         uint32
	First, Last uint32 // offsets
	Base        uint32 // offset of seq - idx: the writer's first frame
	Count       uint32
}

func writeJSONFile(path string, v any) {
	b, _ := json.Marshal(v)
	tmp := path + ".tmp"
	if os.WriteFile(tmp, b, 0o600) == nil {
		os.Rename(tmp, path)
	}
}

// soakFail reports a violation: the parent fails the test on this marker
// whether or not it killed the child afterwards.
func soakFail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "SOAK-FAIL "+format+"\n", args...)
	return 1
}

// soakOrphanGuard ends a soak child whose parent is gone (a test binary
// killed by its timeout must not leave writers spinning).
func soakOrphanGuard() {
	pp := os.Getppid()
	go func() {
		for range time.Tick(200 * time.Millisecond) {
			if os.Getppid() != pp {
				os.Exit(5)
			}
		}
	}()
}

func childSoakWriter() int {
	soakOrphanGuard()
	gen := uint32(envInt("EDGEIPC_SOAK_GEN"))
	n := envInt("EDGEIPC_N") // 0: until killed
	crashAt := envInt("EDGEIPC_SOAK_CRASHAT")
	pace := envInt("EDGEIPC_SOAK_PACE")
	intruder := os.Getenv("EDGEIPC_SOAK_INTRUDER") == "1"
	rng := rand.New(rand.NewPCG(uint64(envInt("EDGEIPC_SOAK_SEED")), uint64(gen)))
	r, err := Open(os.Getenv("EDGEIPC_RING"), nil)
	if err != nil {
		return soakFail("writer %d: open: %v", gen, err)
	}
	defer r.Close()
	base := r.hdr.BaseSeq
	var w *Writer
	var h0 uint32
	deadline := time.Now().Add(scale(30 * time.Second))
	for {
		h0 = r.Head()
		w, err = r.NewWriter()
		if err == nil {
			break
		}
		if !errors.Is(err, ErrBusy) {
			return soakFail("writer %d: %v", gen, err)
		}
		if intruder {
			return 0 // the lease is busy, as it must be
		}
		if time.Now().After(deadline) {
			return soakFail("writer %d: lease still busy after %v: %v", gen, scale(30*time.Second), err)
		}
		time.Sleep(time.Millisecond)
	}
	if intruder {
		w.Close()
		return soakFail("intruder writer took the lease while writer generation %s was alive and held it", os.Getenv("EDGEIPC_SOAK_HOLDER"))
	}
	st := soakWriterStatus{Gen: gen, Start: w.Seq() - base, Published: w.Seq() != h0}
	status := filepath.Join(os.Getenv("EDGEIPC_SOAK_DIR"), fmt.Sprintf("w-%d.json", gen))
	writeJSONFile(status, st)
	if r.Policy() == Block {
		w.SetSpin(envInt("EDGEIPC_SOAK_SPIN"))
	}
	max := r.SlotPayload()
	burst := 1 + rng.IntN(2*r.Slots())
	for i := 0; n == 0 || i < n; i++ {
		s := w.Seq()
		ln := soakMinLen + rng.IntN(max-soakMinLen+1)
		p, err := w.Reserve(ln)
		if err != nil {
			return soakFail("writer %d: reserve frame %d: %v", gen, i, err)
		}
		soakFill(p, gen, s, uint32(i), n > 0 && i == n-1)
		if i == crashAt {
			// Die (when the parent gets to it) between a commit's stamp
			// store and its head store: readers may take the frame by
			// its stamp, and the next writer must publish it.
			sh := w.slot
			sh.Length, sh.Type, sh.Flags, sh.Time, sh.Seq = uint32(ln), 0, 0, nanotime(), s
			atomicx.StoreRelease(&sh.Stamp, s<<1)
			st.Crashed = true
			writeJSONFile(status, st)
			time.Sleep(time.Hour)
		}
		if rng.IntN(500) == 0 {
			time.Sleep(time.Duration(rng.IntN(5000)) * time.Microsecond) // killed with a slot open, maybe
		}
		if _, err := w.Commit(); err != nil {
			return soakFail("writer %d: commit frame %d: %v", gen, i, err)
		}
		switch pace {
		case 1: // bursts
			if i%burst == burst-1 {
				time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
			}
		case 2: // slow
			time.Sleep(time.Duration(100+rng.IntN(900)) * time.Microsecond)
		}
	}
	if err := w.Close(); err != nil {
		return soakFail("writer %d: close: %v", gen, err)
	}
	return 0
}

func childSoakReader() int {
	soakOrphanGuard()
	id := envInt("EDGEIPC_SOAK_ID")
	rng := rand.New(rand.NewPCG(uint64(envInt("EDGEIPC_SOAK_SEED")), uint64(id)))
	from := Newest
	if os.Getenv("EDGEIPC_SOAK_FROM") == "oldest" {
		from = Oldest
	}
	method := os.Getenv("EDGEIPC_SOAK_METHOD")
	slow := envInt("EDGEIPC_SOAK_SLOW")
	quitAfter := uint64(envInt("EDGEIPC_SOAK_QUIT"))
	out := filepath.Join(os.Getenv("EDGEIPC_SOAK_DIR"), fmt.Sprintf("r-%d.json", id))

	r, err := Open(os.Getenv("EDGEIPC_RING"), nil)
	if err != nil {
		return soakFail("reader %d: open: %v", id, err)
	}
	defer r.Close()
	rd, err := r.NewReader(&ReaderOptions{From: from, Spin: envInt("EDGEIPC_SOAK_SPIN")})
	if err != nil {
		return soakFail("reader %d: join: %v", id, err)
	}
	base := r.hdr.BaseSeq
	joined := r.Head() - base // every frame from here on was written after the join
	expect := rd.Cursor()
	block := r.Policy() == Block
	rep := soakReport{ID: id, From: os.Getenv("EDGEIPC_SOAK_FROM"), Method: method, Start: expect - base, Joined: joined}
	fmt.Println("joined")

	// The last frames seen, for the failure report.
	var hist []string
	note := func(format string, args ...any) {
		if len(hist) == 12 {
			hist = hist[1:]
		}
		hist = append(hist, fmt.Sprintf(format, args...))
	}
	fail := func(format string, args ...any) int {
		writeJSONFile(out, rep)
		return soakFail("reader %d (from %s, %s, policy %v, %d slots, base %#x, joined at +%d, started at +%d): %s\n  last frames (offsets from base): %s",
			id, rep.From, method, r.Policy(), r.Slots(), base, joined, rep.Start, fmt.Sprintf(format, args...), strings.Join(hist, "; "))
	}
	var run *soakRun
	var lastIdx uint32
	lateSeq, lateMs := uint32(0), 0.0 // a late frame counts once the next frame shows its writer still wrote
	buf := make([]byte, r.SlotPayload())
	ctx := context.Background()
	saved := time.Now()
	for {
		var f Frame
		ovw := false
		var verr error
		var sf soakFrame
		var dl time.Time
		switch method {
		case "copy":
			f, err = rd.ReadInto(ctx, buf)
		case "copy-deadline":
			dl = time.Now().Add(time.Duration(1+rng.IntN(100)) * time.Millisecond)
			f, err = rd.ReadIntoDeadline(dl, buf)
		case "poll":
			f, err = rd.TryReadInto(buf)
			if errors.Is(err, ErrWouldBlock) {
				time.Sleep(time.Duration(50+rng.IntN(300)) * time.Microsecond)
				continue
			}
		default: // zero-copy: check in place, then ask Release whether it was intact
			if method == "zero-copy-deadline" {
				dl = time.Now().Add(time.Duration(1+rng.IntN(100)) * time.Millisecond)
				f, err = rd.NextDeadline(dl)
			} else {
				f, err = rd.Next(ctx)
			}
			if err == nil {
				sf, verr = soakCheck(f.Data)
				if rerr := rd.Release(); errors.Is(rerr, ErrOverwritten) {
					ovw = true
				} else if rerr != nil {
					return fail("release frame +%d: %v", f.Seq-base, rerr)
				}
			}
		}
		if !dl.IsZero() {
			// A read bounded by a deadline returns by then, give or take
			// scheduling (generously: this machine may be loaded).
			if over := time.Since(dl); over > scale(3*time.Second) {
				return fail("a read with a deadline returned %v after it (%v); cursor +%d, head +%d", over, err, rd.Cursor()-base, r.Head()-base)
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
		}
		if err != nil {
			if errors.Is(err, ErrEvicted) {
				return fail("evicted while alive: %v", err)
			}
			return fail("read: %v", err)
		}
		off := f.Seq - base
		if f.Seq-f.Lost != expect {
			return fail("frame +%d reports %d lost, but the previous frame was +%d: the jump is %d",
				off, f.Lost, expect-1-base, f.Seq-expect)
		}
		if f.Seq-expect > 1<<31 {
			return fail("frame +%d after +%d: sequence went backwards", off, expect-1-base)
		}
		expect = f.Seq + 1
		if f.Lost != 0 {
			rep.Lost += uint64(f.Lost)
			note("lost %d", f.Lost)
			if block && off-1 >= joined {
				return fail("block policy: frames +%d..+%d lost, written after this reader joined (head +%d)", off-f.Lost, off-1, joined)
			}
		}
		if ovw {
			rep.Overwritten++
			note("+%d overwritten", off)
			if block && off >= joined {
				return fail("block policy: frame +%d overwritten while held, written after this reader joined (head +%d)", off, joined)
			}
			continue
		}
		if !strings.HasPrefix(method, "zero-copy") {
			sf, verr = soakCheck(f.Data)
		}
		if verr != nil {
			return fail("frame +%d (%d bytes, lost %d) returned intact but is not: %v", off, len(f.Data), f.Lost, verr)
		}
		note("+%d g%d i%d", off, sf.gen, sf.idx)
		if sf.seq != f.Seq {
			return fail("frame +%d carries the payload of seq +%d (gen %d idx %d)", off, sf.seq-base, sf.gen, sf.idx)
		}
		if lateMs != 0 && run != nil && sf.gen == run.Gen {
			rep.Late++
			rep.MaxLateMs = max(rep.MaxLateMs, lateMs)
			fmt.Fprintf(os.Stderr, "soak reader %d: frame +%d taken %.0f ms after its commit\n", id, lateSeq-base, lateMs)
		}
		lateMs = 0
		if lat := float64(nanotime()-f.Time) / 1e6; lat > 1000 && off >= joined {
			lateSeq, lateMs = f.Seq, lat
		}
		switch {
		case run == nil || sf.gen > run.Gen:
			rep.Runs = append(rep.Runs, soakRun{Gen: sf.gen, First: off, Base: off - sf.idx})
			run = &rep.Runs[len(rep.Runs)-1]
		case sf.gen < run.Gen:
			return fail("frame +%d of writer generation %d after generation %d's", off, sf.gen, run.Gen)
		case sf.idx <= lastIdx || off-sf.idx != run.Base:
			return fail("frame +%d is generation %d's frame %d; its frame %d was +%d", off, sf.gen, sf.idx, lastIdx, run.Last)
		}
		run.Last = off
		run.Count++
		lastIdx = sf.idx
		rep.Frames++
		if sf.last {
			rep.Done = true
			writeJSONFile(out, rep)
			return 0
		}
		if quitAfter != 0 && rep.Frames >= quitAfter {
			rep.Quit = true
			if err := rd.Close(); err != nil {
				return fail("close: %v", err)
			}
			writeJSONFile(out, rep)
			return 0
		}
		if slow != 0 && rng.IntN(slow) == 0 {
			time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
		}
		if time.Since(saved) > 100*time.Millisecond {
			writeJSONFile(out, rep)
			saved = time.Now()
		}
	}
}

// syncBuffer collects a child's stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type soakProc struct {
	name    string
	cmd     *exec.Cmd
	stderr  syncBuffer
	done    chan struct{}
	err     error
	killed  bool
	gen     uint32    // writers
	id      int       // readers
	final   bool      // the last writer, which exits by itself
	seen    bool      // exit already examined
	crashed time.Time // writers: when the parent first saw it at its crash point
}

type soakStats struct {
	rings, gens, writerKills, readerKills, readersStarted, oldest, newest int
	intruders, crashPoints, published, quits, finalChecks                 int
	failures                                                              int
	frames, lost, overwritten, late                                       uint64
	maxLateMs                                                             float64
}

func (s *soakStats) String() string {
	return fmt.Sprintf("%d rings, %d writer generations (%d killed, %d at a crash point between stamp and head, %d takeovers published a dead writer's frame), %d intruder writers refused, "+
		"%d readers started (%d oldest, %d newest; %d killed, %d left by themselves), %d final liveness checks passed; "+
		"readers got %d frames, %d reported lost, %d overwritten while held (zero-copy), %d taken more than 1 s after their commit (max %.0f ms)",
		s.rings, s.gens, s.writerKills, s.crashPoints, s.published, s.intruders, s.readersStarted, s.oldest, s.newest, s.readerKills, s.quits, s.finalChecks,
		s.frames, s.lost, s.overwritten, s.late, s.maxLateMs)
}

func TestSoak(t *testing.T) {
	seed := *soakSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("soak %v, -soakseed %d", *soakFor, seed)
	for _, pol := range []Policy{Overwrite, Block} {
		t.Run(pol.String(), func(t *testing.T) {
			testDir(t)
			rng := rand.New(rand.NewPCG(seed, uint64(pol)))
			var st soakStats
			end := time.Now().Add(*soakFor / 2)
			for round := 0; round == 0 || time.Now().Before(end); round++ {
				d := min(time.Until(end), time.Duration(1000+rng.IntN(4000))*time.Millisecond)
				soakRing(t, pol, rng, round, max(d, 500*time.Millisecond), &st)
				if st.failures >= 10 {
					break
				}
			}
			t.Logf("%v: %v", pol, &st)
		})
	}
}

// soakRing runs one ring: chaos for d, then the liveness check, then the
// cross-reader checks.
func soakRing(t *testing.T, pol Policy, rng *rand.Rand, round int, d time.Duration, st *soakStats) {
	slots := []int{4, 8, 16}[rng.IntN(3)]
	payload := []int{soakMinLen, 200, 1000}[rng.IntN(3)]
	base := []uint32{0, 1<<32 - 200, 1<<31 - 200, rng.Uint32()}[rng.IntN(4)]
	name := fmt.Sprintf("soak-%v-%d", pol, round)
	r, err := Create(name, Config{Slots: slots, SlotPayload: payload, Policy: pol, BaseSeq: base})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dir := t.TempDir()
	st.rings++
	// errorf fails the test; this ring's chaos stops, the next ring goes
	// on, so a long soak reports every kind of failure it meets.
	failed := false
	errorf := func(format string, args ...any) {
		t.Helper()
		failed = true
		st.failures++
		t.Errorf(format, args...)
	}
	cseed := rng.Uint64() >> 2
	desc := fmt.Sprintf("ring %s: %d slots, payload %d, base %#x", name, slots, r.SlotPayload(), base)

	var procs []*soakProc
	var writer *soakProc // the current (last started) writer
	var readers []*soakProc
	gen, nextID := uint32(0), 0
	defer func() {
		for _, p := range procs {
			if !p.killed {
				p.cmd.Process.Kill()
			}
			<-p.done
		}
	}()
	start := func(p *soakProc, role string, env ...string) {
		env = append(env, "EDGEIPC_RING="+name, "EDGEIPC_SOAK_DIR="+dir, fmt.Sprint("EDGEIPC_SOAK_SEED=", cseed))
		p.cmd = child(t, role, env...)
		p.cmd.Stderr = &p.stderr
		p.done = make(chan struct{})
		if err := p.cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", p.name, err)
		}
		procs = append(procs, p)
		go func() { p.err = p.cmd.Wait(); close(p.done) }()
	}
	kill := func(p *soakProc, wait bool) {
		if !p.killed {
			p.killed = true
			p.cmd.Process.Signal(syscall.SIGKILL)
		}
		if wait {
			<-p.done
		}
	}
	exited := func(p *soakProc) bool {
		select {
		case <-p.done:
			return true
		default:
			return false
		}
	}
	startWriter := func(final bool, n int) *soakProc {
		gen++
		st.gens++
		p := &soakProc{name: fmt.Sprintf("writer %d", gen), gen: gen, final: final}
		env := []string{fmt.Sprint("EDGEIPC_SOAK_GEN=", gen), fmt.Sprint("EDGEIPC_N=", n),
			fmt.Sprint("EDGEIPC_SOAK_SPIN=", []int{0, 0, 100, 5000, -1}[rng.IntN(5)])}
		if !final {
			env = append(env, fmt.Sprint("EDGEIPC_SOAK_PACE=", rng.IntN(3)))
			crash := -1
			if rng.IntN(4) == 0 {
				crash = rng.IntN(40 * slots)
			}
			env = append(env, fmt.Sprint("EDGEIPC_SOAK_CRASHAT=", crash))
		} else {
			env = append(env, "EDGEIPC_SOAK_CRASHAT=-1", fmt.Sprint("EDGEIPC_SOAK_PACE=", rng.IntN(2)))
		}
		start(p, "soak-writer", env...)
		writer = p
		return p
	}
	startReader := func(from string) *soakProc {
		if from == "" {
			from = []string{"oldest", "newest"}[rng.IntN(2)]
		}
		if from == "oldest" {
			st.oldest++
		} else {
			st.newest++
		}
		st.readersStarted++
		nextID++
		p := &soakProc{name: fmt.Sprintf("reader %d (%s)", nextID, from), id: nextID}
		quit := 0
		if rng.IntN(8) == 0 {
			quit = 1 + rng.IntN(200)
		}
		slow := []int{0, 0, 4, 50}[rng.IntN(4)]
		start(p, "soak-reader", fmt.Sprint("EDGEIPC_SOAK_ID=", nextID), "EDGEIPC_SOAK_FROM="+from,
			"EDGEIPC_SOAK_METHOD="+[]string{"copy", "zero-copy", "poll", "copy-deadline", "zero-copy-deadline"}[rng.IntN(5)],
			fmt.Sprint("EDGEIPC_SOAK_SPIN=", []int{0, 0, 200}[rng.IntN(3)]),
			fmt.Sprint("EDGEIPC_SOAK_SLOW=", slow), fmt.Sprint("EDGEIPC_SOAK_QUIT=", quit))
		readers = append(readers, p)
		return p
	}
	// check fails the test for a child that reported a violation or
	// exited by itself with an error, and drops exited readers.
	check := func() {
		for _, p := range procs {
			if s := p.stderr.String(); strings.Contains(s, "SOAK-FAIL") && !p.seen {
				p.seen = true
				errorf("%s: %s\n%s", desc, p.name, s)
				continue
			}
			if p.seen || !exited(p) {
				continue
			}
			p.seen = true
			switch {
			case p.killed:
			case p.err != nil:
				errorf("%s: %s exited by itself: %v\n%s", desc, p.name, p.err, p.stderr.String())
			case p.gen != 0 && !p.final:
				errorf("%s: %s (writes until killed) exited with status 0\n%s", desc, p.name, p.stderr.String())
			}
		}
		live := readers[:0]
		for _, p := range readers {
			if !exited(p) {
				live = append(live, p)
			}
		}
		readers = live
	}
	alive := func(p *soakProc) bool { return p != nil && !p.killed && !exited(p) }
	// held: a writer stopped at its crash point is left alive for a while,
	// so that the readers that took its last frame by the stamp have to
	// wait for the next one with the head one behind their cursor.
	held := func(p *soakProc) bool {
		if !alive(p) {
			return false
		}
		if p.crashed.IsZero() {
			var ws soakWriterStatus
			if b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("w-%d.json", p.gen))); err != nil || json.Unmarshal(b, &ws) != nil || !ws.Crashed {
				return false
			}
			p.crashed = time.Now()
		}
		return time.Since(p.crashed) < scale(4*time.Second)
	}

	startWriter(false, 0)
	for i := 0; i < 3; i++ {
		startReader("")
	}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && !failed {
		time.Sleep(scale(time.Duration(5+rng.IntN(120)) * time.Millisecond))
		check()
		switch a := rng.IntN(100); {
		case a < 25: // kill the writer; a new one takes over, at once or later
			if held(writer) {
				break
			}
			if alive(writer) {
				kill(writer, rng.IntN(2) == 0)
				st.writerKills++
			}
			if rng.IntN(4) != 0 {
				startWriter(false, 0)
			}
		case a < 30: // a writer-less ring gets a writer again
			if !alive(writer) {
				startWriter(false, 0)
			}
		case a < 50: // kill a reader, and maybe replace it
			if len(readers) > 0 {
				i := rng.IntN(len(readers))
				kill(readers[i], rng.IntN(2) == 0)
				st.readerKills++
				readers = append(readers[:i], readers[i+1:]...)
			}
			if rng.IntN(2) == 0 {
				startReader("")
			}
		case a < 70: // one more reader
			if len(readers) < 6 {
				startReader("")
			}
		case a < 80: // kill the writer and a reader together
			if held(writer) {
				break
			}
			if alive(writer) {
				kill(writer, false)
				st.writerKills++
			}
			if len(readers) > 0 {
				i := rng.IntN(len(readers))
				kill(readers[i], false)
				st.readerKills++
				readers = append(readers[:i], readers[i+1:]...)
			}
			startWriter(false, 0)
			startReader("")
		case a < 85: // a second writer while one holds the lease must be refused
			if alive(writer) {
				if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("w-%d.json", writer.gen))); err == nil {
					p := &soakProc{name: "intruder writer"}
					start(p, "soak-writer", "EDGEIPC_SOAK_INTRUDER=1", fmt.Sprint("EDGEIPC_SOAK_HOLDER=", writer.gen))
					st.intruders++
					select {
					case <-p.done:
					case <-time.After(scale(30 * time.Second)):
						errorf("%s: intruder writer did not finish", desc)
					}
				}
			}
		case a < 90: // every reader dies (the writer runs free), new ones join
			for _, p := range readers {
				kill(p, false)
				st.readerKills++
			}
			readers = readers[:0]
			for k := 1 + rng.IntN(2); k > 0; k-- {
				startReader("")
			}
		default:
			if len(readers) == 0 {
				startReader("")
			}
		}
	}
	check()
	if failed {
		t.Logf("%s: %+v", desc, r.Inspect())
		return
	}

	// Liveness: no more chaos. The writer dies, a few readers die too
	// (their entries stay behind, maybe counted asleep), a new reader
	// joins, and a new writer must get N frames to it and to every
	// surviving reader within a bounded time.
	if alive(writer) {
		kill(writer, true)
		st.writerKills++
	}
	for k := rng.IntN(3); k > 0 && len(readers) > 0; k-- {
		i := rng.IntN(len(readers))
		kill(readers[i], true)
		st.readerKills++
		readers = append(readers[:i], readers[i+1:]...)
	}
	st.newest++
	st.readersStarted++
	nextID++
	fin := &soakProc{name: fmt.Sprintf("final reader %d", nextID), id: nextID}
	finEnv := []string{fmt.Sprint("EDGEIPC_SOAK_ID=", nextID), "EDGEIPC_SOAK_FROM=newest",
		"EDGEIPC_SOAK_METHOD=" + []string{"copy", "zero-copy"}[rng.IntN(2)], "EDGEIPC_SOAK_SPIN=0", "EDGEIPC_SOAK_SLOW=0", "EDGEIPC_SOAK_QUIT=0"}
	{
		// started like the others, with a pipe to wait for its join
		env := append(finEnv, "EDGEIPC_RING="+name, "EDGEIPC_SOAK_DIR="+dir, fmt.Sprint("EDGEIPC_SOAK_SEED=", cseed))
		fin.cmd = child(t, "soak-reader", env...)
		fin.cmd.Stderr = &fin.stderr
		out, _ := fin.cmd.StdoutPipe()
		fin.done = make(chan struct{})
		if err := fin.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, fin)
		go func() { fin.err = fin.cmd.Wait(); close(fin.done) }()
		waitLine(t, out, "joined")
	}
	readers = append(readers, fin)
	limit := scale(60 * time.Second)
	// Every surviving reader must have joined before the final writer
	// starts: one started just before this phase may still be starting
	// (a race-detector binary under load takes a while), and joining
	// From Newest after the final writer's last frame it would wait for
	// frames that never come (the check below then failed the soak).
	for _, p := range readers {
		for until := time.Now().Add(limit); ; {
			listed := false
			for _, ri := range r.Inspect().Readers {
				listed = listed || ri.PID == p.cmd.Process.Pid && !ri.Joining
			}
			if listed || exited(p) {
				break
			}
			if time.Now().After(until) {
				errorf("%s: %s did not join within %v: %+v\n%s", desc, p.name, limit, r.Inspect(), p.stderr.String())
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	const n = 500
	fw := startWriter(true, n)
	select {
	case <-fw.done:
	case <-time.After(limit):
		errorf("%s: final writer did not write %d frames within %v (stuck?): %+v\n%s", desc, n, limit, r.Inspect(), fw.stderr.String())
	}
	for _, p := range readers {
		select {
		case <-p.done:
		case <-time.After(limit):
			errorf("%s: %s did not get the final writer's %d frames within %v (asleep?): %+v\n%s", desc, p.name, n, limit, r.Inspect(), p.stderr.String())
		}
	}
	check()
	if failed {
		return
	}

	// Across readers and writers: each writer generation's frames lie
	// between its first sequence and the next generation's, so no sequence
	// number ever stood for two frames; the final writer's frames all
	// reached the final reader (and, under the block policy, every reader
	// that had joined before it started).
	starts := map[uint32]soakWriterStatus{}
	for g := uint32(1); g <= gen; g++ {
		var ws soakWriterStatus
		if b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("w-%d.json", g))); err == nil && json.Unmarshal(b, &ws) == nil {
			starts[g] = ws
			if ws.Crashed {
				st.crashPoints++
			}
			if ws.Published {
				st.published++
			}
		}
	}
	var gens []uint32
	for g := range starts {
		gens = append(gens, g)
	}
	sort.Slice(gens, func(i, j int) bool { return gens[i] < gens[j] })
	for i := 1; i < len(gens); i++ {
		if a, b := starts[gens[i-1]], starts[gens[i]]; b.Start < a.Start {
			errorf("%s: writer %d started at +%d, before writer %d (+%d)", desc, b.Gen, b.Start, a.Gen, a.Start)
		}
	}
	finalGen := fw.gen
	for id := 1; id <= nextID; id++ {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("r-%d.json", id)))
		if err != nil {
			continue // killed before its first report
		}
		var rep soakReport
		if err := json.Unmarshal(b, &rep); err != nil {
			errorf("%s: reader %d report: %v", desc, id, err)
			continue
		}
		st.frames += rep.Frames
		st.lost += rep.Lost
		st.overwritten += rep.Overwritten
		st.late += rep.Late
		st.maxLateMs = max(st.maxLateMs, rep.MaxLateMs)
		if rep.Quit {
			st.quits++
		}
		for _, run := range rep.Runs {
			ws, ok := starts[run.Gen]
			if !ok {
				errorf("%s: reader %d got frames +%d..+%d of writer %d, which never recorded its lease", desc, id, run.First, run.Last, run.Gen)
				continue
			}
			if run.Base != ws.Start {
				errorf("%s: reader %d got writer %d's frames at +%d..+%d numbered from +%d; the writer started at +%d", desc, id, run.Gen, run.First, run.Last, run.Base, ws.Start)
			}
			for _, g := range gens {
				if g > run.Gen && run.Last >= starts[g].Start {
					errorf("%s: reader %d got writer %d's frame +%d, but writer %d started at +%d: a sequence number stood for two frames", desc, id, run.Gen, run.Last, g, starts[g].Start)
				}
			}
			if run.Gen == finalGen && pol == Block && rep.Joined <= ws.Start && !rep.Quit && run.Count != n {
				errorf("%s: reader %d (joined at +%d) got %d of the final writer's %d frames (+%d..+%d)", desc, id, rep.Joined, run.Count, n, run.First, run.Last)
			}
		}
		if rep.ID == fin.id && !rep.Done {
			errorf("%s: the final reader did not get the final writer's last frame: %+v", desc, rep)
		}
	}
	if !failed {
		st.finalChecks++
	}
}
