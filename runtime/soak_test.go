//go:build linux

package runtime

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/internal/mq"
	"github.com/edgeipc/edgeipc/internal/qemuwatch"
	"github.com/edgeipc/edgeipc/runtime/control"
	"github.com/edgeipc/edgeipc/shm"
)

// TestRuntimeSoak is a randomized chaos soak of a real runtime process (this
// test binary re-executed, see main_test.go). Its configuration has exec
// sources of every framing (this binary again, in the child mode below, and
// a shell script whose background job shares its process group) and three
// FIFO sources, each on its own ring. For -rtsoak the test, at random:
// SIGKILLs exec children and their process groups; lets the children write
// valid records between framing-level garbage (over-long lines, oversized
// len32 records and msgp objects, 0xc1, a broken length), cut records short
// and exit, ignore SIGTERM, leave group members behind; opens and closes
// FIFO writers that write valid records, garbage, partial records and
// broken len32 streams; sends control requests (queries, start, stop,
// restart, reload, unknown sources) and malformed raw messages on the
// request queue; rewrites the config file (sources and rings added and
// removed, restart policies and a ring's geometry changed, an invalid file)
// and sends SIGHUP; sends SIGUSR1.
//
// Readers on the rings check every frame: a record carries its source, its
// writer's generation and sequence number, its frame type and a CRC-32, so
// garbage that came through as a frame, or a record torn or spliced, is
// seen. On the block-policy rings no frame may be lost and, per writer, the
// records arrive in order; from the exec children and the well-behaved FIFO
// every record arrives without a gap (a record cut short by a dying child
// never becomes a frame, whatever the framing). Only the FIFO whose writers leave partial records
// may show spliced frames, at most one per partial record, and there the
// source's frames plus bad records equal the complete lines written plus
// the partial records it counted (cut short by a last writer's close:
// at most those not spliced into a frame). At the
// end the well-behaved FIFO's frames equal the records written and bad
// control messages equal those sent.
//
// Throughout, the runtime must answer ping within a bounded time, and its
// open descriptors and threads must not grow (late vs early, with slack).
// After SIGTERM it must exit 0 within shutdown_timeout and leave no
// segment, control queue, FIFO or process behind.
//
// The default run is short; soak by hand with e.g.
//
//	go test -run RuntimeSoak ./runtime -rtsoak 3m
//
// -rtsoakseed repeats the parent's choices (the children's timing is not
// reproducible).
var (
	rtSoakFor  = flag.Duration("rtsoak", 3*time.Second, "TestRuntimeSoak: how long to run the chaos")
	rtSoakSeed = flag.Uint64("rtsoakseed", 0, "TestRuntimeSoak: seed for the parent's random choices (0: from the clock)")
)

// soakChildEnv selects the exec child mode of this binary. It is checked in
// init, before TestMain: the child inherits the runtime's environment,
// which holds childEnv (the runtime's own child mode).
const soakChildEnv = "EDGEIPC_SOAK_CHILD"

func init() {
	if mode := os.Getenv(soakChildEnv); mode != "" {
		os.Exit(soakExecChild(mode))
	}
}

// A soak record is ASCII, no newline:
//
//	R <source> <gen 16 hex> <seq> <type> <filler> <crc 8 hex>
//
// where the CRC-32 covers everything before the last space, type is the
// frame type it must arrive with, and gen is random per writer.
func soakRecord(src string, gen, seq uint64, typ uint32, fill int, rnd *rand.Rand) []byte {
	b := fmt.Appendf(nil, "R %s %016x %d %d ", src, gen, seq, typ)
	for range fill {
		b = append(b, byte('a'+rnd.IntN(26)))
	}
	if fill == 0 {
		b = append(b, '-')
	}
	return fmt.Appendf(b, " %08x", crc32.ChecksumIEEE(b))
}

type soakRec struct {
	src      string
	gen, seq uint64
	typ      uint32
}

func soakParse(p []byte) (soakRec, bool) {
	var r soakRec
	i := bytes.LastIndexByte(p, ' ')
	if i < 0 || len(p)-i-1 != 8 {
		return r, false
	}
	crc, err := strconv.ParseUint(string(p[i+1:]), 16, 32)
	if err != nil || uint32(crc) != crc32.ChecksumIEEE(p[:i]) {
		return r, false
	}
	f := strings.Fields(string(p[:i]))
	if len(f) != 6 || f[0] != "R" {
		return r, false
	}
	r.src = f[1]
	g, err1 := strconv.ParseUint(f[2], 16, 64)
	s, err2 := strconv.ParseUint(f[3], 10, 64)
	t, err3 := strconv.ParseUint(f[4], 10, 32)
	if err1 != nil || err2 != nil || err3 != nil {
		return r, false
	}
	r.gen, r.seq, r.typ = g, s, uint32(t)
	return r, true
}

// msgpMapType is the frame type of the records an msgp child sends as maps.
const msgpMapType = 5

// soakMaxSkip is max_skip of the len32 and msgp sources.
const soakMaxSkip = 8192

// backoffKeys are the restart delay lines of a soak exec source: none
// with restart = "never", which has no use for them (the check refuses
// them there).
func backoffKeys(restart string) string {
	if restart == "never" {
		return ""
	}
	return "backoff_min = \"20ms\"\nbackoff_max = \"400ms\"\nbackoff_reset = \"2s\"\n"
}

// maxSkipKey is the max_skip line of a soak source of framing: none for
// lines, which has no use for it (the check refuses it there).
func maxSkipKey(framing string) string {
	if framing == "lines" {
		return ""
	}
	return fmt.Sprintf("max_skip = %d\n", soakMaxSkip)
}

func msgpBin(p []byte) []byte { return append([]byte{0xc4, byte(len(p))}, p...) }

// soakExecChild is an exec source's child: it waits for $SOAK_GO to exist,
// then writes records in the framing mode between garbage of that framing
// until it ends its life one way or another (or is killed).
func soakExecChild(mode string) int {
	src := os.Getenv("EDGEIPC_SOURCE")
	payload, _ := strconv.Atoi(os.Getenv("EDGEIPC_SLOT_PAYLOAD"))
	typ, _ := strconv.Atoi(os.Getenv("SOAK_TYPE"))
	gofile := os.Getenv("SOAK_GO")
	if src == "" || payload < 128 || gofile == "" {
		fmt.Fprintln(os.Stderr, "soak child: bad environment")
		return 9
	}
	rnd := rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(time.Now().UnixNano())))
	gen := rnd.Uint64()
	if rnd.IntN(8) == 0 {
		signal.Ignore(syscall.SIGTERM) // the runtime must SIGKILL it after stop_timeout
	}
	switch rnd.IntN(10) {
	case 0: // a group member that outlives the child
		exec.Command("sleep", "600").Start()
	case 1: // one that ignores SIGTERM and holds the stdout pipe
		c := exec.Command("sh", "-c", "trap '' TERM; sleep 600")
		c.Stdout = os.Stdout
		c.Start()
	}
	for {
		if _, err := os.Stat(gofile); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	out := os.Stdout
	write := func(b []byte) {
		if _, err := out.Write(b); err != nil {
			os.Exit(8) // the runtime closed the pipe (broken stream)
		}
	}
	letters := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('a' + rnd.IntN(26))
		}
		return b
	}
	var seq uint64
	encode := func() []byte {
		t := uint32(typ)
		asMap := mode == "msgp" && rnd.IntN(3) == 0
		if asMap {
			t = msgpMapType
		}
		rec := soakRecord(src, gen, seq, t, rnd.IntN(payload-90), rnd)
		seq++
		switch mode {
		case "lines":
			return append(rec, '\n')
		case "len32":
			return append(binary.LittleEndian.AppendUint32(nil, uint32(len(rec))), rec...)
		}
		switch {
		case asMap:
			b := []byte{0x82, 0xa4, 't', 'y', 'p', 'e', msgpMapType, 0xa4, 'd', 'a', 't', 'a'}
			return append(b, msgpBin(rec)...)
		case rnd.IntN(2) == 0:
			return append([]byte{0xd9, byte(len(rec))}, rec...) // str8
		}
		return msgpBin(rec)
	}
	garbage := func() []byte {
		switch mode {
		case "lines": // an over-long line
			return append(letters(payload+1+rnd.IntN(3000)), '\n')
		case "len32": // an oversized record, skipped
			n := payload + 1 + rnd.IntN(soakMaxSkip-payload)
			return append(binary.LittleEndian.AppendUint32(nil, uint32(n)), letters(n)...)
		}
		switch rnd.IntN(6) {
		case 0:
			return []byte{0x05} // an int
		case 1:
			return []byte{0x92, 0x01, 0x02} // an array
		case 2:
			return []byte{0x81, 0xa4, 't', 'y', 'p', 'e', 0x01} // a map without data
		case 3:
			return []byte{0xc0} // nil
		case 4:
			return []byte{0x93, 0x01, 0xc1} // broken by 0xc1: dropped through it
		}
		n := payload + 1 + rnd.IntN(soakMaxSkip-payload) // an oversized bin, skipped
		return append([]byte{0xc5, byte(n >> 8), byte(n)}, letters(n)...)
	}
	broken := func() []byte {
		if mode == "len32" {
			return binary.LittleEndian.AppendUint32(nil, 1<<30)
		}
		return []byte{0xc6, 0x40, 0, 0, 0} // bin32 of 1 GiB
	}
	life := 20 + rnd.IntN(3000)
	for range life {
		r := rnd.IntN(1000)
		switch {
		case r < 60:
			write(garbage())
		case r < 62 && mode != "lines":
			write(broken()) // the runtime restarts us
		case r < 75:
			fmt.Fprintf(os.Stderr, "soak child %016x at record %d\n", gen, seq)
		case r < 76:
			os.Stderr.Write(append(letters(100<<10), '\n')) // logged truncated
		default:
			write(encode())
		}
		if n := rnd.IntN(4); n > 0 {
			time.Sleep(time.Duration(n) * 700 * time.Microsecond)
		}
	}
	switch rnd.IntN(4) {
	case 0:
		return 0
	case 1:
		return 1
	}
	rec := encode()
	write(rec[:1+rnd.IntN(len(rec)-1)]) // a partial record, then the end
	if rnd.IntN(2) == 0 {
		time.Sleep(time.Duration(200+rnd.IntN(800)) * time.Millisecond)
	}
	return 2
}

// soakRing is what a test reader saw on one ring.
type soakRing struct {
	name, src string
	block     bool // block policy: no frame may be lost
	strict    bool // every frame must be a valid record of src
	gapless   bool // per generation, sequence numbers 0, 1, 2, ... without a gap
	ordered   bool // per generation, sequence numbers increase

	mu      sync.Mutex
	frames  uint64
	valid   uint64
	corrupt uint64
	lost    uint64
	gaps    uint64
	next    map[uint64]uint64 // gen -> next expected seq
	count   map[uint64]uint64 // gen -> valid records
	errs    []string
}

func (r *soakRing) fail(format string, args ...any) {
	if len(r.errs) < 10 {
		r.errs = append(r.errs, fmt.Sprintf("ring %s: ", r.name)+fmt.Sprintf(format, args...))
	}
}

func (r *soakRing) check(f shm.Frame) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.frames++
	r.lost += uint64(f.Lost)
	if f.Lost > 0 && r.block {
		r.fail("lost %d frames before seq %d on a block-policy ring", f.Lost, f.Seq)
	}
	rec, ok := soakParse(f.Data)
	if !ok {
		r.corrupt++
		if r.strict {
			r.fail("frame seq %d is not a valid record: %q", f.Seq, trunc(f.Data))
		}
		return
	}
	r.valid++
	if rec.src != r.src {
		r.fail("frame seq %d is a record of source %s, not %s", f.Seq, rec.src, r.src)
	}
	if rec.typ != f.Type {
		r.fail("frame seq %d has type %d, its record says %d", f.Seq, f.Type, rec.typ)
	}
	r.count[rec.gen]++
	want, seen := r.next[rec.gen]
	r.next[rec.gen] = rec.seq + 1
	switch {
	case r.gapless && rec.seq != want:
		r.fail("writer %016x: record %d after %d (want %d): lost, duplicated or reordered", rec.gen, rec.seq, int64(want)-1, want)
	case r.ordered && seen && rec.seq < want:
		r.fail("writer %016x: record %d after %d: duplicated or reordered", rec.gen, rec.seq, want-1)
	case rec.seq != want:
		r.gaps++
	}
}

func trunc(b []byte) string {
	if len(b) > 120 {
		return string(b[:120]) + "…"
	}
	return string(b)
}

// read reads the ring until stop is closed.
func (r *soakRing) read(t *testing.T, e *env, stop <-chan struct{}, joined chan<- struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	rd, err := shm.OpenReader(r.name, e.sopts(), &shm.ReaderOptions{From: shm.Oldest})
	if err != nil {
		r.mu.Lock()
		r.fail("open reader: %v", err)
		r.mu.Unlock()
		close(joined)
		return
	}
	defer rd.Close()
	close(joined)
	buf := make([]byte, rd.Ring().SlotPayload())
	for {
		select {
		case <-stop:
			return
		default:
		}
		f, err := rd.ReadIntoDeadline(time.Now().Add(100*time.Millisecond), buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			r.mu.Lock()
			r.fail("read: %v", err)
			r.mu.Unlock()
			return
		}
		r.check(f)
	}
}

// soakVariant is one version of the config file.
type soakVariant struct {
	linesRestart, msgpRestart string
	extra                     bool // exec source "extra" on ring "extra"
	extraSlots                int
	synth                     bool // synthetic source "synth" on ring "syn"
	stats                     string
	invalid                   bool
}

var soakBase = soakVariant{linesRestart: "always", msgpRestart: "always", extraSlots: 16, stats: "1s"}

type soakPaths struct {
	exe, gofile, shScript, extraScript string
	fgood, fchaos, flen                string
}

func (v soakVariant) config(p soakPaths) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[runtime]\nstats_interval = %q\nshutdown_timeout = \"20s\"\n", v.stats)
	ring := func(name string, slots int, policy string) {
		fmt.Fprintf(&b, "[rings.%s]\nslots = %d\nslot_payload = 256\npolicy = %q\nremove_on_exit = true\n", name, slots, policy)
	}
	ring("exlines", 64, "block")
	ring("exlen", 64, "block")
	ring("exmsgp", 64, "block")
	ring("sh", 16, "overwrite")
	ring("fgood", 64, "block")
	ring("fchaos", 64, "block")
	ring("flen", 64, "block")
	execSrc := func(name, ring, framing, restart string, typ int, mode string) {
		fmt.Fprintf(&b, `[[sources]]
name = %q
kind = "exec"
ring = %q
type = %d
framing = %q
%srestart = %q
%sstop_timeout = "1s"
command = [%q, "-test.run=^$"]
env = ["%s=%s", "SOAK_GO=%s", "SOAK_TYPE=%d"]
`, name, ring, typ, framing, maxSkipKey(framing), restart, backoffKeys(restart), p.exe, soakChildEnv, mode, p.gofile, typ)
	}
	execSrc("ex-lines", "exlines", "lines", v.linesRestart, 1, "lines")
	execSrc("ex-len32", "exlen", "len32", "always", 2, "len32")
	execSrc("ex-msgp", "exmsgp", "msgp", v.msgpRestart, 3, "msgp")
	fmt.Fprintf(&b, "[[sources]]\nname = \"ex-sh\"\nkind = \"exec\"\nring = \"sh\"\ntype = 8\nbackoff_min = \"20ms\"\nbackoff_max = \"400ms\"\nstop_timeout = \"1s\"\ncommand = [\"sh\", %q]\n", p.shScript)
	fifo := func(name, ring, framing, path string, typ int) {
		fmt.Fprintf(&b, "[[sources]]\nname = %q\nkind = \"fifo\"\nring = %q\ntype = %d\nframing = %q\n%spath = %q\nremove_on_exit = true\n",
			name, ring, typ, framing, maxSkipKey(framing), path)
	}
	fifo("fifo-good", "fgood", "lines", p.fgood, 4)
	fifo("fifo-chaos", "fchaos", "lines", p.fchaos, 6)
	fifo("fifo-len32", "flen", "len32", p.flen, 7)
	if v.extra {
		ring("extra", v.extraSlots, "overwrite")
		fmt.Fprintf(&b, "[[sources]]\nname = \"extra\"\nkind = \"exec\"\nring = \"extra\"\ntype = 9\nrestart = \"on-failure\"\nbackoff_min = \"20ms\"\nstop_timeout = \"1s\"\ncommand = [\"sh\", %q]\n", p.extraScript)
	}
	if v.synth {
		ring("syn", 16, "overwrite")
		b.WriteString("[[sources]]\nname = \"synth\"\nkind = \"synthetic\"\nring = \"syn\"\nrate_hz = 200\nsize = 32\n")
	}
	if v.invalid {
		b.WriteString("[runtime]\nbogus = 1\n") // a duplicate table and an unknown key
	}
	return b.String()
}

// shScript writes records of source src (gen fixed, seq 0..9 over and
// over) and now and then an over-long line, with a background job in its
// process group that holds its stdout.
func shScript(src string, typ uint32, gofile string, rnd *rand.Rand) string {
	var b strings.Builder
	fmt.Fprintf(&b, "sleep 600 &\nwhile [ ! -e %q ]; do sleep 0.05; done\ni=0\nwhile :; do\n", gofile)
	for seq := range 10 {
		fmt.Fprintf(&b, "  echo '%s'\n", soakRecord(src, 0x5348, uint64(seq), typ, rnd.IntN(100), rnd))
	}
	fmt.Fprintf(&b, "  i=$((i+1))\n  if [ $((i %% 5)) -eq 3 ]; then echo '%s'; fi\n  sleep 0.02\ndone\n", strings.Repeat("x", 400))
	return b.String()
}

// procCounts returns the number of open descriptors and threads of pid.
func procCounts(pid int) (fds, threads int) {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	fds = len(ents)
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			threads, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return
}

// procStat returns the ppid and pgid of pid.
func procStat(pid int) (ppid, pgid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 3 || f[0] == "Z" {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	pgid, _ = strconv.Atoi(f[2])
	return ppid, pgid, true
}

// leftovers lists live processes other than this one whose environment
// holds marker (EDGEIPC_SHM_DIR=<this test's directory>): the runtime and
// everything it started, and their descendants.
func leftovers(marker string) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == os.Getpid() || !pidAlive(pid) {
			continue
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil || !bytes.Contains(append(append([]byte{0}, env...), 0), []byte("\x00"+marker+"\x00")) {
			continue
		}
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		out = append(out, fmt.Sprintf("%d %s", pid, bytes.ReplaceAll(cmd, []byte{0}, []byte{' '})))
	}
	return out
}

// soakFIFO is one FIFO's writers' accounting.
type soakFIFO struct {
	path     string
	written  map[uint64]uint64 // gen -> records written (complete, one write each)
	valid    uint64            // valid records written
	lines    uint64            // newline-terminated lines written (lines framing)
	partials uint64            // partial records written (then the writer closed)
	overlong uint64
	garbage  uint64 // len32: oversized records
	broken   uint64 // len32: broken lengths
	sessions uint64
	mu       sync.Mutex
}

// openFIFOWriter opens path for writing without blocking (retrying while
// the source does not read it) until stop.
func openFIFOWriter(path string, stop <-chan struct{}) (*os.File, error) {
	for {
		fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err == nil {
			return os.NewFile(uintptr(fd), path), nil
		}
		if !errors.Is(err, unix.ENXIO) && !errors.Is(err, unix.ENOENT) {
			return nil, err
		}
		select {
		case <-stop:
			return nil, nil
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// fifoWriter runs writer sessions on one FIFO until stop: kind "good"
// writes only valid records, "chaos" also over-long lines and ends some
// sessions with a partial record, "len32" writes len32 records with
// oversized ones and broken lengths among them.
func (fs *soakFIFO) writer(t *testing.T, kind, src string, typ uint32, seed uint64, stop <-chan struct{}, errc chan<- error) {
	rnd := rand.New(rand.NewPCG(seed, 7))
	for {
		select {
		case <-stop:
			return
		default:
		}
		f, err := openFIFOWriter(fs.path, stop)
		if err != nil || f == nil {
			if err != nil {
				errc <- fmt.Errorf("open %s: %w", fs.path, err)
			}
			return
		}
		gen := rnd.Uint64()
		fs.mu.Lock()
		fs.sessions++
		fs.mu.Unlock()
		var seq uint64
		rec := func() []byte {
			r := soakRecord(src, gen, seq, typ, rnd.IntN(150), rnd)
			seq++
			return r
		}
		write := func(b []byte, valid, lines uint64) bool {
			f.SetWriteDeadline(time.Now().Add(wait))
			if _, err := f.Write(b); err != nil {
				errc <- fmt.Errorf("write %s: %w", fs.path, err)
				return false
			}
			fs.mu.Lock()
			fs.written[gen] += valid
			fs.valid += valid
			fs.lines += lines
			fs.mu.Unlock()
			return true
		}
		n := 1 + rnd.IntN(60)
		ok := true
		for i := 0; i < n && ok; i++ {
			switch {
			case kind == "chaos" && rnd.IntN(12) == 0:
				ok = write(append(bytes.Repeat([]byte("y"), 257+rnd.IntN(3500)), '\n'), 0, 1)
				fs.mu.Lock()
				fs.overlong++
				fs.mu.Unlock()
			case kind == "len32" && rnd.IntN(12) == 0:
				n := 257 + rnd.IntN(3500)
				ok = write(append(binary.LittleEndian.AppendUint32(nil, uint32(n)), bytes.Repeat([]byte("z"), n)...), 0, 0)
				fs.mu.Lock()
				fs.garbage++
				fs.mu.Unlock()
			case kind == "len32" && rnd.IntN(40) == 0:
				ok = write(binary.LittleEndian.AppendUint32(nil, 1<<30), 0, 0)
				fs.mu.Lock()
				fs.broken++
				fs.mu.Unlock()
			case kind == "len32":
				r := rec()
				ok = write(append(binary.LittleEndian.AppendUint32(nil, uint32(len(r))), r...), 1, 0)
			default: // a few complete lines in one write (< PIPE_BUF)
				var b []byte
				k := 1 + rnd.IntN(5)
				for range k {
					b = append(append(b, rec()...), '\n')
				}
				ok = write(b, uint64(k), uint64(k))
			}
			if d := rnd.IntN(6); d > 0 {
				time.Sleep(time.Duration(d) * time.Millisecond)
			}
		}
		if ok && kind == "chaos" && rnd.IntN(3) == 0 {
			r := rec()
			if write(r[:1+rnd.IntN(len(r)-1)], 0, 0) {
				fs.mu.Lock()
				fs.partials++
				fs.mu.Unlock()
			}
		}
		f.Close()
		if !ok {
			return
		}
		select {
		case <-stop:
			return
		case <-time.After(time.Duration(rnd.IntN(40)) * time.Millisecond):
		}
	}
}

func TestRuntimeSoak(t *testing.T) {
	seed := *rtSoakSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("rtsoak %v, seed %d (-rtsoakseed)", *rtSoakFor, seed)
	rnd := rand.New(rand.NewPCG(seed, 1))
	e := newEnv(t)
	exe, err := filepath.Abs(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	p := soakPaths{
		exe:         exe,
		gofile:      filepath.Join(e.dir, "go"),
		shScript:    filepath.Join(e.dir, "sh.sh"),
		extraScript: filepath.Join(e.dir, "extra.sh"),
		fgood:       filepath.Join(e.dir, "good.fifo"),
		fchaos:      filepath.Join(e.dir, "chaos.fifo"),
		flen:        filepath.Join(e.dir, "len32.fifo"),
	}
	if err := os.WriteFile(p.shScript, []byte(shScript("ex-sh", 8, p.gofile, rnd)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.extraScript, []byte(shScript("extra", 9, p.gofile, rnd)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(e.dir, "soak.toml")
	writeCfg := func(v soakVariant) {
		tmp := cfgPath + ".tmp"
		if err := os.WriteFile(tmp, []byte(v.config(p)), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, cfgPath); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg(soakBase)
	c := startChild(t, cfgPath)
	c.log.waitFor(t, "runtime ready", 1)
	rpid := c.cmd.Process.Pid
	dead := func() bool {
		select {
		case err := <-c.done:
			c.done <- err
			return true
		default:
			return false
		}
	}

	// Readers join every ring before any record is written.
	rings := []*soakRing{
		{name: "exlines", src: "ex-lines", block: true, strict: true, gapless: true},
		{name: "exlen", src: "ex-len32", block: true, strict: true, gapless: true},
		{name: "exmsgp", src: "ex-msgp", block: true, strict: true, gapless: true},
		{name: "sh", src: "ex-sh", strict: true},
		{name: "fgood", src: "fifo-good", block: true, strict: true, gapless: true},
		{name: "fchaos", src: "fifo-chaos", block: true, ordered: true},
		{name: "flen", src: "fifo-len32", block: true, strict: true, ordered: true},
	}
	byName := map[string]*soakRing{}
	stopReaders := make(chan struct{})
	var readers sync.WaitGroup
	for _, r := range rings {
		r.next, r.count = map[uint64]uint64{}, map[uint64]uint64{}
		byName[r.name] = r
		joined := make(chan struct{})
		readers.Add(1)
		go r.read(t, e, stopReaders, joined, &readers)
		<-joined
	}
	defer func() { // on an early failure
		select {
		case <-stopReaders:
		default:
			close(stopReaders)
		}
		readers.Wait()
	}()
	if err := os.WriteFile(p.gofile, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	// A runtime that stops answering is sent SIGQUIT: its goroutine dump
	// is in its log, which the test prints when it fails.
	var quitOnce sync.Once
	stalled := func() {
		quitOnce.Do(func() {
			c.log.Write([]byte("TEST: the runtime did not answer a control request within " + wait.String() + "; sending SIGQUIT\n"))
			c.cmd.Process.Signal(syscall.SIGQUIT)
		})
	}
	client, err := control.Dial(e.queue)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	call := func(cmd string, args ...string) (*control.Reply, error) {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		r, err := client.Call(ctx, cmd, args...)
		if err != nil {
			stalled()
		}
		return r, err
	}
	sources := func() map[string]control.SourceStat {
		r, err := call("sources")
		if err != nil {
			t.Fatalf("ctl sources: %v", err)
		}
		m := map[string]control.SourceStat{}
		for _, s := range r.Sources {
			m[s.Name] = s
		}
		return m
	}
	execNames := []string{"ex-lines", "ex-len32", "ex-msgp", "ex-sh"}
	allRunning := func() bool {
		m := sources()
		for _, n := range execNames {
			if m[n].State != StateRunning || m[n].PID == 0 {
				return false
			}
		}
		for _, n := range []string{"fifo-good", "fifo-chaos", "fifo-len32"} {
			if m[n].State != StateRunning {
				return false
			}
		}
		return true
	}
	eventually(t, "every source running", allRunning)
	fds0, threads0 := procCounts(rpid)

	// The monitor: ping (and status) all the time, and sample descriptors
	// and threads.
	type sample struct {
		at           time.Duration
		fds, threads int
	}
	var (
		monMu   sync.Mutex
		samples []sample
		maxGap  time.Duration
		pings   int
		monErrs []string
	)
	began := time.Now()
	stopMon := make(chan struct{})
	monDone := make(chan struct{})
	go func() {
		defer close(monDone)
		mc, err := control.Dial(e.queue)
		if err != nil {
			monMu.Lock()
			monErrs = append(monErrs, "monitor dial: "+err.Error())
			monMu.Unlock()
			return
		}
		defer mc.Close()
		last := time.Now()
		lastSample := time.Time{}
		for i := 0; ; i++ {
			select {
			case <-stopMon:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if dead() {
				monMu.Lock()
				monErrs = append(monErrs, "the runtime process exited during the soak")
				monMu.Unlock()
				return
			}
			cmd := "ping"
			if i%5 == 0 {
				cmd = "status"
			}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			r, err := mc.Call(ctx, cmd)
			cancel()
			now := time.Now()
			monMu.Lock()
			if err == nil && r.OK && (cmd != "status" || r.Status.PID == rpid) {
				pings++
				maxGap = max(maxGap, now.Sub(last))
				last = now
			} else {
				monErrs = append(monErrs, fmt.Sprintf("%s at %v: reply %+v, error %v", cmd, now.Sub(began).Round(time.Millisecond), r, err))
				if err != nil {
					monMu.Unlock()
					stalled()
					return
				}
			}
			if now.Sub(lastSample) >= 250*time.Millisecond {
				fds, th := procCounts(rpid)
				samples = append(samples, sample{now.Sub(began), fds, th})
				lastSample = now
			}
			monMu.Unlock()
		}
	}()

	// FIFO writers.
	fifos := map[string]*soakFIFO{}
	for _, f := range []struct{ path, ring string }{{p.fgood, "fgood"}, {p.fchaos, "fchaos"}, {p.flen, "flen"}} {
		fifos[f.ring] = &soakFIFO{path: f.path, written: map[uint64]uint64{}}
	}
	stopWriters := make(chan struct{})
	var writers sync.WaitGroup
	defer func() { // on an early failure
		select {
		case <-stopWriters:
		default:
			close(stopWriters)
		}
		writers.Wait()
	}()
	writerErrs := make(chan error, 16)
	startWriter := func(ring, kind, src string, typ uint32) {
		writers.Add(1)
		s := rnd.Uint64()
		go func() { defer writers.Done(); fifos[ring].writer(t, kind, src, typ, s, stopWriters, writerErrs) }()
	}
	startWriter("fgood", "good", "fifo-good", 4)
	startWriter("fgood", "good", "fifo-good", 4)
	startWriter("fchaos", "chaos", "fifo-chaos", 6)
	startWriter("fchaos", "chaos", "fifo-chaos", 6)
	startWriter("flen", "len32", "fifo-len32", 7)

	// Malformed raw requests: some name a reply queue of ours, which gets
	// bad_request answers.
	rawReq, err := mq.Open(e.queue, os.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer rawReq.Close()
	rawReplyName := fmt.Sprintf("edgeipc.reply.%d.%08x", os.Getpid(), rnd.Uint32())
	rawReply, err := mq.Create(rawReplyName, mq.Options{MaxMsg: 10, MsgSize: 1024, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { rawReply.Close(); mq.Unlink(rawReplyName) }()
	var malformed, badReplies uint64
	rawBuf := make([]byte, 1024)
	drainRaw := func() {
		for {
			n, _, err := rawReply.TryReceive(rawBuf)
			if err != nil {
				return
			}
			var r control.Reply
			if _, err := r.UnmarshalMsg(rawBuf[:n]); err != nil {
				t.Errorf("malformed reply on the raw reply queue: %v", err)
			} else if r.OK {
				t.Errorf("an OK reply to a malformed request: %+v", r)
			} else {
				badReplies++
			}
		}
	}
	sendRaw := func() {
		req := control.Request{ID: rnd.Uint64(), Cmd: "status", Reply: rawReplyName, PID: os.Getpid()}
		var msg []byte
		switch rnd.IntN(10) {
		case 0: // random bytes
			msg = make([]byte, 1+rnd.IntN(1024))
			for i := range msg {
				msg[i] = byte(rnd.Uint32())
			}
		case 1:
			msg = []byte{}
		case 2: // a reply queue name the server refuses
			req.Reply = "edgeipc.ctl"
			msg, _ = req.MarshalMsg(nil)
		case 3: // truncated
			b, _ := req.MarshalMsg(nil)
			msg = b[:1+rnd.IntN(len(b)-1)]
		case 4: // trailing bytes: answered with bad_request
			b, _ := req.MarshalMsg(nil)
			msg = append(b, 0xc0)
		case 5:
			req.Cmd = "frobnicate"
			msg, _ = req.MarshalMsg(nil)
		case 6:
			req.Cmd, req.Args = "ping", []string{"x"}
			msg, _ = req.MarshalMsg(nil)
		case 7:
			req.Cmd = "restart" // no argument
			msg, _ = req.MarshalMsg(nil)
		case 8: // a map too large
			msg = []byte{0xde, 0, 65}
			for i := range 65 {
				msg = append(msg, 0xa1, byte('a'+i%26), 0x01)
			}
		case 9: // a wrong type for a field
			msg = []byte{0x82, 0xa2, 'i', 'd', 0xa1, 'x', 0xa5, 'r', 'e', 'p', 'l', 'y'}
			msg = append(append(msg, 0xd9, byte(len(rawReplyName))), rawReplyName...)
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := rawReq.Send(ctx, msg, 0); err != nil {
			t.Errorf("raw send: %v", err)
			return
		}
		malformed++
	}

	killChild := func() bool {
		m := sources()
		var pids []int
		for _, n := range append(execNames, "extra") {
			if s, ok := m[n]; ok && s.PID > 0 {
				pids = append(pids, s.PID)
			}
		}
		if len(pids) == 0 {
			return false
		}
		pid := pids[rnd.IntN(len(pids))]
		// Only a child of our runtime that still leads its group.
		if ppid, pgid, ok := procStat(pid); !ok || ppid != rpid || pgid != pid {
			return false
		}
		unix.Kill(-pid, syscall.SIGKILL)
		return true
	}

	variant := soakBase
	newVariant := func() {
		restarts := []string{"always", "on-failure", "never"}
		switch rnd.IntN(6) {
		case 0:
			variant.linesRestart = restarts[rnd.IntN(3)]
		case 1:
			variant.msgpRestart = restarts[rnd.IntN(3)]
		case 2:
			variant.extra = !variant.extra
		case 3:
			variant.synth = !variant.synth
		case 4:
			variant.extraSlots = 48 - variant.extraSlots // 16 <-> 32: recreated
		case 5:
			variant.stats = []string{"0s", "300ms", "1s"}[rnd.IntN(3)]
		}
		v := variant
		v.invalid = rnd.IntN(8) == 0
		writeCfg(v)
	}

	counts := map[string]int{}
	// Under qemu-user every fork risks the emulator's fork deadlock (see
	// internal/qemuwatch), and children start slowly: act less often.
	pace := time.Duration(1)
	if qemuwatch.Emulated() {
		pace = 4
	}
	deadline := time.Now().Add(*rtSoakFor)
	for time.Now().Before(deadline) && !t.Failed() {
		if dead() {
			t.Fatalf("the runtime process exited during the soak")
		}
		drainRaw()
		select {
		case err := <-writerErrs:
			t.Fatalf("FIFO writer: %v", err)
		default:
		}
		r := rnd.IntN(100)
		switch {
		case r < 12:
			if killChild() {
				counts["SIGKILL child group"]++
			}
		case r < 30:
			cmd := []string{"status", "rings", "sources", "ping"}[rnd.IntN(4)]
			rep, err := call(cmd)
			if err != nil || !rep.OK {
				t.Errorf("ctl %s: reply %+v, error %v", cmd, rep, err)
			}
			counts["ctl "+cmd]++
		case r < 38:
			cmd := []string{"restart", "stop", "start"}[rnd.IntN(3)]
			name := append(execNames, "extra", "synth")[rnd.IntN(6)]
			rep, err := call(cmd, name)
			if err != nil {
				t.Errorf("ctl %s %s: %v", cmd, name, err)
			} else if rep.Code != "" && rep.Code != control.CodeFailed && rep.Code != control.CodeNotFound {
				t.Errorf("ctl %s %s: %+v", cmd, name, rep)
			}
			counts["ctl "+cmd]++
		case r < 40:
			rep, err := call("start", "nosuch")
			if err != nil || rep.Code != control.CodeNotFound {
				t.Errorf("ctl start nosuch: reply %+v, error %v", rep, err)
			}
			counts["ctl start unknown"]++
		case r < 55:
			sendRaw()
			counts["malformed request"]++
		case r < 58:
			newVariant()
			c.cmd.Process.Signal(syscall.SIGHUP)
			counts["SIGHUP"]++
		case r < 59:
			newVariant()
			if _, err := call("reload"); err != nil {
				t.Errorf("ctl reload: %v", err)
			}
			counts["ctl reload"]++
		case r < 62:
			c.cmd.Process.Signal(syscall.SIGUSR1)
			counts["SIGUSR1"]++
		}
		time.Sleep(pace * time.Duration(5+rnd.IntN(40)) * time.Millisecond)
	}

	// Quiesce: writers stop, the base config is back, every source runs.
	close(stopWriters)
	writers.Wait()
	select {
	case err := <-writerErrs:
		t.Fatalf("FIFO writer: %v", err)
	default:
	}
	variant = soakBase
	writeCfg(variant)
	if rep, err := call("reload"); err != nil || !rep.OK {
		t.Fatalf("ctl reload of the base config: reply %+v, error %v", rep, err)
	}
	eventually(t, "every source running again", func() bool {
		for n, s := range sources() {
			if s.State != StateRunning {
				call("start", n)
			}
		}
		return allRunning()
	})
	// The chaos may have kept an exec source stopped or restarting for most
	// of a short run: give each the time to deliver a record now (the FIFO
	// writers have stopped; they wrote all through the run).
	eventually(t, "a valid record on every exec ring", func() bool {
		for _, r := range rings {
			if _, v := r.counts(); v == 0 && strings.HasPrefix(r.src, "ex-") && r.name != "sh" {
				return false
			}
		}
		return true
	})
	close(stopMon)
	<-monDone
	fds1, threads1 := procCounts(rpid)

	// The FIFO rings: everything written has been read.
	var fst map[string]control.SourceStat
	eventually(t, "the FIFO sources to read what was written", func() bool {
		fst = sources()
		g, ch := fifos["fgood"], fifos["fchaos"]
		chaos := fst["fifo-chaos"].Frames + fst["fifo-chaos"].Bad
		return fst["fifo-good"].Frames == g.valid && chaos >= ch.lines && chaos <= ch.lines+ch.partials &&
			byName["fgood"].frames64() == fst["fifo-good"].Frames && byName["fchaos"].frames64() == fst["fifo-chaos"].Frames &&
			byName["flen"].frames64() == fst["fifo-len32"].Frames
	})
	time.Sleep(200 * time.Millisecond)
	fst = sources()
	st, err := call("status")
	if err != nil {
		t.Fatal(err)
	}

	// SIGTERM: exit 0 within shutdown_timeout, nothing left behind.
	termAt := time.Now()
	c.cmd.Process.Signal(syscall.SIGTERM)
	code := c.exit(t)
	took := time.Since(termAt)
	close(stopReaders)
	readers.Wait()

	// Report.
	monMu.Lock()
	var keys []string
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&sb, " %s %d,", k, counts[k])
	}
	t.Logf("actions:%s", strings.TrimSuffix(sb.String(), ","))
	t.Logf("control: %d pings/status answered, longest gap %v; %d requests, %d bad (malformed sent %d, %d error replies received)",
		pings, maxGap.Round(time.Millisecond), st.Status.Requests, st.Status.BadRequests, malformed, badReplies)
	for _, n := range append(execNames, "fifo-good", "fifo-chaos", "fifo-len32") {
		s := fst[n]
		t.Logf("source %-10s frames %7d bad %5d restarts %4d dropped %d", n, s.Frames, s.Bad, s.Restarts, s.Dropped)
	}
	for _, r := range rings {
		t.Logf("ring %-8s frames %7d valid %7d corrupt %d lost %d gaps %d writers %d", r.name, r.frames, r.valid, r.corrupt, r.lost, r.gaps, len(r.count))
	}
	for _, n := range []string{"fgood", "fchaos", "flen"} {
		f := fifos[n]
		t.Logf("fifo %-6s sessions %d records %d lines %d partial %d overlong %d oversized %d broken %d", n, f.sessions, f.valid, f.lines, f.partials, f.overlong, f.garbage, f.broken)
	}
	t.Logf("runtime: fds %d -> %d, threads %d -> %d (quiesced); shutdown took %v", fds0, fds1, threads0, threads1, took.Round(time.Millisecond))

	// Checks.
	for _, m := range monErrs {
		t.Error(m)
	}
	if maxGap > wait {
		t.Errorf("the runtime did not answer ping for %v", maxGap)
	}
	for _, r := range rings {
		for _, m := range r.errs {
			t.Error(m)
		}
		if r.valid == 0 && r.name != "sh" {
			t.Errorf("ring %s: no valid record arrived", r.name)
		}
	}
	if st.Status.BadRequests != malformed {
		t.Errorf("bad_requests %d, but %d malformed requests were sent", st.Status.BadRequests, malformed)
	}
	// The well-behaved FIFO: every record of every writer, no bad one.
	g := fifos["fgood"]
	if s := fst["fifo-good"]; s.Frames != g.valid || s.Bad != 0 || s.Dropped != 0 {
		t.Errorf("fifo-good: %d frames, %d bad, %d dropped bytes; %d records were written", s.Frames, s.Bad, s.Dropped, g.valid)
	}
	gr := byName["fgood"]
	for gen, n := range g.written {
		if gr.count[gen] != n {
			t.Errorf("fifo-good writer %016x: %d of its %d records arrived", gen, gr.count[gen], n)
		}
	}
	// The chaos FIFO: each complete line is a frame or a bad record; a
	// partial record is a bad record (its writer was the last to close
	// the FIFO), or makes a spliced frame or swallows a record.
	ch, cr := fifos["fchaos"], byName["fchaos"]
	if s := fst["fifo-chaos"]; s.Frames+s.Bad < ch.lines || s.Frames+s.Bad > ch.lines+ch.partials-min(cr.corrupt, ch.partials) {
		t.Errorf("fifo-chaos: %d frames + %d bad from %d lines and %d partial records written (%d spliced frames); want the lines, plus at most the partial records not spliced",
			s.Frames, s.Bad, ch.lines, ch.partials, cr.corrupt)
	}
	if cr.corrupt > ch.partials || cr.valid+ch.partials < ch.valid || cr.valid > ch.valid {
		t.Errorf("fifo-chaos: %d valid and %d spliced frames from %d records and %d partial records", cr.valid, cr.corrupt, ch.valid, ch.partials)
	}
	if s := fst["fifo-chaos"]; s.Bad < ch.overlong-min(ch.overlong, ch.partials) {
		t.Errorf("fifo-chaos: %d bad records, %d over-long lines were written", s.Bad, ch.overlong)
	}
	if lr := byName["flen"]; lr.valid > fifos["flen"].valid {
		t.Errorf("fifo-len32: %d records arrived, %d were written", lr.valid, fifos["flen"].valid)
	}
	// Descriptors and threads: the late samples against the early ones.
	if len(samples) >= 6 {
		third := len(samples) / 3
		var early, late sample
		for _, s := range samples[:third] {
			early.fds, early.threads = max(early.fds, s.fds), max(early.threads, s.threads)
		}
		for _, s := range samples[len(samples)-third:] {
			late.fds, late.threads = max(late.fds, s.fds), max(late.threads, s.threads)
		}
		t.Logf("runtime: max fds %d early, %d late; max threads %d early, %d late (%d samples)", early.fds, late.fds, early.threads, late.threads, len(samples))
		if late.fds > early.fds+32 || late.threads > early.threads+32 {
			t.Errorf("the runtime grew: max fds %d early, %d late; max threads %d early, %d late", early.fds, late.fds, early.threads, late.threads)
		}
	}
	if fds1 > fds0+16 || threads1 > threads0+32 {
		t.Errorf("the runtime grew between quiesced points: fds %d -> %d, threads %d -> %d", fds0, fds1, threads0, threads1)
	}
	monMu.Unlock()

	if code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
	if took > 20*time.Second+5*time.Second {
		t.Errorf("the shutdown took %v; shutdown_timeout is 20s", took)
	}
	if got := segNames(t, e); len(got) != 0 {
		t.Errorf("segments left after the shutdown: %v", got)
	}
	if queueExists(e.queue) {
		t.Errorf("control queue %s left after the shutdown", e.queue)
	}
	for _, f := range []string{p.fgood, p.fchaos, p.flen} {
		if _, err := os.Lstat(f); err == nil {
			t.Errorf("FIFO %s left after the shutdown", f)
		}
	}
	marker := "EDGEIPC_SHM_DIR=" + e.dir
	if left := leftovers(marker); len(left) > 0 {
		t.Errorf("processes left after the shutdown:\n%s", strings.Join(left, "\n"))
		for _, l := range left { // ours: started by our runtime
			if pid, err := strconv.Atoi(strings.Fields(l)[0]); err == nil {
				unix.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}

// counts returns the frames and the valid records the ring's reader has seen.
func (r *soakRing) counts() (frames, valid uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.frames, r.valid
}

func (r *soakRing) frames64() uint64 { f, _ := r.counts(); return f }
