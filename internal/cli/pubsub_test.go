package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeipc/edgeipc/shm"
)

func TestPubSubLines(t *testing.T) {
	dir := t.TempDir()
	name := uniqueName("lines")
	r := runCLI(t, "alpha\n\nbeta\ngamma", "pub", name, "--create", "--slots", "16", "--slot-size", "64", "--dir", dir)
	mustCode(t, r, 0, "pub --create")
	if !strings.Contains(r.stderr, "4 frames, 14 bytes, 0 dropped") {
		t.Errorf("pub summary: %q", r.stderr)
	}
	r = runCLI(t, "", "sub", name, "--from", "oldest", "--count", "4", "--dir", dir)
	mustCode(t, r, 0, "sub --from oldest --count 4")
	if r.stdout != "alpha\n\nbeta\ngamma\n" {
		t.Errorf("sub printed %q", r.stdout)
	}
	// A second pub appends to the same ring; the type is recorded.
	r = runCLI(t, "delta\n", "pub", name, "--type", "7", "--dir", dir)
	mustCode(t, r, 0, "pub --type 7")
	if !strings.Contains(r.stderr, "pub "+name+": 1 frame, 5 bytes, 0 dropped") {
		t.Errorf("pub summary of one frame: %q", r.stderr)
	}
	r = runCLI(t, "", "sub", name, "--from", "oldest", "--count", "5", "--framing", "json", "--dir", dir)
	mustCode(t, r, 0, "sub --framing json")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("sub --framing json printed %d lines:\n%s", len(lines), r.stdout)
	}
	var f struct {
		Seq, Type, Flags, Lost, Len uint64
		TimeNs                      int64 `json:"time_ns"`
		Data                        string
	}
	if err := json.Unmarshal([]byte(lines[4]), &f); err != nil {
		t.Fatalf("json line %q: %v", lines[4], err)
	}
	data, _ := base64.StdEncoding.DecodeString(f.Data)
	if f.Seq != 4 || f.Type != 7 || f.Len != 5 || string(data) != "delta" || f.TimeNs <= 0 || f.TimeNs > shm.Now() {
		t.Errorf("last frame as JSON: %+v (data %q)", f, data)
	}
}

func TestPubSubLen32Binary(t *testing.T) {
	dir := t.TempDir()
	name := uniqueName("len32")
	mustCode(t, runCLI(t, "", "ring", "create", name, "--slots", "8", "--slot-size", "256", "--dir", dir), 0, "ring create")
	var in bytes.Buffer
	var want [][]byte
	for i := 0; i < 5; i++ {
		p := bytes.Repeat([]byte{byte(i), '\n', 0, 0xff}, i*10) // newlines and zeros inside
		want = append(want, p)
		binary.Write(&in, binary.LittleEndian, uint32(len(p)))
		in.Write(p)
	}
	mustCode(t, runCLIReader(t, &in, "pub", name, "--framing", "len32", "--quiet", "--dir", dir), 0, "pub --framing len32")
	r := runCLI(t, "", "sub", name, "--from", "oldest", "--count", "5", "--framing", "len32", "--dir", dir)
	mustCode(t, r, 0, "sub --framing len32")
	out := []byte(r.stdout)
	for i, w := range want {
		if len(out) < 4 {
			t.Fatalf("frame %d: output ends early", i)
		}
		n := binary.LittleEndian.Uint32(out)
		if int(n) != len(w) || !bytes.Equal(out[4:4+n], w) {
			t.Fatalf("frame %d: got %d bytes %x, want %x", i, n, out[4:min(len(out), 4+int(n))], w)
		}
		out = out[4+n:]
	}
	if len(out) != 0 {
		t.Errorf("%d bytes after the last frame", len(out))
	}
	// The hex framing shows the same payloads.
	r = runCLI(t, "", "sub", name, "--from", "oldest", "--count", "2", "--framing", "hex", "--dir", dir)
	mustCode(t, r, 0, "sub --framing hex")
	if want := "\n" + fmt.Sprintf("%x", want[1]) + "\n"; r.stdout != want {
		t.Errorf("sub --framing hex printed %q", r.stdout)
	}
}

// TestPubBadInput: records that do not fit are dropped and counted, the
// others still arrive, and pub exits 1 naming the slot size.
func TestPubBadInput(t *testing.T) {
	dir := t.TempDir()
	name := uniqueName("bad")
	mustCode(t, runCLI(t, "", "ring", "create", name, "--slots", "16", "--slot-size", "64", "--dir", dir), 0, "ring create")
	big := strings.Repeat("x", 65)
	huge := strings.Repeat("y", 200<<10) // longer than pub's read buffer
	r := runCLI(t, "ok1\n"+big+"\nok2\n"+huge+"\nok3\n", "pub", name, "--dir", dir)
	mustCode(t, r, 1, "pub with oversized lines")
	for _, want := range []string{"record 2 dropped: 65 bytes", "record 4 dropped: 204800 bytes", "3 frames, 9 bytes, 2 dropped", "2 of 5 records dropped", "slot payload of 64 bytes", "--slot-size"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("pub stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	r = runCLI(t, "", "sub", name, "--from", "oldest", "--count", "3", "--dir", dir)
	mustCode(t, r, 0, "sub")
	if r.stdout != "ok1\nok2\nok3\n" {
		t.Errorf("frames after bad records: %q", r.stdout)
	}

	// len32: an oversized record is skipped whole; a truncated one is an error.
	var in bytes.Buffer
	for _, p := range []string{"a", strings.Repeat("z", 100), "b"} {
		binary.Write(&in, binary.LittleEndian, uint32(len(p)))
		in.WriteString(p)
	}
	binary.Write(&in, binary.LittleEndian, uint32(10))
	in.WriteString("short")
	r = runCLIReader(t, &in, "pub", name, "--framing", "len32", "--dir", dir)
	mustCode(t, r, 1, "pub len32 with a truncated record")
	if !strings.Contains(r.stderr, "record 2 dropped: 100 bytes") || !strings.Contains(r.stderr, "stdin ended inside record 4: got 5 of 10 bytes") {
		t.Errorf("pub len32 stderr:\n%s", r.stderr)
	}
	r = runCLI(t, "", "sub", name, "--from", "oldest", "--count", "5", "--dir", dir)
	mustCode(t, r, 0, "sub")
	if !strings.HasSuffix(r.stdout, "ok3\na\nb\n") {
		t.Errorf("frames after bad len32 records: %q", r.stdout)
	}
	// Text read as len32: its first four bytes are a length far above the
	// slot payload, and stdin ends inside it. The error asks about the
	// framing.
	r = runCLI(t, "hello world\n", "pub", name, "--framing", "len32", "--dir", dir)
	mustCode(t, r, 1, "pub len32 of text")
	if !strings.Contains(r.stderr, "got 8 of 1819043176 bytes") || !strings.Contains(r.stderr, "is the input really --framing len32?") {
		t.Errorf("pub len32 of text: stderr:\n%s", r.stderr)
	}
}

func TestPubSubUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"pub"}, "ring name missing"},
		{[]string{"pub", "a", "b"}, "one RING"},
		{[]string{"pub", "../x"}, "bad ring name"},
		{[]string{"pub", "r", "--framing", "csv"}, "use lines or len32"},
		{[]string{"pub", "r", "--slots", "8"}, "--slots only applies with --create"},
		{[]string{"pub", "r", "--create", "--wait"}, "--create and --wait exclude each other"},
		{[]string{"pub", "r", "--create", "--slots", "6"}, "power of two"},
		{[]string{"pub", "r", "--create", "--policy", "drop"}, "use overwrite or block"},
		{[]string{"pub", "r", "--type", "4294967296"}, "flag --type: want 0 to 4294967295"},
		{[]string{"pub", "r", "--type", "-1"}, "flag --type: want 0 to 4294967295"},
		{[]string{"pub", "r", "--create", "--slot-size", "0"}, "want 1 byte to 64m"},
		{[]string{"pub", "r", "--create", "--slot-size", "65m"}, "want 1 byte to 64m"},
		{[]string{"sub", "r", "--count", "-1"}, "flag --count: want 0 (run until interrupted) or a positive count"},
		{[]string{"hz", "r", "--count", "-1"}, "flag --count: want 0 (run until interrupted) or a positive count"},
		{[]string{"sub", "r", "--bogus"}, "not defined: --bogus"},
		{[]string{"sub"}, "ring name missing"},
		{[]string{"sub", "r", "--from", "middle"}, "use oldest or newest"},
		{[]string{"sub", "r", "--framing", "xml"}, "lines, len32, hex or json"},
		{[]string{"sub", "r", "--timeout", "-1s"}, "positive duration"},
		{[]string{"hz"}, "ring name missing"},
		{[]string{"hz", "r", "--window", "10us"}, "at least 1ms"},
		{[]string{"ring"}, "subcommand missing"},
		{[]string{"ring", "grow"}, "unknown subcommand"},
		{[]string{"ring", "create", "r", "--slots", "3"}, "power of two"},
		{[]string{"ring", "create", "r", "--slot-size", "lots"}, "bad size"},
		{[]string{"ring", "create", "r", "--slot-size", "0"}, "want 1 byte to 64m"},
		{[]string{"ring", "create", "r", "--slot-size", "2047m"}, "want 1 byte to 64m"},
		{[]string{"ring", "create", "r", "--slot-size", "1g"}, "want 1 byte to 64m"},
		{[]string{"ring", "create", "r", "--slot-size", "2g"}, "want 1 byte to 64m"},
		{[]string{"ring", "ls", "extra"}, "takes no arguments"},
		// Each flag valid alone, the ring (1 PiB) too large together.
		{[]string{"ring", "create", "r", "--slots", "16777216", "--slot-size", "64m"}, "use fewer --slots or a smaller --slot-size"},
		{[]string{"pub", "r", "--create", "--slots", "16777216", "--slot-size", "64m"}, "use fewer --slots or a smaller --slot-size"},
		{[]string{"ring", "create", "r", "--group", missingGID(t)}, "no group has id"},
		{[]string{"ring", "create", "r", "--group", "no-such-group-edgeipc"}, "no such group"},
		{[]string{"pub", "r", "--create", "--group", missingGID(t)}, "no group has id"},
		{[]string{"ring", "rm"}, "--stale"},
	} {
		args := c.args
		if len(args) > 1 || args[0] != "ring" {
			args = append(args, "--dir", dir)
		}
		r := runCLI(t, "", args...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("edgeipc %s: exit %d stderr %q; want exit 2 mentioning %q", strings.Join(c.args, " "), r.code, r.stderr, c.want)
		}
	}
	// Not usage errors, but failures that say what to do.
	r := runCLI(t, "x\n", "pub", "missing", "--dir", dir)
	mustCode(t, r, 1, "pub to a missing ring")
	if !strings.Contains(r.stderr, "edgeipc ring create missing") || !strings.Contains(r.stderr, "--create") || strings.Count(r.stderr, "ring create") != 1 {
		t.Errorf("pub to a missing ring: %q, want one hint naming ring create and --create", r.stderr)
	}
	r = runCLI(t, "", "sub", "missing", "--dir", dir)
	mustCode(t, r, 1, "sub of a missing ring")
	// -h after the ring name prints the command's help and exits 0.
	r = runCLI(t, "", "sub", "r", "-h")
	mustCode(t, r, 0, "sub r -h")
	if !strings.Contains(r.stdout, "--from newest") {
		t.Errorf("sub -h: %q", r.stdout)
	}
}

func TestPubBusyWriter(t *testing.T) {
	dir := t.TempDir()
	name := uniqueName("busy")
	mustCode(t, runCLI(t, "", "ring", "create", name, "--dir", dir), 0, "ring create")
	w, err := shm.OpenWriter(name, &shm.SegmentOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r := runCLI(t, "x\n", "pub", name, "--dir", dir)
	mustCode(t, r, 1, "pub while another writer holds the lease")
	if !strings.Contains(r.stderr, "live writer (pid "+strconv.Itoa(syscall.Getpid())+")") {
		t.Errorf("busy pub: %q", r.stderr)
	}
}

func TestSubTimeout(t *testing.T) {
	dir := t.TempDir()
	name := uniqueName("quiet")
	mustCode(t, runCLI(t, "", "ring", "create", name, "--dir", dir), 0, "ring create")
	r := runCLI(t, "", "sub", name, "--timeout", "50ms", "--dir", dir)
	mustCode(t, r, 1, "sub --timeout on a silent ring")
	if !strings.Contains(r.stderr, "no frame on ring "+name+" for 50ms (0 frames received; writer: none)") {
		t.Errorf("sub --timeout: %q", r.stderr)
	}
}

// TestPubSubPipeline runs "edgeipc sub" and "edgeipc pub" as two separate
// processes on one ring, the way a shell pipeline would, and interrupts a
// waiting sub with SIGINT.
func TestPubSubPipeline(t *testing.T) {
	dir := t.TempDir()
	name := uniqueName("pipe")
	const n = 2000
	mustCode(t, runCLI(t, "", "ring", "create", name, "--slots", "4096", "--slot-size", "64", "--policy", "block", "--dir", dir), 0, "ring create")

	sub := cliCmd(t, dir, "sub", name, "--from", "oldest", "--count", strconv.Itoa(n))
	subOut, err := sub.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	var in strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&in, "frame %d\n", i)
	}
	pub := cliCmd(t, dir, "pub", name)
	pub.Stdin = strings.NewReader(in.String())
	var pubErr bytes.Buffer
	pub.Stderr = &pubErr
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(subOut)
	if err != nil {
		t.Fatal(err)
	}
	if code := waitCmd(t, pub); code != 0 {
		t.Fatalf("pub exit %d: %s", code, pubErr.String())
	}
	if code := waitCmd(t, sub); code != 0 {
		t.Fatalf("sub exit %d", code)
	}
	if string(got) != in.String() {
		t.Fatalf("sub received %d bytes, want %d; first difference near %q", len(got), in.Len(), firstDiff(string(got), in.String()))
	}

	// A sub waiting on a silent ring exits 130 on SIGINT.
	sub = cliCmd(t, dir, "sub", name)
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	ring, err := shm.Open(name, &shm.SegmentOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer ring.Close()
	eventually(t, "sub to join the ring", func() bool {
		for _, rd := range ring.Inspect().Readers {
			if rd.PID == sub.Process.Pid {
				return true
			}
		}
		return false
	})
	sub.Process.Signal(syscall.SIGINT)
	if code := waitCmd(t, sub); code != ExitInterrupted {
		t.Fatalf("sub after SIGINT: exit %d, want %d", code, ExitInterrupted)
	}
	if rs := ring.Inspect().Readers; len(rs) != 0 {
		t.Errorf("sub left its reader slot after SIGINT: %+v", rs)
	}

	// A pub interrupted while it waits for more input exits 130 and says
	// what it published (it said nothing).
	pub = cliCmd(t, dir, "pub", name)
	pubIn, err := pub.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	pubErr.Reset()
	pub.Stderr = &pubErr
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	defer pubIn.Close()
	head := ring.Head()
	io.WriteString(pubIn, "one\ntwo\nthree\n")
	eventually(t, "pub to publish 3 frames", func() bool { return ring.Head()-head == 3 })
	pub.Process.Signal(syscall.SIGINT)
	if code := waitCmd(t, pub); code != ExitInterrupted || !strings.Contains(pubErr.String(), "pub "+name+": 3 frames, 11 bytes, 0 dropped (interrupted)") {
		t.Fatalf("pub after SIGINT: exit %d, stderr %q; want %d and its summary", code, pubErr.String(), ExitInterrupted)
	}
}

func firstDiff(a, b string) string {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return a[max(0, i-10):min(len(a), i+10)]
		}
	}
	return "(one is a prefix of the other)"
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(testTimeout); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestHz measures a ring fed at a known size from this process and checks
// that every window's counts are consistent with that size.
func TestHz(t *testing.T) {
	dir := t.TempDir()
	name := uniqueName("hz")
	mustCode(t, runCLI(t, "", "ring", "create", name, "--slots", "64", "--slot-size", "128", "--dir", dir), 0, "ring create")
	w, err := shm.OpenWriter(name, &shm.SegmentOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		p := make([]byte, 100)
		for ctx.Err() == nil {
			w.Write(p)
			time.Sleep(time.Millisecond)
		}
	}()
	r := runCLI(t, "", "hz", name, "--window", "100ms", "--count", "3", "--json", "--dir", dir)
	mustCode(t, r, 0, "hz --json")
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	windows := 0
	for sc.Scan() {
		var hw hzWindow
		if err := json.Unmarshal(sc.Bytes(), &hw); err != nil {
			t.Fatalf("hz line %q: %v", sc.Text(), err)
		}
		windows++
		if hw.Frames == 0 || hw.Bytes != 100*hw.Frames || hw.WindowNs < int64(100*time.Millisecond) ||
			hw.FramesPerSec <= 0 || hw.LatencyMaxNs < hw.LatencyMeanNs || hw.LatencyMeanNs < 0 {
			t.Errorf("hz window: %+v", hw)
		}
	}
	if windows != 3 {
		t.Errorf("hz --count 3 printed %d windows:\n%s", windows, r.stdout)
	}
	r = runCLI(t, "", "hz", name, "--window", "50ms", "--count", "4", "--dir", dir)
	mustCode(t, r, 0, "hz")
	if !strings.Contains(r.stdout, "FRAMES/S") || strings.Count(r.stdout, "\n") != 5 {
		t.Errorf("hz table:\n%s", r.stdout)
	}
	// Latencies have at most three significant digits (1.14ms, not
	// 1.138544ms), so the columns stay aligned. Checked in the windows
	// that saw frames (on a loaded machine, under qemu, a 50 ms window
	// can see none: its latencies are "-").
	short := regexp.MustCompile(`^(0s|[1-9][0-9]{0,2}(ns|µs|ms|s)|[1-9]\.[0-9]{1,2}(µs|ms|s)|[1-9][0-9]\.[0-9](µs|ms|s))$`)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	busy := 0
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 7 {
			t.Errorf("hz row %q: want 7 columns", l)
			continue
		}
		if f[1] == "0.0" {
			continue
		}
		busy++
		if !short.MatchString(f[4]) || !short.MatchString(f[5]) {
			t.Errorf("hz latency columns are not rounded to three digits: %q", l)
		}
	}
	if busy == 0 {
		t.Errorf("no window of hz saw a frame of the writer:\n%s", r.stdout)
	}
	// A window without frames has no latency: "-", not 0s.
	quiet := uniqueName("hzquiet")
	mustCode(t, runCLI(t, "", "ring", "create", quiet, "--dir", dir), 0, "ring create")
	r = runCLI(t, "", "hz", quiet, "--window", "50ms", "--count", "1", "--dir", dir)
	mustCode(t, r, 0, "hz of a quiet ring")
	lines = strings.Split(strings.TrimSpace(r.stdout), "\n")
	if f := strings.Fields(lines[len(lines)-1]); len(f) != 7 || f[1] != "0.0" || f[4] != "-" || f[5] != "-" {
		t.Errorf("hz of a quiet ring: %q, want 0 frames and - for the latencies", lines[len(lines)-1])
	}
}

func TestRound3(t *testing.T) {
	for ns, want := range map[int64]string{0: "0s", 456: "456ns", 1234: "1.23µs", 23456: "23.5µs", 999999: "1ms", 1138544: "1.14ms", 123456789: "123ms", 1234567890: "1.23s"} {
		if got := round3(time.Duration(ns)).String(); got != want {
			t.Errorf("round3(%dns) = %s, want %s", ns, got, want)
		}
	}
}

// TestPubCreateExisting: pub --create on an existing ring checks only the
// settings given on the command line, and names every difference.
func TestPubCreateExisting(t *testing.T) {
	dir := t.TempDir()
	name := uniqueName("exist")
	mustCode(t, runCLI(t, "", "ring", "create", name, "--slots", "4", "--slot-size", "64", "--dir", dir), 0, "ring create")
	for _, args := range [][]string{
		{"--slots", "4"},
		{"--slot-size", "64"},
		{"--slot-size", "60"}, // rounded up to 64, as create would
		{"--policy", "overwrite"},
		{"--slots", "4", "--slot-size", "64", "--policy", "overwrite"},
	} {
		r := runCLI(t, "x\n", append([]string{"pub", name, "--create", "--quiet", "--dir", dir}, args...)...)
		mustCode(t, r, 0, "pub --create "+strings.Join(args, " ")+" on a matching ring")
	}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"--slots", "8"}, []string{"it has 4 slots, not 8 (--slots)"}},
		// The size given, beside the rounded one the ring would have:
		// "not 128 (--slot-size)" read as if 128 had been typed.
		{[]string{"--slot-size", "65"}, []string{"up to 64 bytes, not 128 (--slot-size 65, rounded up to a multiple of 64)"}},
		{[]string{"--slot-size", "128"}, []string{"up to 64 bytes, not 128 (--slot-size);"}},
		{[]string{"--policy", "block", "--slots", "2"}, []string{"policy is overwrite, not block", "4 slots, not 2", "'edgeipc ring rm " + name + " --dir " + dir + "'"}},
	} {
		r := runCLI(t, "x\n", append([]string{"pub", name, "--create", "--dir", dir}, c.args...)...)
		mustCode(t, r, 1, "pub --create "+strings.Join(c.args, " ")+" on a different ring")
		for _, w := range c.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("pub --create %s: stderr lacks %q:\n%s", strings.Join(c.args, " "), w, r.stderr)
			}
		}
	}

	// --group on a ring that is not shared with the group fails with the
	// commands that would share it; after them pub accepts the ring.
	gid := strconv.Itoa(os.Getgid())
	path := filepath.Join(dir, shm.FilePrefix+name)
	r := runCLI(t, "x\n", "pub", name, "--create", "--group", gid, "--dir", dir)
	mustCode(t, r, 1, "pub --create --group on a 0600 ring")
	if !strings.Contains(r.stderr, "it is mode 0600") || !strings.Contains(r.stderr, "chmod 0660 "+path) {
		t.Errorf("pub --create --group on a 0600 ring: %q", r.stderr)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		t.Fatal(err)
	}
	mustCode(t, runCLI(t, "x\n", "pub", name, "--create", "--group", gid, "--quiet", "--dir", dir), 0, "pub --create --group on a 0660 ring of that group")
}

// missingGID returns a numeric group id that no group has.
func missingGID(t *testing.T) string {
	t.Helper()
	for g := 2000000000; g > 1999999000; g-- { // fits a 32-bit int
		s := strconv.Itoa(g)
		if _, err := user.LookupGroupId(s); err != nil {
			return s
		}
	}
	t.Fatal("every gid from 1999999001 to 2000000000 exists")
	return ""
}

// pub writes only into a ring of its own user or root's, unless --owner
// names the ring's owner: in /dev/shm anyone may create a file under a
// ring's name, and its owner reads every frame published into it. pub
// used to write into whatever ring the name opened. The refusal names the
// owner and --owner, leaves the ring untouched, and applies to --create on
// an existing ring too.
func TestPubRefusesForeignRing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a ring to another user needs root")
	}
	dir := t.TempDir()
	name := uniqueName("foreign")
	mustCode(t, runCLI(t, "", "ring", "create", name, "--slots", "4", "--slot-size", "64", "--dir", dir), 0, "ring create")
	path := filepath.Join(dir, shm.FilePrefix+name)
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	head := func() uint32 {
		t.Helper()
		r, err := shm.Open(name, &shm.SegmentOptions{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		return r.Head()
	}
	for _, args := range [][]string{
		{"pub", name, "--dir", dir},
		{"pub", name, "--create", "--dir", dir},
		{"pub", name, "--owner", "0", "--dir", dir},
	} {
		r := runCLI(t, "secret\n", args...)
		mustCode(t, r, 1, strings.Join(args, " ")+" into a ring of uid 65534")
		for _, w := range []string{"belongs to uid 65534", "--owner", "edgeipc ring rm " + name + " --dir " + dir + ")"} {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", strings.Join(args, " "), w, r.stderr)
			}
		}
		if h := head(); h != 0 {
			t.Fatalf("%s wrote %d frames into another user's ring", strings.Join(args, " "), h)
		}
	}
	mustCode(t, runCLI(t, "shared\n", "pub", name, "--owner", "65534", "--quiet", "--dir", dir), 0, "pub --owner 65534")
	if h := head(); h != 1 {
		t.Fatalf("pub --owner 65534 wrote %d frames, want 1", h)
	}
	if u, err := user.LookupId("65534"); err == nil {
		mustCode(t, runCLI(t, "shared\n", "pub", name, "--owner", u.Username, "--quiet", "--dir", dir), 0, "pub --owner "+u.Username)
	}
	r := runCLI(t, "", "pub", name, "--owner", "no-such-user-"+name, "--dir", dir)
	mustCode(t, r, 2, "pub --owner with an unknown user")
}

// TestSubHzOutputClosed: when the reader of its output has gone
// (`edgeipc sub cam | head -1`), sub leaves the ring and exits 0 without a
// message, both when its next write fails and while it waits on a silent
// ring, where no write would tell it; hz likewise at its next window.
func TestSubHzOutputClosed(t *testing.T) {
	dir := t.TempDir()
	name := uniqueName("closed")
	mustCode(t, runCLI(t, "", "ring", "create", name, "--slots", "8", "--slot-size", "64", "--dir", dir), 0, "ring create")
	mustCode(t, runCLI(t, "a\nb\nc\n", "pub", name, "--quiet", "--dir", dir), 0, "pub")
	ring, err := shm.Open(name, &shm.SegmentOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer ring.Close()
	for _, args := range [][]string{
		{"sub", name, "--from", "oldest"}, // a write fails with EPIPE
		{"sub", name},                     // nothing to write: poll tells
		{"sub", name, "--framing", "json", "--timeout", "1m"}, // likewise, before the timeout
		{"hz", name, "--window", "50ms"},
		{"hz", name, "--window", "50ms", "--json"},
	} {
		what := strings.Join(args, " ")
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		pr.Close() // the reader has gone
		cmd := cliCmd(t, dir, args...)
		var errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = pw, &errb
		err = cmd.Start()
		pw.Close()
		if err != nil {
			t.Fatal(err)
		}
		if code := waitCmd(t, cmd); code != 0 || strings.Contains(errb.String(), "edgeipc") || strings.Contains(errb.String(), "pipe") {
			t.Errorf("%s with a closed stdout: exit %d (%v), stderr %q; want 0 and no error", what, code, cmd.ProcessState, errb.String())
		}
		for _, rd := range ring.Inspect().Readers {
			if rd.PID == cmd.Process.Pid {
				t.Errorf("%s left its reader slot behind: %+v", what, rd)
			}
		}
	}
}

// TestPubStopsWhenRingRemoved: pub whose ring was removed under it (ring
// rm --force) went on publishing into the removed file for as long as
// stdin lasted, though no new reader can open it (a runtime or pub
// --create that makes the name again gets none of those frames). It now
// notices within a second, while it waits for stdin too, and exits 1.
func TestPubStopsWhenRingRemoved(t *testing.T) {
	dir := t.TempDir()
	name := uniqueName("pubrm")
	mustCode(t, runCLI(t, "", "ring", "create", name, "--dir", dir), 0, "ring create")
	ring, err := shm.Open(name, &shm.SegmentOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer ring.Close()
	pr, pw := io.Pipe()
	defer pw.Close() // stdin never ends: pub must stop on its own
	var errb runLogWriter
	done := make(chan int, 1)
	go func() {
		done <- MainEnv(context.Background(), &Env{Stdin: pr, Stdout: io.Discard, Stderr: &errb}, []string{"pub", name, "--dir", dir})
	}()
	if _, err := io.WriteString(pw, "one\ntwo\n"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "pub to publish two frames", func() bool { return ring.Head() == 2 })
	mustCode(t, runCLI(t, "", "ring", "rm", "--force", name, "--dir", dir), 0, "ring rm --force")
	select {
	case code := <-done:
		if code != ExitFailure {
			t.Errorf("pub: exit %d after its ring was removed, want %d; stderr:\n%s", code, ExitFailure, errb.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("pub still running 15 s after its ring was removed; stderr:\n%s", errb.String())
	}
	for _, want := range []string{"pub " + name + ": 2 frames, 6 bytes, 0 dropped (ring removed)", "ring " + name + " was removed while pub wrote to it"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("pub's stderr lacks %q:\n%s", want, errb.String())
		}
	}
}

// TestSubHzSignalWhileOutputBlocked: sub and hz whose stdout is a full pipe
// that nobody reads (a stalled consumer) exit 130 on SIGTERM. Their
// write(2) blocked, uninterruptible, so they ignored the signal until the
// consumer read again or went away (then exit 0, as if it had chosen to).
func TestSubHzSignalWhileOutputBlocked(t *testing.T) {
	dir := t.TempDir()
	name := uniqueName("stall")
	mustCode(t, runCLI(t, "", "ring", "create", name, "--slots", "1024", "--slot-size", "1k", "--dir", dir), 0, "ring create")
	// 1000 frames of 1000 bytes: far more than a pipe and sub's buffer hold.
	frames := strings.Repeat(strings.Repeat("x", 1000)+"\n", 1000)
	mustCode(t, runCLI(t, frames, "pub", name, "--quiet", "--dir", dir), 0, "pub")
	for _, args := range [][]string{
		{"sub", name, "--from", "oldest"},
		{"hz", name, "--window", "1ms", "--json"}, // fills the pipe with windows
	} {
		child := startStalled(t, dir, false, args...)
		if code := child.interrupt(t, syscall.SIGTERM); code != ExitInterrupted {
			t.Errorf("%s, SIGTERM while its output is blocked: exit %d, stderr %q; want %d", child.what, code, child.errb.String(), ExitInterrupted)
		}
	}
}

// TestHzHugeWindow: a --window near the largest duration (2562047h) is
// one long window, not one that ends after the first frame: the window's
// end, CLOCK_MONOTONIC now plus the window, overflowed int64 and came out
// negative.
func TestHzHugeWindow(t *testing.T) {
	dir := t.TempDir()
	name := uniqueName("hzhuge")
	mustCode(t, runCLI(t, "", "ring", "create", name, "--slots", "16", "--slot-size", "64", "--dir", dir), 0, "ring create")
	rd, err := shm.OpenReader(name, &shm.SegmentOptions{Dir: dir}, &shm.ReaderOptions{From: shm.Newest})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	w, err := shm.OpenWriter(name, &shm.SegmentOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	wctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		for wctx.Err() == nil {
			w.Write([]byte("x"))
			time.Sleep(10 * time.Millisecond)
		}
	}()
	window, err := time.ParseDuration("2562047h")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background()) // Ctrl-C
	defer cancel()
	time.AfterFunc(500*time.Millisecond, cancel)
	hw, err := hzMeasure(ctx, rd, window)
	if err == nil {
		t.Fatalf("hzMeasure with a %v window ended by itself after %v and %d frames; want it to run until interrupted", window, time.Duration(hw.WindowNs), hw.Frames)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("hzMeasure: %v, want the interruption", err)
	}
}

// TestPubSubRoundTrip: random records, empty ones and ones of exactly the
// slot payload included, come back byte for byte through pub and sub:
// len32 in, len32, json and hex out; and lines (with CR, NUL and 0xff
// bytes in them, CRLF line ends staying in the frame) in and out.
func TestPubSubRoundTrip(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(uint64(seed), 0))
	const slot, n = 128, 200
	size := func() int {
		switch rnd.IntN(4) {
		case 0:
			return 0
		case 1:
			return slot
		default:
			return rnd.IntN(slot + 1)
		}
	}
	dir := t.TempDir()

	name := uniqueName("rtlen32")
	mustCode(t, runCLI(t, "", "ring", "create", name, "--slots", "256", "--slot-size", strconv.Itoa(slot), "--dir", dir), 0, "ring create")
	var recs [][]byte
	var in bytes.Buffer
	for range n {
		p := make([]byte, size())
		for i := range p {
			p[i] = byte(rnd.IntN(256))
		}
		recs = append(recs, p)
		binary.Write(&in, binary.LittleEndian, uint32(len(p)))
		in.Write(p)
	}
	want := in.String()
	mustCode(t, runCLI(t, want, "pub", name, "--framing", "len32", "--quiet", "--dir", dir), 0, "pub --framing len32")
	r := runCLI(t, "", "sub", name, "--from", "oldest", "--count", strconv.Itoa(n), "--timeout", "10s", "--framing", "len32", "--dir", dir)
	mustCode(t, r, 0, "sub --framing len32")
	if r.stdout != want {
		t.Errorf("len32 round trip: %d bytes back, want %d; first difference near %q", len(r.stdout), len(want), firstDiff(r.stdout, want))
	}
	r = runCLI(t, "", "sub", name, "--from", "oldest", "--count", strconv.Itoa(n), "--timeout", "10s", "--framing", "json", "--dir", dir)
	mustCode(t, r, 0, "sub --framing json")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != n {
		t.Fatalf("sub --framing json printed %d lines, want %d", len(lines), n)
	}
	for i, l := range lines {
		var f struct {
			Len  int
			Data string
		}
		if err := json.Unmarshal([]byte(l), &f); err != nil {
			t.Fatalf("json line %d %q: %v", i, l, err)
		}
		if d, err := base64.StdEncoding.DecodeString(f.Data); err != nil || f.Len != len(recs[i]) || !bytes.Equal(d, recs[i]) {
			t.Fatalf("json frame %d: len %d data %x (%v), want %x", i, f.Len, d, err, recs[i])
		}
	}
	r = runCLI(t, "", "sub", name, "--from", "oldest", "--count", strconv.Itoa(n), "--timeout", "10s", "--framing", "hex", "--dir", dir)
	mustCode(t, r, 0, "sub --framing hex")
	var hexWant strings.Builder
	for _, p := range recs {
		fmt.Fprintf(&hexWant, "%x\n", p)
	}
	if r.stdout != hexWant.String() {
		t.Errorf("hex: first difference near %q", firstDiff(r.stdout, hexWant.String()))
	}

	name = uniqueName("rtlines")
	mustCode(t, runCLI(t, "", "ring", "create", name, "--slots", "256", "--slot-size", strconv.Itoa(slot), "--dir", dir), 0, "ring create")
	var text strings.Builder
	for range n {
		p := make([]byte, size())
		for i := range p {
			p[i] = "ab \r\x00\xff"[rnd.IntN(6)]
		}
		text.Write(p)
		text.WriteByte('\n')
	}
	// A last line without its newline is a frame too.
	text.WriteString("last")
	in2 := text.String()
	want = in2 + "\n"
	r = runCLI(t, in2, "pub", name, "--dir", dir)
	mustCode(t, r, 0, "pub --framing lines")
	if !strings.Contains(r.stderr, fmt.Sprintf("%d frames, %d bytes, 0 dropped", n+1, len(in2)-n)) {
		t.Errorf("pub summary: %q", r.stderr)
	}
	r = runCLI(t, "", "sub", name, "--from", "oldest", "--count", strconv.Itoa(n+1), "--timeout", "10s", "--dir", dir)
	mustCode(t, r, 0, "sub --framing lines")
	if r.stdout != want {
		t.Errorf("lines round trip: %d bytes back, want %d; first difference near %q", len(r.stdout), len(want), firstDiff(r.stdout, want))
	}
}

// TestSubHzWait: with --wait, pub, sub and hz started before their ring
// exists wait for it (a separate process creates it) instead of failing;
// sub's --timeout bounds that wait, SIGINT ends it with 130, and without
// --wait a missing ring is still an error at once.
func TestSubHzWait(t *testing.T) {
	dir := t.TempDir()
	name := uniqueName("late")
	sub := cliCmd(t, dir, "sub", name, "--wait", "--from", "oldest", "--count", "2")
	hz := cliCmd(t, dir, "hz", name, "--wait", "--window", "50ms", "--count", "1", "--json")
	pub := cliCmd(t, dir, "pub", name, "--wait")
	var sout, serr, hout, herr, pout bytes.Buffer
	sub.Stdout, sub.Stderr = &sout, &serr
	hz.Stdout, hz.Stderr = &hout, &herr
	pub.Stdin, pub.Stdout, pub.Stderr = strings.NewReader("one\ntwo\n"), &pout, &pout
	for _, c := range []*exec.Cmd{sub, hz, pub} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	for _, c := range []*exec.Cmd{sub, hz, pub} {
		if !alive(c.Process.Pid) {
			t.Fatalf("%v exited before its ring existed: stderr %q %q %q", c.Args[1:], serr.String(), herr.String(), pout.String())
		}
	}
	mustCode(t, runCLI(t, "", "ring", "create", name, "--slots", "8", "--slot-size", "64", "--dir", dir), 0, "ring create")
	if code := waitCmd(t, pub); code != 0 {
		t.Fatalf("pub --wait: exit %d, output %q; want 0", code, pout.String())
	}
	if code := waitCmd(t, sub); code != 0 || sout.String() != "one\ntwo\n" {
		t.Errorf("sub --wait: exit %d, stdout %q, stderr %q; want 0 and both frames", code, sout.String(), serr.String())
	}
	if code := waitCmd(t, hz); code != 0 || !strings.Contains(hout.String(), `"frames_per_s"`) {
		t.Errorf("hz --wait: exit %d, stdout %q, stderr %q; want 0 and one window", code, hout.String(), herr.String())
	}

	r := runCLI(t, "", "sub", "never", "--wait", "--timeout", "100ms", "--dir", dir)
	mustCode(t, r, 1, "sub --wait --timeout on a ring nobody creates")
	if !strings.Contains(r.stderr, "ring never was not created within 100ms (--timeout)") {
		t.Errorf("sub --wait --timeout: %q", r.stderr)
	}
	r = runCLI(t, "", "sub", "never", "--dir", dir)
	mustCode(t, r, 1, "sub without --wait on a missing ring")
	if !strings.Contains(r.stderr, "ring never does not exist") {
		t.Errorf("sub without --wait: %q", r.stderr)
	}

	waiting := cliCmd(t, dir, "hz", "never", "--wait")
	var werr bytes.Buffer
	waiting.Stderr = &werr
	if err := waiting.Start(); err != nil {
		t.Fatal(err)
	}
	// Interrupt it once it waits (it holds the inotify descriptor of
	// shm.OpenContext): a SIGINT before the command line has set up its
	// handler would kill it outright, which qemu-user's slow start made
	// happen after a fixed 200 ms.
	eventually(t, "hz --wait watching the segment directory", func() bool { return hasFd(waiting.Process.Pid, "anon_inode:inotify") })
	waiting.Process.Signal(syscall.SIGINT)
	if code := waitCmd(t, waiting); code != ExitInterrupted {
		t.Errorf("hz --wait, SIGINT while it waits: exit %d, stderr %q; want %d", code, werr.String(), ExitInterrupted)
	}
}

// hasFd reports whether process pid has a descriptor whose link reads target.
func hasFd(pid int, target string) bool {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if l, _ := os.Readlink(dir + "/" + e.Name()); l == target {
			return true
		}
	}
	return false
}
