package runtime

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/internal/textesc"
	"github.com/edgeipc/edgeipc/runtime/framing"
	"github.com/edgeipc/edgeipc/shm"
)

// childEnv is the environment of an exec source's child: the runtime's own
// (minus systemd's notification variables, which belong to the runtime),
// the EDGEIPC_* variables, then the source's env entries. Each name is in
// it once: a source's entry replaces the runtime's variable of that name,
// and the last of the source's entries of a name wins, since a program's
// getenv (C's, Go's) takes the first entry of a name and a shell the last.
// The config refuses env entries for the EDGEIPC_* variables.
func (ss *sourceState) childEnv() []string {
	last := map[string]int{} // name -> index of its last entry in the source's env
	for i, e := range ss.cfg.Env {
		k, _, _ := strings.Cut(e, "=")
		last[k] = i
	}
	var env []string
	for _, e := range os.Environ() {
		k, _, _ := strings.Cut(e, "=")
		switch k {
		case "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
			"EDGEIPC_RING", "EDGEIPC_SHM_DIR", "EDGEIPC_SOURCE", "EDGEIPC_SLOT_PAYLOAD", "EDGEIPC_WRITE":
			continue
		}
		if _, ok := last[k]; ok {
			continue
		}
		env = append(env, e)
	}
	env = append(env,
		"EDGEIPC_RING="+ss.cfg.Ring,
		"EDGEIPC_SHM_DIR="+ss.ring.dir, // where the ring is, whatever the file says now
		"EDGEIPC_SOURCE="+ss.cfg.Name,
		"EDGEIPC_SLOT_PAYLOAD="+strconv.Itoa(ss.ring.ring.SlotPayload()),
		"EDGEIPC_WRITE="+ss.cfg.Write,
	)
	for i, e := range ss.cfg.Env {
		if k, _, _ := strings.Cut(e, "="); last[k] == i {
			env = append(env, e)
		}
	}
	return env
}

// runExec supervises a child process: start, pump its stdout into the ring
// and its stderr into the log, restart with exponential backoff when it
// exits, stop it with SIGTERM then SIGKILL.
func (ss *sourceState) runExec(ctx context.Context) error {
	c := ss.cfg
	var w *shm.Writer
	if c.Write != "child" {
		var err error
		if w, err = ss.writer(ctx); err != nil {
			return err
		}
		defer w.Close()
	}
	bo := backoff{min: c.BackoffMin.D(), max: c.BackoffMax.D()}
	for first := true; ; first = false {
		if !first {
			ss.set(func(ss *sourceState) { ss.restarts++ })
		}
		started := time.Now()
		st, err := ss.runChild(ctx, w)
		if st != nil {
			ss.set(func(ss *sourceState) { ss.lastExit, ss.pid = st.String(), 0 })
		}
		if ctx.Err() != nil {
			return nil
		}
		if rw := (*ringWriteError)(nil); errors.As(err, &rw) {
			// The writer is unusable (another process took its lease):
			// the source fails, and 'edgeipc ctl start' takes a new one.
			return err
		}
		if err != nil {
			ss.set(func(ss *sourceState) { ss.lastError = err.Error() })
			ss.rt.log.Error(fmt.Sprintf("source %s: %v", c.Name, err))
		}
		switch {
		case c.Restart == "never",
			c.Restart == "on-failure" && st != nil && st.Success() && err == nil:
			state := StateStopped
			if st == nil || !st.Success() || err != nil {
				state = StateFailed
			}
			ss.setState(state)
			ss.rt.log.Info(fmt.Sprintf("source %s: child finished (%s); restart = %q, not restarting (start it again with 'edgeipc ctl start %s')", c.Name, exitText(st), c.Restart, c.Name))
			return nil
		}
		if time.Since(started) >= c.BackoffReset.D() {
			bo.reset()
		}
		d := bo.next()
		ss.setState(StateBackoff)
		ss.rt.log.Warn(fmt.Sprintf("source %s: child exited (%s) after %v; restarting in %v", c.Name, exitText(st), time.Since(started).Round(time.Millisecond), d))
		if !sleepCtx(ctx, d) {
			return nil
		}
	}
}

func exitText(st *os.ProcessState) string {
	if st == nil {
		return "not started"
	}
	return st.String()
}

// runChild runs one child to its end. It returns the child's exit state
// (nil if it never started) and an error for a failed start or a broken
// stream.
func (ss *sourceState) runChild(ctx context.Context, w *shm.Writer) (*os.ProcessState, error) {
	c := ss.cfg
	// A relative path with a slash is the child's: it runs in dir, so
	// that is where the program is looked for (a name without a slash is
	// looked up in $PATH). The two are put together as text, not with
	// filepath.Join or filepath.Abs: they clean the result, taking "x/.."
	// as nothing where the kernel follows x first if it is a symbolic
	// link, and turning "a/.." + "./prog" into "prog", a name for $PATH.
	prog := c.Command[0]
	if c.Dir != "" && strings.Contains(prog, "/") && !filepath.IsAbs(prog) {
		prog = strings.TrimSuffix(c.Dir, "/") + "/" + prog
	}
	path, err := exec.LookPath(prog)
	if err != nil {
		return nil, fmt.Errorf("command: %w", err)
	}
	// The child changes to dir before it executes path: a relative path
	// (dir is relative too) would then be looked for from inside dir.
	if !filepath.IsAbs(path) {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("command: %w", err)
		}
		path = strings.TrimSuffix(wd, "/") + "/" + path
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, err
	}
	p, exitc, err := ss.rt.spawn.start(c.Name, c.StopTimeout.D(), path, c.Command, &os.ProcAttr{
		Dir: c.Dir, Env: ss.childEnv(), Files: []*os.File{devnull, outW, errW},
	})
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	// Running again: the error of a start that failed is history (as
	// for fifo and synthetic sources); last_exit keeps why the last
	// child ended.
	ss.set(func(ss *sourceState) { ss.state, ss.pid, ss.lastError = StateRunning, p.Pid, "" })
	ss.rt.log.Info(fmt.Sprintf("source %s: started %s (pid %d)", c.Name, strings.Join(c.Command, " "), p.Pid))

	logDone := make(chan struct{})
	go func() { defer close(logDone); ss.logLines(&tailReader{f: errR}, "stderr") }()
	pumpDone := make(chan error, 1)
	go func() {
		if w == nil {
			ss.logLines(&tailReader{f: outR}, "stdout")
			pumpDone <- nil
			return
		}
		pumpDone <- ss.pump(ctx, &tailReader{f: outR}, w)
	}()

	var res exitResult
	gone := make(chan struct{})
	var streamErr error
	stopping := false
	pumping := true
	ctxDone := ctx.Done()
	var quiet <-chan time.Time // stdout closed: the child's exit is due
	for waiting := true; waiting; {
		select {
		case <-quiet:
			// A child that closed its stdout and runs on (a daemon that
			// detached badly, a bug) sends no frame again, while the
			// source shows running: say so, and leave it running. One
			// that has exited, and waits to be reaped until the rest of
			// its group is gone, does not run on (the spawner logs that).
			if ss.rt.spawn.leaderExited(p) {
				continue
			}
			msg := fmt.Sprintf("child pid %d closed its stdout but keeps running: no frame can come from it; 'edgeipc ctl restart %s' starts it again", p.Pid, c.Name)
			ss.set(func(ss *sourceState) { ss.lastError = msg })
			ss.rt.log.Warn(fmt.Sprintf("source %s: %s", c.Name, msg))
		case res = <-exitc:
			close(gone)
			waiting = false
		case perr := <-pumpDone:
			pumping = false
			var rw *ringWriteError
			switch {
			case errors.Is(perr, framing.ErrBroken):
				// The restart policy decides what follows (runExec logs it).
				streamErr = ss.brokenError("so the child was stopped")
				ss.bad.Add(1)
			case errors.As(perr, &rw):
				// Nothing reads its stdout any more: a child left
				// running would block on a full pipe.
				streamErr = fmt.Errorf("%w; stopping the child", rw)
			default:
				// stdout was closed: wait for the exit (which normally
				// follows at once), noting a child that runs on.
				if w != nil {
					quiet = time.After(time.Second)
				}
				continue
			}
			if !stopping {
				stopping = true
				go ss.terminate(p, gone)
			}
		case <-ctxDone:
			if !stopping {
				stopping = true
				go ss.terminate(p, gone)
			}
			ctxDone = nil // stop selecting on it
		}
	}
	// The child and its group are gone; give its pipes a moment to drain (a
	// process that left the group may still hold them open), then close
	// them. What is in a pipe once the moment has passed is still read
	// (tailReader), however long the ring takes to accept it.
	dl := time.Now().Add(200 * time.Millisecond)
	outR.SetReadDeadline(dl)
	errR.SetReadDeadline(dl)
	if pumping {
		// A stream that breaks in the rest of the output counts as one
		// that breaks while the child runs (a pump held up by a
		// block-policy ring reads that rest after the exit).
		if perr := <-pumpDone; errors.Is(perr, framing.ErrBroken) {
			streamErr = ss.brokenError("so the rest of the child's output was dropped")
			ss.bad.Add(1)
		}
	}
	<-logDone
	outR.Close()
	errR.Close()
	return res.state, firstErr(streamErr, res.err)
}

// brokenError is the error of a source whose child's stdout broke the
// framing; what tells what became of the child and its output.
func (ss *sourceState) brokenError(what string) error {
	return fmt.Errorf("stdout stream broken: a %s record longer than max_skip (%d bytes) leaves no way to find the next record, %s; fix what it writes, or raise the source's max_skip if such records are meant to be skipped", ss.cfg.Framing, ss.cfg.MaxSkip, what)
}

// tailReader reads a child's stdout or stderr pipe. Once the read
// deadline that runChild sets after the child's exit has passed, it still
// reads the bytes that are in the pipe at that point (FIONREAD) and then
// ends the stream: the records the child and its group wrote before they
// were gone are all in the pipe then, and are not lost because the reader
// was busy (a block-policy ring waiting for a slow reader) when the
// deadline passed; a process that left the group and keeps the pipe open
// gets at most one pipe's worth more. A fifo source reads its FIFO
// through one too, whose deadline is set when the FIFO is removed or
// replaced (runFIFOOnce).
type tailReader struct {
	f     *os.File
	tail  int  // bytes still to read past the deadline
	ended bool // the deadline has passed (tail is set)
}

func (r *tailReader) Read(p []byte) (int, error) {
	if r.ended {
		if r.tail == 0 {
			return 0, os.ErrDeadlineExceeded
		}
		if len(p) > r.tail {
			p = p[:r.tail]
		}
		n, err := r.f.Read(p)
		r.tail -= n
		return n, err
	}
	n, err := r.f.Read(p)
	if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		r.ended = true
		if r.tail = pipeBuffered(r.f); r.tail > 0 {
			// These bytes are there: reading them does not wait.
			r.f.SetReadDeadline(time.Time{})
			return r.Read(p)
		}
	}
	return n, err
}

// pipeBuffered returns how many bytes the pipe f holds (0 if unknown);
// TIOCINQ is FIONREAD, which x/sys does not name.
func pipeBuffered(f *os.File) int {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	rc.Control(func(fd uintptr) {
		if v, err := unix.IoctlGetInt(int(fd), unix.TIOCINQ); err == nil && v > 0 {
			n = v
		}
	})
	return n
}

// ringWriteError is a failed write of a child's record into the ring (not
// a cancellation): the pump stops, and so must the child.
type ringWriteError struct{ err error }

func (e *ringWriteError) Error() string { return "writing to the ring: " + e.err.Error() }
func (e *ringWriteError) Unwrap() error { return e.err }

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// terminate sends SIGTERM to the child and its process group, then SIGKILL
// after stop_timeout unless gone is closed (the child was reaped) first.
func (ss *sourceState) terminate(p *os.Process, gone <-chan struct{}) {
	ss.rt.spawn.signal(p, syscall.SIGTERM)
	t := time.NewTimer(ss.cfg.StopTimeout.D())
	defer t.Stop()
	select {
	case <-gone:
	case <-t.C:
		if ss.rt.spawn.leaderExited(p) {
			ss.rt.log.Warn(fmt.Sprintf("source %s: child (pid %d) exited, but processes of its group ignored SIGTERM for %v; sending SIGKILL to the group", ss.cfg.Name, p.Pid, ss.cfg.StopTimeout.D()))
		} else {
			ss.rt.log.Warn(fmt.Sprintf("source %s: child (pid %d) ignored SIGTERM for %v; sending SIGKILL", ss.cfg.Name, p.Pid, ss.cfg.StopTimeout.D()))
		}
		ss.rt.spawn.signal(p, syscall.SIGKILL)
	}
}

// pump decodes r into frames until EOF, a read error or a broken stream.
func (ss *sourceState) pump(ctx context.Context, r io.Reader, w *shm.Writer) error {
	d, err := ss.decoder()
	if err != nil {
		return err
	}
	d.Reset(r)
	for {
		rec, err := d.Next()
		if err == nil {
			if err := ss.put(ctx, w, rec); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return &ringWriteError{err}
			}
			continue
		}
		var bad *framing.BadRecordError
		if errors.As(err, &bad) {
			ss.badRecord(err)
			continue
		}
		if errors.Is(err, framing.ErrBroken) {
			ss.rt.log.Error(fmt.Sprintf("source %s: %v", ss.cfg.Name, err))
			return err
		}
		// The stream ended (EOF, or the read deadline set once the child
		// is gone): a record cut short by the end (its start buffered, or
		// an oversized one being skipped) is dropped, and counted.
		if d.InRecord() {
			ss.badRecord(fmt.Errorf("stdout ended in the middle of a record (%s); the partial record is dropped", cutShort(d, err)))
		}
		return err
	}
}

// maxLogLine bounds one logged line of a child's stderr (or of its stdout
// with write = "child"); the rest of a longer line is dropped.
const maxLogLine = 64 << 10

// logLines logs each line of r, prefixed with the source name, until r
// ends: a line longer than maxLogLine is logged truncated (with a marker)
// and the rest of it is read and dropped, so the child never blocks on a
// full pipe because of one long line.
//
// At most log_rate lines a second (in bursts of twice that; a line longer
// than 1 KiB counts as one per KiB started) are logged, for stderr and
// stdout together: a chatty child must not flood the log
// (and journald's rate limit, which would then drop the runtime's own
// lines too). Lines held back are counted (SourceStat.LogDropped) and
// reported at most every logReportEvery, and when the stream ends.
func (ss *sourceState) logLines(r io.Reader, stream string) {
	br := bufio.NewReaderSize(r, maxLogLine)
	dropping := false // inside an over-long line whose head was logged
	defer ss.reportHeldLines(stream, true)
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			if !dropping {
				ss.logLine(line, stream, " … (truncated: line longer than 64 KiB)")
				dropping = true
			}
			continue
		}
		if len(line) > 0 && !dropping {
			line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
			ss.logLine(line, stream, "")
		}
		dropping = false
		if err != nil {
			return // EOF, or the read deadline set once the child is gone
		}
	}
}

// logReportEvery is how often, at most, a source's log says how many
// lines of its child's output log_rate held back.
const logReportEvery = 10 * time.Second

// reportHeldLines logs how many lines of the child's output were not
// logged since the last report, if any (and it is time, or final).
func (ss *sourceState) reportHeldLines(stream string, final bool) {
	if n := ss.logBudget.report(time.Now(), logReportEvery, final); n > 0 {
		ss.rt.log.Warn(fmt.Sprintf("[%s] %d lines of the child's output not logged: more than log_rate = %v a second (raise it, or 0 for no bound)", ss.cfg.Name, n, ss.cfg.logRate()),
			"source", ss.cfg.Name, "stream", stream)
	}
}

func (ss *sourceState) logLine(line []byte, stream, suffix string) {
	if !ss.logBudget.take(ss.cfg.logRate(), time.Now(), loggedLen(line)) {
		ss.logDropped.Add(1)
		return
	}
	ss.reportHeldLines(stream, false)
	ss.rt.log.Info(fmt.Sprintf("[%s] %s%s", ss.cfg.Name, line, suffix), "source", ss.cfg.Name, "stream", stream)
}

// escapedCost is what log_rate charges for a character or byte that the
// log writes escaped: the most it takes, six bytes (\u0001 in the JSON
// log, \x01 in the text log, \u0085 for a C1 control).
const escapedCost = 6

// loggedLen is the length log_rate charges for line: its bytes, each
// character that the log escapes (a control character but tab) and each
// byte that is not UTF-8 counted as escapedCost. A child writing binary
// garbage to its stderr would otherwise get four to six times the bytes a
// second that log_rate allows into the log.
func loggedLen(line []byte) int {
	n := len(line)
	for i := 0; i < len(line); {
		c := line[i]
		if c >= 0x20 && c < 0x7f || c == '\t' {
			i++
			continue
		}
		r, size := utf8.DecodeRune(line[i:])
		if r == utf8.RuneError && size == 1 || textesc.Control(r) {
			n += escapedCost - size
		}
		i += size
	}
	return n
}
