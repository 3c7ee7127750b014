package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgeipc/edgeipc/internal/mq"
	"github.com/edgeipc/edgeipc/runtime"
)

func runRunCLI(t *testing.T, ctx context.Context, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := MainEnv(ctx, &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}, args)
	return code, out.String(), errb.String()
}

func TestRunPrintDefaultAndCheck(t *testing.T) {
	code, out, _ := runRunCLI(t, context.Background(), "run", "--print-default")
	if code != 0 || out != string(runtime.DefaultTOML()) {
		t.Fatalf("--print-default: code %d", code)
	}
	p := filepath.Join(t.TempDir(), "d.toml")
	os.WriteFile(p, []byte(out), 0o600)
	code, out, errs := runRunCLI(t, context.Background(), "run", "-c", p, "--check")
	if code != 0 || !strings.Contains(out, "ok (2 rings, 2 sources, 0 sinks)") {
		t.Fatalf("--check of the default: code %d out %q err %q", code, out, errs)
	}
	os.WriteFile(p, []byte("[rings.a]\n[[sinks]]\nkind = \"stats\"\nring = \"a\"\n"), 0o600)
	code, out, errs = runRunCLI(t, context.Background(), "run", "-c", p, "--check")
	if code != 0 || !strings.Contains(out, "ok (1 ring, 0 sources, 1 sink)") {
		t.Fatalf("--check of a one-ring file: code %d out %q err %q", code, out, errs)
	}
	os.WriteFile(p, []byte("[rings.a]\nslots = 3\n"), 0o600)
	code, _, errs = runRunCLI(t, context.Background(), "run", "-c", p, "--check")
	if code != 1 || !strings.Contains(errs, p+":2: rings.a.slots") {
		t.Fatalf("--check of a bad file: code %d err %q", code, errs)
	}
	// An unknown key does not hide the other problems: all are listed, in
	// file order (docs/config.md).
	os.WriteFile(p, []byte("[rings.a]\nslotz = 8\nslots = 3\n[rings.b]\npolicy = \"drop\"\n"), 0o600)
	code, _, errs = runRunCLI(t, context.Background(), "run", "-c", p, "--check")
	lines := strings.Split(strings.TrimSpace(errs), "\n")
	if code != 1 || len(lines) != 3 || !strings.Contains(lines[0], p+":2: rings.a.slotz: unknown key") ||
		!strings.Contains(lines[1], p+":3: rings.a.slots") || !strings.Contains(lines[2], p+":5: rings.b.policy") {
		t.Fatalf("--check of a file with an unknown key and bad values: code %d, want 1 and three problems in file order:\n%s", code, errs)
	}
	// A file that is not there: the message says how to write one.
	missing := filepath.Join(t.TempDir(), "missing.toml")
	code, _, errs = runRunCLI(t, context.Background(), "run", "-c", missing, "--check")
	if code != 1 || !strings.Contains(errs, "no such file") || !strings.Contains(errs, "'edgeipc run --print-default > "+missing+"'") {
		t.Fatalf("--check of a missing file: code %d err %q", code, errs)
	}
	// -c "$CONF" with CONF unset: a usage error, not the built-in demo.
	for _, args := range [][]string{{"run", "-c", "", "--check"}, {"run", "-c="}} {
		if code, out, errs := runRunCLI(t, context.Background(), args...); code != 2 || out != "" || !strings.Contains(errs, "-c needs a configuration file name") {
			t.Fatalf("%q: code %d, out %q, err %q; want 2 and a usage error", args, code, out, errs)
		}
	}
	if code, _, _ := runRunCLI(t, context.Background(), "run", "extra"); code != 2 {
		t.Fatalf("extra argument: code %d, want 2", code)
	}
	if code, _, _ := runRunCLI(t, context.Background(), "run", "--log-format", "xml", "--check"); code != 2 {
		t.Fatalf("bad log format: code %d, want 2", code)
	}
	// A stats interval short enough to flood the log (1ms, meant as 1m):
	// refused, in the file and on the command line; 100ms is the least.
	os.WriteFile(p, []byte("[runtime]\nstats_interval = \"1ms\"\n[rings.a]\n"), 0o600)
	if code, _, errs := runRunCLI(t, context.Background(), "run", "-c", p, "--check"); code != 1 || !strings.Contains(errs, p+":2: runtime.stats_interval: 1ms: at least 100ms") {
		t.Fatalf("--check of stats_interval = \"1ms\": code %d err %q; want 1 and an error at the key", code, errs)
	}
	os.WriteFile(p, []byte("[runtime]\nstats_interval = \"100ms\"\n[rings.a]\n"), 0o600)
	if code, _, errs := runRunCLI(t, context.Background(), "run", "-c", p, "--check"); code != 0 {
		t.Fatalf("--check of stats_interval = \"100ms\": code %d err %q", code, errs)
	}
	if code, _, errs := runRunCLI(t, context.Background(), "run", "--stats-interval", "1ns", "-c", p, "--check"); code != 2 || !strings.Contains(errs, "--stats-interval 1ns: at least 100ms") {
		t.Fatalf("--stats-interval 1ns: code %d err %q; want 2 and a usage error", code, errs)
	}
	// --print-default with another flag is a usage error that names it
	// (the other flag was ignored).
	if code, out, errs := runRunCLI(t, context.Background(), "run", "--print-default", "-c", p, "--check"); code != 2 || out != "" || !strings.Contains(errs, "drop -c, --check") {
		t.Fatalf("--print-default -c FILE --check: code %d, out %d bytes, err %q; want 2 naming -c and --check", code, len(out), errs)
	}
}

// runLogWriter lets the test read the log while the runtime writes it.
type runLogWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *runLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
func (w *runLogWriter) String() string { w.mu.Lock(); defer w.mu.Unlock(); return w.b.String() }

// `edgeipc run` with no -c: the built-in demo prints a line per ring and
// exits 0 when its context is cancelled.
func TestRunDefaultDemo(t *testing.T) {
	t.Setenv("EDGEIPC_SHM_DIR", t.TempDir())
	t.Setenv("EDGEIPC_CTL_QUEUE", fmt.Sprintf("edgeipc.clitest.%d", os.Getpid()))
	ctx, cancel := context.WithCancel(context.Background())
	var errw runLogWriter
	done := make(chan int, 1)
	go func() {
		done <- MainEnv(ctx, &Env{Stdin: strings.NewReader(""), Stdout: &bytes.Buffer{}, Stderr: &errw},
			[]string{"run", "--stats-interval", "200ms", "--log-format", "json"})
	}()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(errw.String(), `"ring":"camera"`) || !strings.Contains(errw.String(), `"ring":"imu"`) {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no stats lines; log:\n%s", errw.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit code %d; log:\n%s", code, errw.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("run did not stop")
	}
	if !strings.Contains(errw.String(), `"lat_p99_ns"`) {
		t.Fatalf("stats lines lack latency; log:\n%s", errw.String())
	}
	// The data keys docs/operations.md ("Logs for scripts") lists for a
	// ring's and a source's stats line are those the lines carry.
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(doc)
	if i := strings.Index(section, "## Logs for scripts"); i >= 0 {
		section = section[i:]
	}
	listed := func(bullet, end string) []string {
		i := strings.Index(section, bullet)
		if i < 0 {
			t.Fatalf("docs/operations.md, Logs for scripts: no %q", bullet)
		}
		line := section[i+len(bullet):]
		line = line[:strings.Index(line, end)]
		var keys []string
		for _, f := range strings.Split(line, "`")[1:] {
			if f != "" && !strings.ContainsAny(f, " ,;\n") {
				keys = append(keys, f)
			}
		}
		return keys
	}
	want := map[string][]string{
		"ring":   listed("- a ring:", "; a missing ring"),
		"source": listed("- a source:", ";\n"),
	}
	seen := map[string]bool{}
	for _, l := range strings.Split(errw.String(), "\n") {
		var rec struct {
			Data map[string]any `json:"data"`
		}
		if json.Unmarshal([]byte(l), &rec) != nil || rec.Data == nil || rec.Data["kind"] != "stats" {
			continue
		}
		for what, keys := range want {
			if _, ok := rec.Data[what]; !ok || what == "ring" && rec.Data["rate_hz"] == nil {
				continue
			}
			seen[what] = true
			for _, k := range keys {
				if _, ok := rec.Data[k]; !ok {
					t.Errorf("a %s stats line lacks %q, which docs/operations.md lists: %s", what, k, l)
				}
			}
			if len(rec.Data) != len(keys)+1 { // + kind
				t.Errorf("a %s stats line has keys docs/operations.md does not list (it lists %v): %s", what, keys, l)
			}
		}
	}
	if !seen["ring"] || !seen["source"] {
		t.Errorf("no ring or no source stats line in the log:\n%s", errw.String())
	}
}

// Ctrl-C (SIGINT) on a real process exits 0 after a clean shutdown.
func TestRunSIGINT(t *testing.T) {
	dir := t.TempDir()
	cmd := cliCmd(t, dir, "run", "--stats-interval", "100ms")
	cmd.Env = append(cmd.Env, fmt.Sprintf("EDGEIPC_CTL_QUEUE=edgeipc.clitest.sigint.%d", os.Getpid()))
	cmd.WaitDelay = 10 * time.Second
	var errw runLogWriter
	cmd.Stderr = &errw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(errw.String(), "ring imu") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("no stats line; log:\n%s", errw.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	if code := waitCmd(t, cmd); code != 0 {
		t.Fatalf("after SIGINT: exit %d; log:\n%s", code, errw.String())
	}
	if !strings.Contains(errw.String(), "stopped") {
		t.Fatalf("no clean stop in log:\n%s", errw.String())
	}
	if strings.Contains(errw.String(), "ignored: already shutting down") {
		t.Fatalf("one SIGINT was logged as a second one:\n%s", errw.String())
	}
}

// `edgeipc run 2>&1 | tee log`, then Ctrl-C: tee dies first, and the
// runtime's next log line goes to a pipe without a reader. The write fails
// (EPIPE) instead of killing the runtime with SIGPIPE, and the shutdown
// completes: exit 0, remove_on_exit ring and control queue removed.
func TestRunStderrReaderGone(t *testing.T) {
	dir := t.TempDir()
	queue := fmt.Sprintf("edgeipc.clitest.sigpipe.%d", os.Getpid())
	cfg := filepath.Join(dir, "c.toml")
	os.WriteFile(cfg, []byte(`
[runtime]
stats_interval = "0s"
[rings.t]
slots = 16
slot_payload = 64
remove_on_exit = true
[[sources]]
name = "gen"
kind = "synthetic"
ring = "t"
rate_hz = 100
size = 8
`), 0o600)
	cmd := cliCmd(t, dir, "run", "-c", cfg)
	cmd.Env = append(cmd.Env, "EDGEIPC_CTL_QUEUE="+queue)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	t.Cleanup(func() { cmd.Process.Kill(); mq.Unlink(queue) })
	// Read the log until the runtime is ready, then close the only reader.
	var seen bytes.Buffer
	buf := make([]byte, 4096)
	pr.SetReadDeadline(time.Now().Add(testTimeout))
	for !strings.Contains(seen.String(), "runtime ready") {
		n, err := pr.Read(buf)
		seen.Write(buf[:n])
		if err != nil {
			t.Fatalf("reading the log: %v; log:\n%s", err, seen.String())
		}
	}
	pr.Close()
	cmd.Process.Signal(syscall.SIGINT) // logs "shutting down" into the broken pipe
	if code := waitCmd(t, cmd); code != 0 {
		t.Fatalf("exit %d (%v) after SIGINT with a broken stderr pipe; want 0", code, cmd.ProcessState)
	}
	if _, err := os.Lstat(filepath.Join(dir, "edgeipc.t")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("remove_on_exit ring left behind (%v)", err)
	}
	if q, err := mq.Open(queue, os.O_RDONLY); err == nil {
		q.Close()
		t.Fatal("control queue left behind")
	}
}

// `edgeipc help run` says what a shutdown really does: exit 1 past
// shutdown_timeout, a second signal ignored, SIGPIPE ignored, what other
// signals do, and the relation to systemd's TimeoutStopSec.
func TestRunHelpShutdown(t *testing.T) {
	r := runCLI(t, "", "help", "run")
	mustCode(t, r, 0, "help run")
	text := strings.Join(strings.Fields(r.stdout), " ")
	for _, want := range []string{
		"the process groups still running get SIGKILL, the shutdown gets at most 1s more, and run exits 1",
		"A second SIGTERM/SIGINT during the shutdown is logged and ignored",
		"SIGPIPE is ignored",
		"signals 32 and 34 kill it",
		"TimeoutStopSec",
		"Exit codes: 0 after a clean shutdown, 1 if",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("help run lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(text, "exit 0 within shutdown_timeout") {
		t.Errorf("help run still promises exit 0 within shutdown_timeout")
	}
}

// TestRunJSONLogSinkKeys: a declared sink's stats line in the JSON log
// carries in its data exactly the keys docs/operations.md ("Logs for
// scripts") lists for a declared sink (TestRunDefaultDemo checks those of
// a ring and a source; the built-in configuration declares no sink).
func TestRunJSONLogSinkKeys(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("EDGEIPC_SHM_DIR", dir)
	cfg := filepath.Join(dir, "c.toml")
	if err := os.WriteFile(cfg, []byte(`
[control]
enabled = false
[rings.r]
slots = 16
slot_payload = 64
remove_on_exit = true
[[sources]]
name = "gen"
kind = "synthetic"
ring = "r"
rate_hz = 50
size = 8
[[sinks]]
name = "rec"
kind = "recorder"
ring = "r"
path = "`+filepath.Join(dir, "r.rec")+`"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "- a declared sink:")
	if !ok {
		t.Fatal(`docs/operations.md, Logs for scripts: no "- a declared sink:"`)
	}
	section, _, _ = strings.Cut(section, ".\n")
	var keys []string
	for i, f := range strings.Split(section, "`") {
		if i%2 == 1 {
			keys = append(keys, f)
		}
	}
	if len(keys) < 5 {
		t.Fatalf("read keys %v: the scan is broken", keys)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var errw runLogWriter
	done := make(chan int, 1)
	go func() {
		done <- MainEnv(ctx, &Env{Stdin: strings.NewReader(""), Stdout: &bytes.Buffer{}, Stderr: &errw},
			[]string{"run", "-c", cfg, "--stats-interval", "100ms", "--log-format", "json"})
	}()
	var line string
	deadline := time.Now().Add(testTimeout)
	for line == "" {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no sink stats line; log:\n%s", errw.String())
		}
		time.Sleep(20 * time.Millisecond)
		for _, l := range strings.Split(errw.String(), "\n") {
			if strings.Contains(l, `"sink":"rec"`) && strings.Contains(l, `"kind":"stats"`) {
				line = l
				break
			}
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d; log:\n%s", code, errw.String())
	}
	var rec struct {
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		t.Fatalf("%v: %s", err, line)
	}
	for _, k := range keys {
		if _, ok := rec.Data[k]; !ok {
			t.Errorf("the sink's stats line lacks %q, which docs/operations.md lists: %s", k, line)
		}
	}
	if len(rec.Data) != len(keys)+1 { // + kind
		t.Errorf("the sink's stats line has keys docs/operations.md does not list (it lists %v): %s", keys, line)
	}
}

// The environment variables that stand in for keys of the file are
// checked as those keys are: --check said "ok" for a $EDGEIPC_CTL_QUEUE
// that mq_open refuses (run then failed), and for a relative
// $EDGEIPC_SHM_DIR, with which run made its rings relative to its working
// directory and told exec children, which run in their own, that path.
func TestRunCheckEnvironment(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.toml")
	check := func(text string) (int, string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, errs := runRunCLI(t, context.Background(), "run", "-c", p, "--check")
		return code, errs
	}
	t.Setenv("EDGEIPC_SHM_DIR", dir)
	t.Setenv("EDGEIPC_CTL_QUEUE", "/edgeipc.ctl")
	if code, errs := check("[rings.a]\n"); code != 1 || !strings.Contains(errs, `$EDGEIPC_CTL_QUEUE "/edgeipc.ctl", which overrides [control] queue`) || !strings.Contains(errs, "without the leading slash") {
		t.Fatalf("--check with EDGEIPC_CTL_QUEUE=/edgeipc.ctl: code %d err %q; want 1 naming the variable", code, errs)
	}
	if code, errs := check("[control]\nenabled = false\n[rings.a]\n"); code != 0 {
		t.Fatalf("--check with the control plane off: code %d err %q; the queue's name does not matter", code, errs)
	}
	t.Setenv("EDGEIPC_CTL_QUEUE", "edgeipc.clitest.env")
	t.Setenv("EDGEIPC_SHM_DIR", "shm")
	if code, errs := check("[rings.a]\n"); code != 1 || !strings.Contains(errs, `$EDGEIPC_SHM_DIR "shm" (the segment directory: runtime.shm_dir is unset) must be an absolute path`) {
		t.Fatalf("--check with EDGEIPC_SHM_DIR=shm: code %d err %q; want 1 naming the variable", code, errs)
	}
	if code, errs := check("[runtime]\nshm_dir = \"" + dir + "\"\n[rings.a]\n"); code != 0 {
		t.Fatalf("--check with shm_dir set: code %d err %q; the variable is not used", code, errs)
	}
	if code, _, errs := runRunCLI(t, context.Background(), "run", "--check"); code != 1 || !strings.Contains(errs, "$EDGEIPC_SHM_DIR") {
		t.Fatalf("--check of the built-in configuration with EDGEIPC_SHM_DIR=shm: code %d err %q", code, errs)
	}
}
