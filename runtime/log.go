package runtime

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/edgeipc/edgeipc/internal/textesc"
)

// NewLogger returns the runtime's logger writing to w: format "text" (one
// human-readable line per record: time, level, message, key=value pairs) or
// "json" (slog's JSON handler). In text form, attributes grouped under
// "data" are left out: the message already says the same for people, the
// JSON form carries them for machines.
//
// When w is the journal's stream (JournalStream), each line starts with
// its syslog priority as sd-daemon(3) writes it ("<3>" error, "<4>"
// warning, "<6>" info), which journald takes off the line and records as
// the entry's priority: without it every line, errors included, was
// priority 6 (info), and `journalctl -p warning` showed none of them.
func NewLogger(w io.Writer, format string) (*slog.Logger, error) {
	journal := JournalStream(w)
	switch format {
	case "", "text":
		return slog.New(&textHandler{mu: &sync.Mutex{}, w: w, prio: journal}), nil
	case "json":
		if journal {
			pw := &prioWriter{w: w}
			return slog.New(&prioHandler{Handler: slog.NewJSONHandler(pw, nil), pw: pw}), nil
		}
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

// JournalStream reports whether w is the stream systemd-journald reads a
// service's output from: systemd sets $JOURNAL_STREAM to "DEVICE:INODE"
// of that stream when the service's stdout or stderr goes to the journal,
// and w (an *os.File) is that file if its device and inode are those.
// Anything else (a terminal, a pipe to another program, a file, output
// redirected by a script that systemd started) is not.
func JournalStream(w io.Writer) bool {
	f, ok := w.(*os.File)
	env := os.Getenv("JOURNAL_STREAM")
	if !ok || env == "" {
		return false
	}
	d, i, ok := strings.Cut(env, ":")
	dev, err1 := strconv.ParseUint(d, 10, 64)
	ino, err2 := strconv.ParseUint(i, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && uint64(st.Dev) == dev && uint64(st.Ino) == ino
}

// syslogPrefix is the sd-daemon(3) priority prefix of a level.
func syslogPrefix(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "<3>"
	case l >= slog.LevelWarn:
		return "<4>"
	case l >= slog.LevelInfo:
		return "<6>"
	}
	return "<7>"
}

// prioHandler puts the syslog priority of each record in front of the
// line its handler writes (through pw, in one write).
type prioHandler struct {
	slog.Handler
	pw *prioWriter
}

func (h *prioHandler) Handle(ctx context.Context, r slog.Record) error {
	h.pw.mu.Lock()
	defer h.pw.mu.Unlock()
	h.pw.prefix = syslogPrefix(r.Level)
	return h.Handler.Handle(ctx, r)
}

func (h *prioHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &prioHandler{Handler: h.Handler.WithAttrs(as), pw: h.pw}
}

func (h *prioHandler) WithGroup(name string) slog.Handler {
	return &prioHandler{Handler: h.Handler.WithGroup(name), pw: h.pw}
}

// prioWriter writes prefix and a record's line in one write; its user
// holds mu.
type prioWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
}

func (p *prioWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(append([]byte(p.prefix), b...))
	return max(0, min(len(b), n-len(p.prefix))), err
}

type textHandler struct {
	mu    *sync.Mutex
	w     io.Writer
	attrs string
	group string
	prio  bool // lines start with their syslog priority (NewLogger)
}

func (h *textHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *textHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	if h.prio {
		b.WriteString(syslogPrefix(r.Level))
	}
	b.WriteString(r.Time.Format("15:04:05.000"))
	switch {
	case r.Level >= slog.LevelError:
		b.WriteString(" ERROR")
	case r.Level >= slog.LevelWarn:
		b.WriteString(" WARN ")
	default:
		b.WriteString("      ")
	}
	b.WriteByte(' ')
	b.WriteString(escapeControl(r.Message))
	b.WriteString(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		appendAttr(&b, h.group, a)
		return true
	})
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func appendAttr(b *strings.Builder, prefix string, a slog.Attr) {
	if a.Equal(slog.Attr{}) {
		return
	}
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		if a.Key == "data" {
			return
		}
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range v.Group() {
			appendAttr(b, p, g)
		}
		return
	}
	b.WriteByte(' ')
	b.WriteString(prefix)
	b.WriteString(a.Key)
	b.WriteByte('=')
	s := v.String()
	if v.Kind() == slog.KindDuration {
		s = v.Duration().String()
	}
	if s == "" || strings.ContainsAny(s, " \"=\t\n") || escapeControl(s) != s {
		fmt.Fprintf(b, "%q", s)
	} else {
		b.WriteString(s)
	}
}

// escapeControl escapes the control characters (but tab) and the bytes
// that are not UTF-8 in s, as Go would in a quoted string: a line a child
// wrote on its stderr goes into a message, and a carriage return, an
// escape sequence or a NUL in it must not forge or hide log lines in a
// terminal or a line-oriented reader of the text log.
func escapeControl(s string) string { return textesc.Escape(s, textesc.Control) }

func (h *textHandler) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.attrs)
	for _, a := range as {
		appendAttr(&b, h.group, a)
	}
	h2 := *h
	h2.attrs = b.String()
	return &h2
}

func (h *textHandler) WithGroup(name string) slog.Handler {
	h2 := *h
	h2.group += name + "."
	return &h2
}

// limiter lets one log line through per interval and counts the rest.
type limiter struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow reports whether to log now and how many were suppressed before.
func (l *limiter) allow(every time.Duration) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.Sub(l.last) < every {
		l.suppressed++
		return false, 0
	}
	l.last = now
	n := l.suppressed
	l.suppressed = 0
	return true, n
}

// lineBudget lets log lines through at most rate a second, in bursts of up
// to twice that (at least one line), and counts the lines it holds back;
// rate 0 lets every line through. It is a token bucket: a quiet spell
// refills it. A line costs one token per started lineUnit of its length,
// so that the bound holds for bytes too (a child writing 64 KiB lines at
// rate lines a second would otherwise fill the journal 64 times faster
// than one writing 1 KiB lines); a long line is logged whenever a token is
// left, and the bucket goes into debt for the rest of its cost.
type lineBudget struct {
	mu         sync.Mutex
	tokens     float64
	last       time.Time
	held       uint64    // lines held back since the last report
	lastReport time.Time // when report last returned a count
}

// lineUnit is the length of line that costs one token of a lineBudget.
const lineUnit = 1 << 10

// take reports whether a line of n bytes may be logged now at rate lines
// (of up to lineUnit bytes) a second.
func (b *lineBudget) take(rate float64, now time.Time, n int) bool {
	if rate == 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	burst := max(2*rate, 1)
	if b.last.IsZero() {
		b.tokens = burst
	} else {
		b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
	}
	b.last = now
	if b.tokens < 1 {
		b.held++
		return false
	}
	b.tokens -= float64(max(1, (n+lineUnit-1)/lineUnit))
	return true
}

// report returns the lines held back since the last report, at most once
// every interval unless final (the stream ended), and 0 when there is
// nothing to report yet.
func (b *lineBudget) report(now time.Time, every time.Duration, final bool) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held == 0 || !final && now.Sub(b.lastReport) < every {
		return 0
	}
	n := b.held
	b.held, b.lastReport = 0, now
	return n
}
