package cli

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/edgeipc/edgeipc/shm"
)

// childEnv switches a re-executed test binary into the edgeipc command
// line: the child runs Main(os.Args[1:]) and exits. Test files are compiled
// after the package's files, so every command is registered by then.
const childEnv = "EDGEIPC_CLI_TEST_MAIN"

// childUIDEnv, set with childEnv, makes the child drop to that uid (and
// gid, with no supplementary groups) first: a test running as root sees
// what another user gets.
const childUIDEnv = "EDGEIPC_CLI_TEST_UID"

func init() {
	if os.Getenv(childEnv) == "1" {
		if s := os.Getenv(childUIDEnv); s != "" {
			id, _ := strconv.Atoi(s)
			for _, err := range []error{syscall.Setgroups(nil), syscall.Setgid(id), syscall.Setuid(id)} {
				if err != nil {
					fmt.Fprintln(os.Stderr, "drop to uid", id, ":", err)
					os.Exit(3)
				}
			}
		}
		os.Exit(Main(os.Args[1:]))
	}
}

// testTimeout bounds every command a test runs (a guard against hangs, not
// a speed assertion; qemu is slow).
const testTimeout = 60 * time.Second

var nameSeq atomic.Uint32

// uniqueName returns a ring name unique within this test process.
func uniqueName(prefix string) string {
	return prefix + "-" + strconv.Itoa(os.Getpid()) + "-" + strconv.Itoa(int(nameSeq.Add(1)))
}

type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs the command line in this process with stdin as input.
func runCLI(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return runCLIReader(t, strings.NewReader(stdin), args...)
}

func runCLIReader(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var out, errb bytes.Buffer
	code := MainEnv(ctx, &Env{Stdin: stdin, Stdout: &out, Stderr: &errb}, args)
	return result{code, out.String(), errb.String()}
}

// cliCmd returns a child process running the edgeipc command line with
// the segment directory dir.
func cliCmd(t *testing.T, dir string, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), childEnv+"=1", "EDGEIPC_SHM_DIR="+dir)
	// Wait returns at most this long after the child exits even if a
	// process it left holds its output pipes: under qemu-user a fork of
	// the child can deadlock before its exec (see internal/qemuwatch) and
	// outlive it with the pipes open, and Wait then never returned (CI hung
	// in TestBenchInterrupted under arm64).
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// waitCmd waits for cmd with the test timeout, killing it on expiry.
func waitCmd(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			return 0
		}
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		t.Fatalf("%v: %v", cmd.Args, err)
	case <-time.After(testTimeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%v did not finish within %v", cmd.Args, testTimeout)
	}
	return -1
}

func mustCode(t *testing.T, r result, want int, what string) {
	t.Helper()
	if r.code != want {
		t.Fatalf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", what, r.code, want, r.stdout, r.stderr)
	}
}

func lsJSON(t *testing.T, dir string) []lsEntry {
	t.Helper()
	r := runCLI(t, "", "ring", "ls", "--json", "--dir", dir)
	mustCode(t, r, 0, "ring ls --json")
	var out []lsEntry
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("ring ls --json output is not JSON: %v\n%s", err, r.stdout)
	}
	return out
}

func findEntry(list []lsEntry, name string) *lsEntry {
	for i := range list {
		if list[i].Name == name {
			return &list[i]
		}
	}
	return nil
}

func TestRingCreateListInspectRemove(t *testing.T) {
	dir := t.TempDir()
	name := uniqueName("rt")

	if ls := lsJSON(t, dir); len(ls) != 0 {
		t.Fatalf("empty dir lists %v", ls)
	}
	r := runCLI(t, "", "ring", "create", name, "--slots", "8", "--slot-size", "1k", "--policy", "block", "--dir", dir)
	mustCode(t, r, 0, "ring create")
	if !strings.Contains(r.stdout, "created ring "+name) {
		t.Errorf("create printed %q", r.stdout)
	}
	path := filepath.Join(dir, shm.FilePrefix+name)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("created mode %04o, want 0600", m)
	}

	// The name is taken now.
	r = runCLI(t, "", "ring", "create", name, "--dir", dir)
	mustCode(t, r, 1, "second ring create")
	if !strings.Contains(r.stderr, "exist") {
		t.Errorf("second create: stderr %q does not say the ring exists", r.stderr)
	}

	// A writer and a reader in this process show up in ls and inspect.
	ring, err := shm.Open(name, &shm.SegmentOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer ring.Close()
	w, err := ring.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	rd, err := ring.NewReader(&shm.ReaderOptions{From: shm.Oldest})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := w.Write([]byte("frame")); err != nil {
			t.Fatal(err)
		}
	}

	e := findEntry(lsJSON(t, dir), name)
	if e == nil || e.Kind != "ring" || e.Ring == nil {
		t.Fatalf("ring ls --json entry for %s: %+v", name, e)
	}
	if e.Mode != "0600" || e.Ring.Slots != 8 || e.Ring.SlotPayload != 1024 || e.Ring.Policy != "block" ||
		e.Ring.Head != 3 || e.Ring.WriterPID != os.Getpid() || !e.Ring.WriterAlive || e.Ring.Readers != 1 || e.Ring.ReadersAlive != 1 {
		t.Errorf("ring ls --json entry: %+v ring %+v", e, *e.Ring)
	}
	if e.UID != os.Getuid() || e.Path != path {
		t.Errorf("ls uid %d path %s, want %d %s", e.UID, e.Path, os.Getuid(), path)
	}
	r = runCLI(t, "", "ring", "ls", "--dir", dir)
	mustCode(t, r, 0, "ring ls")
	if !strings.Contains(r.stdout, name) || !strings.Contains(r.stdout, strconv.Itoa(os.Getpid())+" alive") {
		t.Errorf("ring ls table lacks the ring or its live writer:\n%s", r.stdout)
	}

	r = runCLI(t, "", "ring", "inspect", name, "--json", "--dir", dir)
	mustCode(t, r, 0, "ring inspect --json")
	var in inspectOut
	if err := json.Unmarshal([]byte(r.stdout), &in); err != nil {
		t.Fatalf("inspect --json: %v\n%s", err, r.stdout)
	}
	if in.Name != name || in.Slots != 8 || in.SlotPayload != 1024 || in.Policy != "block" || in.Head != 3 ||
		in.WriterPID != os.Getpid() || !in.WriterAlive || in.WriterEpoch == 0 || in.Mode != "0600" {
		t.Errorf("inspect --json: %+v", in)
	}
	if len(in.Readers) != 1 || in.Readers[0].PID != os.Getpid() || !in.Readers[0].Alive || in.Readers[0].Lag != 3 ||
		in.Totals.Readers != 1 || in.Totals.ReadersAlive != 1 || in.Totals.MaxLag != 3 {
		t.Errorf("inspect --json readers %+v totals %+v", in.Readers, in.Totals)
	}
	r = runCLI(t, "", "ring", "inspect", "--dir", dir, name) // flags before the name work too
	mustCode(t, r, 0, "ring inspect")
	for _, want := range []string{"ring " + name, "8 slots", "policy block", "writer    " + strconv.Itoa(os.Getpid()) + " alive", "readers   1 (1 alive)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("ring inspect output lacks %q:\n%s", want, r.stdout)
		}
	}

	rd.Close()
	w.Close()
	ring.Close()
	r = runCLI(t, "", "ring", "rm", name, "--dir", dir)
	mustCode(t, r, 0, "ring rm")
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("after ring rm, stat %s: %v", path, err)
	}
	if ls := lsJSON(t, dir); len(ls) != 0 {
		t.Errorf("after rm, ls shows %+v", ls)
	}
	r = runCLI(t, "", "ring", "rm", name, "--dir", dir)
	mustCode(t, r, 1, "ring rm of a missing ring")
	if !strings.Contains(r.stderr, "no such ring") {
		t.Errorf("rm of missing ring: stderr %q", r.stderr)
	}
	r = runCLI(t, "", "ring", "inspect", name, "--dir", dir)
	mustCode(t, r, 1, "ring inspect of a missing ring")
}

func TestRingCreateGroupMode(t *testing.T) {
	dir := t.TempDir()
	name := uniqueName("grp")
	gid := os.Getgid()
	r := runCLI(t, "", "ring", "create", name, "--group", strconv.Itoa(gid), "--slots", "2", "--slot-size", "64", "--dir", dir)
	mustCode(t, r, 0, "ring create --group")
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(dir, shm.FilePrefix+name), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o777 != 0o660 || int(st.Gid) != gid {
		t.Errorf("ring created with --group %d: mode %04o gid %d, want 0660 gid %d", gid, st.Mode&0o777, st.Gid, gid)
	}
}

func TestRingRemoveRefusesNonRing(t *testing.T) {
	dir := t.TempDir()
	name := uniqueName("sem")
	sem, err := shm.CreateSemaphore(name, 0, &shm.SegmentOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	sem.Close()
	path := filepath.Join(dir, shm.FilePrefix+name)

	// Commands that open a ring say what the segment is instead.
	for _, args := range [][]string{
		{"ring", "inspect", name},
		{"sub", name},
		{"hz", name},
		{"pub", name},
	} {
		r := runCLI(t, "x\n", append(args, "--dir", dir)...)
		mustCode(t, r, 1, strings.Join(args, " ")+" of a semaphore")
		if !strings.Contains(r.stderr, path+" is a semaphore segment, not a ring") {
			t.Errorf("%s of a semaphore: stderr %q", strings.Join(args, " "), r.stderr)
		}
	}

	r := runCLI(t, "", "ring", "rm", name, "--dir", dir)
	mustCode(t, r, 1, "ring rm of a semaphore")
	if !strings.Contains(r.stderr, "semaphore") || !strings.Contains(r.stderr, "--force") {
		t.Errorf("rm of a semaphore: stderr %q should name the kind and --force", r.stderr)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("ring rm without --force removed the semaphore: %v", err)
	}
	if e := findEntry(lsJSON(t, dir), name); e == nil || e.Kind != "semaphore" || e.Ring != nil {
		t.Errorf("ls entry for a semaphore: %+v", e)
	}
	r = runCLI(t, "", "ring", "rm", "--force", name, "--dir", dir)
	mustCode(t, r, 0, "ring rm --force")
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("ring rm --force left %s: %v", path, err)
	}
}

// TestRingRemoveStale kills a real "edgeipc pub" process holding a ring's
// writer lease with SIGKILL and checks that "ring rm --stale" removes that
// ring but keeps one whose writer (this process) is alive.
func TestRingRemoveStale(t *testing.T) {
	dir := t.TempDir()
	dead, live := uniqueName("dead"), uniqueName("live")
	opts := &shm.SegmentOptions{Dir: dir}
	for _, n := range []string{dead, live} {
		mustCode(t, runCLI(t, "", "ring", "create", n, "--slots", "4", "--slot-size", "64", "--dir", dir), 0, "ring create")
	}
	lw, err := shm.OpenWriter(live, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer lw.Close()

	// The child takes the lease and waits on its stdin, which we never close.
	child := cliCmd(t, dir, "pub", dead)
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	ring, err := shm.Open(dead, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer ring.Close()
	for deadline := time.Now().Add(testTimeout); ; time.Sleep(10 * time.Millisecond) {
		if in := ring.Inspect(); in.WriterPID == child.Process.Pid && in.WriterAlive {
			break
		}
		if time.Now().After(deadline) {
			child.Process.Kill()
			child.Wait()
			t.Fatalf("child pub %d never took the writer lease: %+v", child.Process.Pid, ring.Inspect())
		}
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := waitCmd(t, child); code != -1 {
		t.Fatalf("SIGKILLed child exited with code %d", code)
	}
	if in := ring.Inspect(); in.WriterPID != child.Process.Pid || in.WriterAlive {
		t.Fatalf("after SIGKILL the lease should name the dead pid %d: %+v", child.Process.Pid, in)
	}

	r := runCLI(t, "", "ring", "rm", "--stale", "--dir", dir)
	mustCode(t, r, 0, "ring rm --stale")
	if !strings.Contains(r.stdout, "removed "+dead) || !strings.Contains(r.stdout, "kept "+live+": writer pid "+strconv.Itoa(os.Getpid())+" is alive") {
		t.Errorf("ring rm --stale output:\n%s", r.stdout)
	}
	ls := lsJSON(t, dir)
	if findEntry(ls, dead) != nil || findEntry(ls, live) == nil {
		t.Errorf("after rm --stale: %+v (want %s gone and %s kept)", ls, dead, live)
	}
	// Naming the live ring with --stale still keeps it.
	r = runCLI(t, "", "ring", "rm", "--stale", live, "--dir", dir)
	mustCode(t, r, 0, "ring rm --stale NAME")
	if findEntry(lsJSON(t, dir), live) == nil {
		t.Errorf("ring rm --stale %s removed a ring with a live writer", live)
	}
}

// TestRingNonFiles: a symbolic link, a directory and a FIFO named like a
// segment are listed with their kind, and ring rm --force unlinks the link
// (not its target) and the FIFO but refuses the directory.
func TestRingNonFiles(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "target")
	if err := os.WriteFile(target, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	link, sub, fifo := uniqueName("link"), uniqueName("dir"), uniqueName("fifo")
	path := func(n string) string { return filepath.Join(dir, shm.FilePrefix+n) }
	if err := os.Symlink(target, path(link)); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path(sub), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(path(fifo), 0o600); err != nil {
		t.Fatal(err)
	}

	ls := lsJSON(t, dir)
	for n, kind := range map[string]string{link: "symlink", sub: "directory", fifo: "fifo"} {
		if e := findEntry(ls, n); e == nil || e.Kind != kind || e.Ring != nil {
			t.Errorf("ring ls --json entry for %s: %+v, want kind %s", n, e, kind)
		}
	}
	if e := findEntry(ls, link); e != nil && e.Target != target {
		t.Errorf("ring ls --json: symlink target %q, want %q", e.Target, target)
	}
	r := runCLI(t, "", "ring", "ls", "--dir", dir)
	mustCode(t, r, 0, "ring ls")
	if !strings.Contains(r.stdout, "a link to "+target) {
		t.Errorf("ring ls table does not show the link's target:\n%s", r.stdout)
	}

	r = runCLI(t, "", "ring", "create", link, "--dir", dir)
	mustCode(t, r, 1, "ring create over a symlink")
	r = runCLI(t, "", "ring", "rm", link, fifo, "--dir", dir)
	mustCode(t, r, 1, "ring rm of a symlink and a FIFO")
	for _, want := range []string{"is a symbolic link, not a ring; use --force", "is a FIFO, not a ring; use --force"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("ring rm without --force: stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	r = runCLI(t, "", "ring", "rm", "--force", link, fifo, sub, "--dir", dir)
	mustCode(t, r, 1, "ring rm --force of a symlink, a FIFO and a directory")
	if !strings.Contains(r.stdout, "removed "+link) || !strings.Contains(r.stdout, "removed "+fifo) || !strings.Contains(r.stderr, path(sub)+" is a directory") {
		t.Errorf("ring rm --force:\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
	}
	for _, n := range []string{link, fifo} {
		if _, err := os.Lstat(path(n)); !os.IsNotExist(err) {
			t.Errorf("ring rm --force left %s: %v", path(n), err)
		}
	}
	if b, err := os.ReadFile(target); err != nil || string(b) != "keep me" {
		t.Errorf("ring rm --force of a symlink touched its target: %q, %v", b, err)
	}
	if fi, err := os.Lstat(path(sub)); err != nil || !fi.IsDir() {
		t.Errorf("ring rm --force removed the directory %s: %v", path(sub), err)
	}
	// Now the name is free for a ring.
	mustCode(t, runCLI(t, "", "ring", "create", link, "--slots", "2", "--slot-size", "64", "--dir", dir), 0, "ring create after removing the symlink")

	// Anyone may make such a link in /dev/shm, pointing anywhere: a
	// target with terminal escapes and a newline is shown escaped (it was
	// written to the terminal as it was).
	evil := uniqueName("evil")
	if err := os.Symlink("\x1b]0;owned\x07\x1b[2J\nFORGED", path(evil)); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, "", "ring", "ls", "--dir", dir)
	mustCode(t, r, 0, "ring ls with a hostile link")
	if strings.ContainsAny(r.stdout, "\x1b\x07") || strings.Contains(r.stdout, "\nFORGED") || !strings.Contains(r.stdout, `a link to \x1b]0;owned\a\x1b[2J\nFORGED`) {
		t.Errorf("ring ls shows a link target unescaped:\n%q", r.stdout)
	}
}

// TestRingRemoveInUse: ring rm refuses a ring with a live writer or reader,
// naming their pids; with --force it removes it, and a sub and an hz
// waiting on it (real processes) notice and exit 1 instead of waiting
// forever.
func TestRingRemoveInUse(t *testing.T) {
	dir := t.TempDir()
	name := uniqueName("inuse")
	path := filepath.Join(dir, shm.FilePrefix+name)
	mustCode(t, runCLI(t, "", "ring", "create", name, "--slots", "4", "--slot-size", "64", "--dir", dir), 0, "ring create")
	ring, err := shm.Open(name, &shm.SegmentOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer ring.Close()
	w, err := ring.NewWriter()
	if err != nil {
		t.Fatal(err)
	}

	var subErr, hzErr bytes.Buffer
	sub := cliCmd(t, dir, "sub", name)
	sub.Stderr = &subErr
	hz := cliCmd(t, dir, "hz", name, "--window", "100ms")
	hz.Stderr = &hzErr
	for _, c := range []*exec.Cmd{sub, hz} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		defer c.Process.Kill() // no-op once waited for
	}
	joined := func(pid int) func() bool {
		return func() bool {
			for _, rd := range ring.Inspect().Readers {
				if rd.PID == pid && rd.Alive {
					return true
				}
			}
			return false
		}
	}
	eventually(t, "sub to join the ring", joined(sub.Process.Pid))
	eventually(t, "hz to join the ring", joined(hz.Process.Pid))

	r := runCLI(t, "", "ring", "rm", name, "--dir", dir)
	mustCode(t, r, 1, "ring rm of a ring in use")
	for _, want := range []string{
		"writer pid " + strconv.Itoa(os.Getpid()) + " is alive",
		"reader pid " + strconv.Itoa(sub.Process.Pid) + " is alive",
		"reader pid " + strconv.Itoa(hz.Process.Pid) + " is alive",
		"--force",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("ring rm of a ring in use: stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("ring rm without --force removed a ring in use: %v", err)
	}

	w.Close()
	r = runCLI(t, "", "ring", "rm", "--force", name, "--dir", dir)
	mustCode(t, r, 0, "ring rm --force of a ring in use")
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("ring rm --force left %s: %v", path, err)
	}
	if code := waitCmd(t, sub); code != 1 || !strings.Contains(subErr.String(), "ring "+name+" was removed") {
		t.Errorf("sub of a removed ring: exit %d, stderr %q; want exit 1 saying the ring was removed", code, subErr.String())
	}
	if code := waitCmd(t, hz); code != 1 || !strings.Contains(hzErr.String(), "ring "+name+" was removed") {
		t.Errorf("hz of a removed ring: exit %d, stderr %q; want exit 1 saying the ring was removed", code, hzErr.String())
	}
}

// TestRingListLongName: a 200-character name is cut short in the ring ls
// table, so it does not widen the NAME column of every row; --json keeps it.
func TestRingListLongName(t *testing.T) {
	dir := t.TempDir()
	long := uniqueName("long")
	long += strings.Repeat("x", 200-len(long))
	short := uniqueName("s")
	for _, n := range []string{long, short} {
		mustCode(t, runCLI(t, "", "ring", "create", n, "--slots", "2", "--slot-size", "64", "--dir", dir), 0, "ring create")
	}
	r := runCLI(t, "", "ring", "ls", "--dir", dir)
	mustCode(t, r, 0, "ring ls")
	clipped := long[:lsNameWidth-1] + "…"
	if strings.Contains(r.stdout, long) || !strings.Contains(r.stdout, clipped+"  ring") {
		t.Errorf("ring ls does not cut the long name to %q:\n%s", clipped, r.stdout)
	}
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if i := strings.Index(l, "  "); i < 0 || utf8.RuneCountInString(l[:i]) > lsNameWidth {
			t.Errorf("NAME column wider than %d: %q", lsNameWidth, l)
		}
	}
	if e := findEntry(lsJSON(t, dir), long); e == nil || e.Kind != "ring" {
		t.Errorf("ring ls --json lacks the whole long name: %+v", e)
	}
}

// TestRingMissingNamesFix: every command that opens a ring says, for one
// that does not exist, how to list the rings and how to make it, with the
// --dir the user gave.
func TestRingMissingNamesFix(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"ring", "inspect", "nosuch"},
		{"sub", "nosuch"},
		{"hz", "nosuch"},
		{"pub", "nosuch"},
		{"ring", "rm", "nosuch"},
	} {
		what := strings.Join(args, " ")
		r := runCLI(t, "x\n", append(args, "--dir", dir)...)
		mustCode(t, r, 1, what+" of a missing ring")
		if !strings.Contains(r.stderr, "'edgeipc ring ls --dir "+dir+"'") {
			t.Errorf("%s: stderr %q does not say how to list the rings", what, r.stderr)
		}
		if args[0] != "ring" || args[1] != "rm" {
			if !strings.Contains(r.stderr, "'edgeipc ring create nosuch --dir "+dir+"'") || strings.Contains(r.stderr, "file does not exist") {
				t.Errorf("%s: stderr %q; want one hint to create it, not the errno", what, r.stderr)
			}
		}
		// Errors of a ring subcommand name it, as usage errors do.
		if args[0] == "ring" && !strings.HasPrefix(r.stderr, "edgeipc ring "+args[1]+": ") {
			t.Errorf("%s: stderr %q does not start with the subcommand's name", what, r.stderr)
		}
	}
	// With $EDGEIPC_SHM_DIR there is no --dir to repeat.
	t.Setenv("EDGEIPC_SHM_DIR", dir)
	r := runCLI(t, "", "ring", "inspect", "nosuch")
	mustCode(t, r, 1, "ring inspect of a missing ring")
	if !strings.Contains(r.stderr, "'edgeipc ring ls'") || !strings.Contains(r.stderr, filepath.Join(dir, shm.FilePrefix+"nosuch")) {
		t.Errorf("ring inspect with $EDGEIPC_SHM_DIR: %q", r.stderr)
	}
}

// TestRingDirMissingNamesFix: with a segment directory that does not
// exist, every command that opens or creates a ring says so and names
// where the directory came from. sub, hz, pub and ring inspect suggested
// 'edgeipc ring create NAME --dir DIR', which fails there too, and ring
// create and pub --create said only "statfs DIR: no such file or
// directory".
func TestRingDirMissingNamesFix(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nosuch")
	for _, args := range [][]string{
		{"ring", "inspect", "r"},
		{"ring", "create", "r"},
		{"sub", "r"},
		{"hz", "r"},
		{"pub", "r"},
		{"pub", "r", "--create"},
	} {
		what := strings.Join(args, " ")
		r := runCLI(t, "x\n", append(args, "--dir", dir)...)
		mustCode(t, r, 1, what+" in a missing directory")
		want := "segment directory " + dir + " does not exist: check --dir "
		if !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "mkdir -m 0700 "+dir) ||
			strings.Contains(r.stderr, "ring create r") || strings.Contains(r.stderr, "statfs") {
			t.Errorf("%s: stderr %q; want %q and how to create it", what, r.stderr, want)
		}
	}
	t.Setenv("EDGEIPC_SHM_DIR", dir)
	r := runCLI(t, "", "sub", "r")
	mustCode(t, r, 1, "sub in a missing $EDGEIPC_SHM_DIR")
	if !strings.Contains(r.stderr, "does not exist: check $EDGEIPC_SHM_DIR ") {
		t.Errorf("sub with $EDGEIPC_SHM_DIR: %q", r.stderr)
	}
}

// TestRingCreateExistingNamesDir: ring create of a name that exists in
// the --dir directory suggests the ring rm that removes it, with that
// --dir; the suggestion had none, so pasted it looked in /dev/shm. The
// same for the ring ls suggested for a file that is not a ring.
func TestRingCreateExistingNamesDir(t *testing.T) {
	dir := t.TempDir()
	name := uniqueName("again")
	mustCode(t, runCLI(t, "", "ring", "create", name, "--slots", "2", "--slot-size", "64", "--dir", dir), 0, "ring create")
	r := runCLI(t, "", "ring", "create", name, "--slots", "2", "--slot-size", "64", "--dir", dir)
	mustCode(t, r, 1, "ring create of an existing ring")
	if want := "'edgeipc ring rm " + name + " --dir " + dir + "'"; !strings.Contains(r.stderr, want) {
		t.Errorf("ring create of an existing ring: stderr %q lacks %s", r.stderr, want)
	}
	// A file there that is not a ring: the ring ls to look at it has the
	// --dir too.
	if err := os.WriteFile(filepath.Join(dir, shm.FilePrefix+"junk"), []byte("hi\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"ring", "inspect"}, {"sub"}, {"hz"}, {"pub"}} {
		r := runCLI(t, "x\n", append(args, "junk", "--dir", dir)...)
		mustCode(t, r, 1, strings.Join(args, " ")+" of a file that is not a ring")
		if want := "not a ring (see 'edgeipc ring ls --dir " + dir + "')"; !strings.Contains(r.stderr, want) {
			t.Errorf("%s junk --dir: stderr %q lacks %s", strings.Join(args, " "), r.stderr, want)
		}
	}
	// With $EDGEIPC_SHM_DIR too the command names the directory (shm's
	// hint does, for every directory but /dev/shm: a runtime's log as well).
	t.Setenv("EDGEIPC_SHM_DIR", dir)
	r = runCLI(t, "", "ring", "create", name)
	mustCode(t, r, 1, "ring create of an existing ring")
	if want := "'edgeipc ring rm " + name + " --dir " + dir + "'"; !strings.Contains(r.stderr, want) {
		t.Errorf("ring create of an existing ring: stderr %q lacks %s", r.stderr, want)
	}
}

// TestRingPermissionDenied: a ring this user may not open is reported as
// such, with its owner and mode and how to share it, by every command that
// opens it; ring ls says it cannot read it, instead of only "unknown".
func TestRingPermissionDenied(t *testing.T) {
	// A directory the other user can enter.
	dir, err := os.MkdirTemp("", "edgeipc-cli-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	name := uniqueName("perm")
	mustCode(t, runCLI(t, "", "ring", "create", name, "--slots", "4", "--slot-size", "64", "--dir", dir), 0, "ring create")
	path := filepath.Join(dir, shm.FilePrefix+name)
	run := func(args ...string) (int, string) {
		cmd := cliCmd(t, dir, append(args, "--dir", dir)...)
		if os.Geteuid() == 0 {
			cmd.Env = append(cmd.Env, childUIDEnv+"=65534")
		}
		cmd.Stdin = strings.NewReader("x\n")
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return waitCmd(t, cmd), errb.String()
	}
	if os.Geteuid() != 0 {
		// The owner itself is refused a file of mode 0000.
		if err := os.Chmod(path, 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"ring", "inspect", name}, {"sub", name}, {"hz", name}, {"pub", name}, {"pub", name, "--create"}} {
		what := strings.Join(args, " ")
		code, errs := run(args...)
		if code != 1 || !strings.Contains(errs, "permission denied: "+path+" belongs to ") || !strings.Contains(errs, "chmod 0660 "+path) ||
			strings.Contains(errs, "not a ring") {
			t.Errorf("%s of a ring this user may not open: exit %d, stderr %q; want 1 naming the owner, mode and fix", what, code, errs)
		}
	}
	cmd := cliCmd(t, dir, "ring", "ls", "--json", "--dir", dir)
	if os.Geteuid() == 0 {
		cmd.Env = append(cmd.Env, childUIDEnv+"=65534")
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ring ls --json: %v", err)
	}
	var ls []lsEntry
	if err := json.Unmarshal(out, &ls); err != nil {
		t.Fatalf("ring ls --json: %v\n%s", err, out)
	}
	if e := findEntry(ls, name); e == nil || !strings.Contains(e.Error, "not readable by you") || !strings.Contains(e.Error, "edgeipc ring inspect "+name) {
		t.Errorf("ring ls entry of an unreadable ring: %+v", e)
	}
}

// stickyDir is a segment directory like /dev/shm (mode 1777), for tests
// that act as another user; it skips the test unless it runs as root.
func stickyDir(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("acting as another user needs root to switch to it")
	}
	dir, err := os.MkdirTemp("", "edgeipc-cli-sticky-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runAsNobody runs the CLI with args as uid and gid 65534.
func runAsNobody(t *testing.T, dir string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := cliCmd(t, dir, args...)
	cmd.Env = append(cmd.Env, childUIDEnv+"=65534")
	var outb, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outb, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	code = waitCmd(t, cmd)
	return code, outb.String(), errb.String()
}

// ring rm of another user's ring in a sticky directory (/dev/shm) names
// the owner: it said only "operation not permitted".
func TestRingRmForeignNamesOwner(t *testing.T) {
	dir := stickyDir(t)
	name := uniqueName("sticky")
	mustCode(t, runCLI(t, "", "ring", "create", name, "--slots", "4", "--slot-size", "64", "--dir", dir), 0, "ring create")
	for _, args := range [][]string{
		{"ring", "rm", name, "--dir", dir},
		{"ring", "rm", name, "--force", "--dir", dir}, // the unlink is refused
	} {
		code, _, stderr := runAsNobody(t, dir, args...)
		if code != 1 || !strings.Contains(stderr, "belongs to uid 0") || !strings.Contains(stderr, "remove it as that user or root") {
			t.Fatalf("%s of root's ring as uid 65534: exit %d, stderr %q; want 1 naming the owner", strings.Join(args, " "), code, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, shm.FilePrefix+name)); err != nil {
		t.Fatalf("the ring is gone: %v", err)
	}
}

// 'ring rm --stale' with no NAME, as a user who can read but not remove
// another user's stale ring (group 0660, sticky directory), keeps it, says
// why, and exits 0 having removed its own: before, the sweep failed (exit
// 1, "operation not permitted") on every such ring.
func TestRingRmStaleSweepKeepsOthersRings(t *testing.T) {
	dir := stickyDir(t)
	theirs := uniqueName("theirs")
	mustCode(t, runCLI(t, "", "ring", "create", theirs, "--slots", "4", "--slot-size", "64", "--group", "65534", "--dir", dir), 0, "ring create (root's, group 65534)")
	mine := uniqueName("mine")
	for _, args := range [][]string{
		{"ring", "create", mine, "--slots", "4", "--slot-size", "64", "--dir", dir},
		{"ring", "rm", "--stale", "--dir", dir},
	} {
		code, stdout, stderr := runAsNobody(t, dir, args...)
		if code != 0 {
			t.Fatalf("%s as uid 65534: exit %d, stderr %q", strings.Join(args, " "), code, stderr)
		}
		if args[1] == "rm" && (!strings.Contains(stdout, "removed "+mine) ||
			!strings.Contains(stdout, "kept "+theirs+": no live writer or reader, but it belongs to uid 0")) {
			t.Fatalf("ring rm --stale as uid 65534: stdout %q", stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, shm.FilePrefix+theirs)); err != nil {
		t.Fatalf("root's ring is gone: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, shm.FilePrefix+mine)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("uid 65534's stale ring is still there: %v", err)
	}
}

// ring create in a directory every user may write and that is not sticky
// fails (exit 1, not a usage error) and says how to make it safe.
func TestRingCreateRefusesWorldWritableDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "", "ring", "create", uniqueName("open"), "--dir", dir)
	mustCode(t, r, 1, "ring create in a world-writable directory")
	if !strings.Contains(r.stderr, "not sticky") || !strings.Contains(r.stderr, "chmod +t "+dir) || strings.Contains(r.stderr, "--slots") {
		t.Errorf("ring create in a world-writable directory: stderr %q", r.stderr)
	}
}

// TestCreateOverNonRingNamesFix: ring create and pub --create of a name
// taken by something that is not a ring (a semaphore, a FIFO, a symbolic
// link, a directory) say what it is and give a command that removes it.
// ring create suggested 'edgeipc ring rm NAME', which refuses all of them
// (it needs --force, and never removes a directory); pub --create printed
// shm's open error ("not a regular file", "is a directory").
func TestCreateOverNonRingNamesFix(t *testing.T) {
	dir := t.TempDir()
	path := func(n string) string { return filepath.Join(dir, shm.FilePrefix+n) }
	sem, fifo, link, sub := uniqueName("sem"), uniqueName("fifo"), uniqueName("link"), uniqueName("dir")
	s, err := shm.CreateSemaphore(sem, 0, &shm.SegmentOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := syscall.Mkfifo(path(fifo), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(t.TempDir(), "target"), path(link)); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path(sub), 0o700); err != nil {
		t.Fatal(err)
	}
	for n, kind := range map[string]string{sem: "a semaphore segment", fifo: "a FIFO", link: "a symbolic link", sub: "a directory"} {
		fix := "'edgeipc ring rm --force " + n + " --dir " + dir + "'"
		if n == sub {
			fix = "rmdir " + path(sub)
		}
		for _, args := range [][]string{{"ring", "create", n}, {"pub", n, "--create"}} {
			what := strings.Join(args, " ") + " over " + kind
			r := runCLI(t, "x\n", append(args, "--slots", "2", "--slot-size", "64", "--dir", dir)...)
			mustCode(t, r, 1, what)
			if !strings.Contains(r.stderr, path(n)+" is "+kind+", not a ring") || !strings.Contains(r.stderr, fix) {
				t.Errorf("%s: stderr %q; want it to say what is there and %s", what, r.stderr, fix)
			}
		}
		if n == sub {
			continue
		}
		// The command suggested works, and then the ring can be created.
		mustCode(t, runCLI(t, "", "ring", "rm", "--force", n, "--dir", dir), 0, "the suggested ring rm --force")
		mustCode(t, runCLI(t, "", "ring", "create", n, "--slots", "2", "--slot-size", "64", "--dir", dir), 0, "ring create after removing "+kind)
	}
}

// TestRingJSONDocumented: every key that 'ring ls --json' and 'ring
// inspect --json' print, at any depth, is named in 'edgeipc help ring'
// (the shapes scripts rely on were written down nowhere), and each kind
// ls reports is listed there.
func TestRingJSONDocumented(t *testing.T) {
	dir := t.TempDir()
	name := uniqueName("doc")
	mustCode(t, runCLI(t, "", "ring", "create", name, "--slots", "4", "--slot-size", "64", "--dir", dir), 0, "ring create")
	w, err := shm.OpenWriter(name, &shm.SegmentOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rd, err := shm.OpenReader(name, &shm.SegmentOptions{Dir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	// A symbolic link (target) and a ring too short to open (error).
	if err := os.Symlink("elsewhere", filepath.Join(dir, shm.FilePrefix+"link")); err != nil {
		t.Fatal(err)
	}
	short := make([]byte, 100)
	binary.LittleEndian.PutUint32(short, 0x52504945) // the ring magic
	if err := os.WriteFile(filepath.Join(dir, shm.FilePrefix+"short"), short, 0o600); err != nil {
		t.Fatal(err)
	}

	help := runCLI(t, "", "help", "ring")
	mustCode(t, help, 0, "help ring")
	paragraph := func(start string) string {
		i := strings.Index(help.stdout, start)
		if i < 0 {
			t.Fatalf("help ring has no paragraph %q:\n%s", start, help.stdout)
		}
		p, _, _ := strings.Cut(help.stdout[i:], "\n\n")
		return p
	}
	var keys func(v any, into map[string]bool)
	keys = func(v any, into map[string]bool) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				into[k] = true
				keys(x, into)
			}
		case []any:
			for _, x := range v {
				keys(x, into)
			}
		}
	}
	for _, c := range []struct{ para, args string }{
		{"ring ls --json", "ring ls --json"},
		{"ring inspect --json", "ring inspect " + name + " --json"},
	} {
		r := runCLI(t, "", append(strings.Fields(c.args), "--dir", dir)...)
		mustCode(t, r, 0, c.args)
		var v any
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
			t.Fatalf("%s: %v\n%s", c.args, err, r.stdout)
		}
		found := map[string]bool{}
		keys(v, found)
		doc := paragraph(c.para)
		for k := range found {
			if !strings.Contains(doc, `"`+k+`"`) {
				t.Errorf("%s prints the key %q, which 'edgeipc help ring' does not name:\n%s", c.args, k, doc)
			}
		}
		if c.para == "ring ls --json" {
			for _, k := range []string{"target", "error", "slot_payload", "readers_alive"} {
				if !found[k] {
					t.Errorf("ring ls --json: no %q key in %s", k, r.stdout)
				}
			}
			for _, e := range lsJSON(t, dir) {
				if !strings.Contains(doc, e.Kind) {
					t.Errorf("ring ls --json reports kind %q, which help does not list:\n%s", e.Kind, doc)
				}
			}
		}
	}
}

// TestCreateGroupNotMember: ring create and pub --create with --group of a
// group the user is not in are usage errors (exit 2) that name the user,
// the group and the fix; they failed with exit 1 and shm's "fchown to
// group 0: operation not permitted (are you a member of it?)". Nothing is
// left behind.
func TestCreateGroupNotMember(t *testing.T) {
	dir := stickyDir(t) // uid 65534 may create files there
	name := uniqueName("grp")
	for _, args := range [][]string{
		{"ring", "create", name, "--group", "0", "--slots", "2", "--slot-size", "64", "--dir", dir},
		{"pub", name, "--create", "--group", "0", "--slots", "2", "--slot-size", "64", "--dir", dir},
	} {
		what := strings.Join(args[:3], " ") + " --group 0 as uid 65534"
		code, _, stderr := runAsNobody(t, dir, args...)
		if code != ExitUsage || !strings.Contains(stderr, `bad --group "0": you (uid 65534) are not a member of group `) ||
			!strings.Contains(stderr, "id -Gn") || strings.Contains(stderr, "fchown") {
			t.Errorf("%s: exit %d, stderr %q; want 2 naming the user, the group and the fix", what, code, stderr)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, shm.FilePrefix+name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused ring create left %s: %v", name, err)
	}
}
