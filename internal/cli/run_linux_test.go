package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeipc/edgeipc/internal/mq"
)

// Under systemd the runtime's stderr is the journal's stream, named by
// $JOURNAL_STREAM (device:inode). Each line then starts with its syslog
// priority (<3> error, <4> warning, <6> info), which journald takes off
// and records: without it every line was priority 6, and `journalctl -p
// warning` showed no error. The stream here is a real pipe, and
// JOURNAL_STREAM names it as systemd would name its socket; a
// JOURNAL_STREAM that names another file changes nothing.
func TestRunJournalPriorities(t *testing.T) {
	for _, tc := range []struct {
		format  string
		journal bool
	}{{"text", true}, {"json", true}, {"text", false}} {
		t.Run(fmt.Sprintf("%s/journal=%v", tc.format, tc.journal), func(t *testing.T) {
			lines := runWithJournalStream(t, tc.format, tc.journal)
			want := map[string]string{
				"edgeipc runtime ready":  "<6>",
				"reload failed":          "<3>",
				"reload applied, except": "<4>",
				// "(terminated)", or "(terminated signal received)" when
				// run's own handler of the same SIGTERM ended the context
				// first.
				"shutting down (": "<6>",
			}
			for _, l := range lines {
				for msg, prio := range want {
					if !strings.Contains(l, msg) {
						continue
					}
					delete(want, msg)
					if !tc.journal {
						if strings.HasPrefix(l, "<") {
							t.Errorf("a line has a priority prefix, but stderr is not the journal's stream: %q", l)
						}
						continue
					}
					rest, ok := strings.CutPrefix(l, prio)
					if !ok {
						t.Errorf("line %q does not start with %s", l, prio)
					}
					if tc.format == "json" && !json.Valid([]byte(rest)) {
						t.Errorf("after its prefix, %q is not a JSON object", rest)
					}
				}
			}
			for msg := range want {
				t.Errorf("no line says %q; log:\n%s", msg, strings.Join(lines, "\n"))
			}
		})
	}
}

// runWithJournalStream runs `edgeipc run` with its stderr a pipe and
// JOURNAL_STREAM naming that pipe (or, with journal false, another file),
// makes it log an error (a reload of a broken file) and a warning (a
// reload of a key that needs a restart), stops it and returns its log.
func runWithJournalStream(t *testing.T, format string, journal bool) []string {
	dir := t.TempDir()
	queue := fmt.Sprintf("edgeipc.clitest.journal.%d.%d", os.Getpid(), time.Now().UnixNano()%1e9)
	cfg := filepath.Join(dir, "c.toml")
	text := "[runtime]\nstats_interval = \"0s\"\n[rings.t]\nslots = 16\nslot_payload = 64\n"
	os.WriteFile(cfg, []byte(text), 0o600)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	stream := pw
	if !journal {
		f, err := os.Create(filepath.Join(dir, "other"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		stream = f
	}
	fi, err := stream.Stat()
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	cmd := cliCmd(t, dir, "run", "-c", cfg, "--log-format", format)
	cmd.Env = append(cmd.Env, "EDGEIPC_CTL_QUEUE="+queue, fmt.Sprintf("JOURNAL_STREAM=%d:%d", st.Dev, st.Ino))
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	t.Cleanup(func() { cmd.Process.Kill(); mq.Unlink(queue) })
	var log runLogWriter
	copied := make(chan struct{})
	go func() { io.Copy(&log, pr); close(copied) }()
	waitLog := func(want string) {
		t.Helper()
		deadline := time.Now().Add(testTimeout)
		for !strings.Contains(log.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("the log never said %q; log:\n%s", want, log.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitLog("runtime ready")
	os.WriteFile(cfg, []byte(text+"[rings.t]\n"), 0o600) // a table defined twice
	cmd.Process.Signal(syscall.SIGHUP)
	waitLog("reload failed")
	os.WriteFile(cfg, []byte(text+"[control]\nmode = \"0660\"\n"), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	waitLog("reload applied, except")
	cmd.Process.Signal(syscall.SIGTERM)
	if code := waitCmd(t, cmd); code != 0 {
		t.Fatalf("exit %d; log:\n%s", code, log.String())
	}
	<-copied
	return strings.Split(strings.TrimSpace(log.String()), "\n")
}

// A SIGHUP that comes while run reads its configuration file (a reload
// asked for just after a start, a slow disk; here the file is a FIFO that
// run is blocked on) does not kill it: Go's default for SIGHUP ends the
// process, and run handled SIGHUP only once the runtime ran. The SIGHUP
// makes a reload once the runtime is ready (this one is refused: a reload
// reads a regular file).
func TestRunSIGHUPWhileReadingConfig(t *testing.T) {
	dir := t.TempDir()
	queue := fmt.Sprintf("edgeipc.clitest.earlyhup.%d", os.Getpid())
	cfg := filepath.Join(dir, "c.toml")
	if err := syscall.Mkfifo(cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := cliCmd(t, dir, "run", "-c", cfg)
	cmd.Env = append(cmd.Env, "EDGEIPC_CTL_QUEUE="+queue)
	var log runLogWriter
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); mq.Unlink(queue) })
	// A non-blocking open for writing succeeds once run has the FIFO
	// open for reading: it is then reading its configuration.
	var w *os.File
	deadline := time.Now().Add(testTimeout)
	for w == nil {
		fd, err := syscall.Open(cfg, syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
		switch {
		case err == nil:
			w = os.NewFile(uintptr(fd), cfg)
		case err != syscall.ENXIO:
			t.Fatal(err)
		case time.Now().After(deadline):
			t.Fatal("run never opened its configuration file")
		default:
			time.Sleep(10 * time.Millisecond)
		}
	}
	cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(100 * time.Millisecond) // let it arrive while run waits for the file
	w.WriteString("[runtime]\nstats_interval = \"0s\"\n[rings.t]\nslots = 16\nslot_payload = 64\n")
	w.Close()
	exited := make(chan int, 1)
	go func() { exited <- waitCmd(t, cmd) }()
	for _, want := range []string{"runtime ready", "SIGHUP: reloading the configuration", "not a regular file"} {
		for !strings.Contains(log.String(), want) {
			select {
			case code := <-exited:
				t.Fatalf("run exited (%d, %v) before its log said %q; log:\n%s", code, cmd.ProcessState, want, log.String())
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("the log never said %q; log:\n%s", want, log.String())
			}
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if code := <-exited; code != 0 {
		t.Fatalf("exit %d; log:\n%s", code, log.String())
	}
}
