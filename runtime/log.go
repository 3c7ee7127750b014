package runtime

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/edgeipc/edgeipc/internal/textesc"
)

// NewLogger returns the runtime's logger writing to w: format "text" (one
// human-readable line per record: time, level, message, key=value pairs) or
// "json" (slog's JSON handler). In text form, attributes grouped under
// "data" are left out: the message already says the same for people, the
// JSON form carries them for machines.
func NewLogger(w io.Writer, format string) (*slog.Logger, error) {
	switch format {
	case "", "text":
		return slog.New(&textHandler{mu: &sync.Mutex{}, w: w}), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

type textHandler struct {
	mu    *sync.Mutex
	w     io.Writer
	attrs string
	group string
}

func (h *textHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *textHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
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
// refills it.
type lineBudget struct {
	mu         sync.Mutex
	tokens     float64
	last       time.Time
	held       uint64    // lines held back since the last report
	lastReport time.Time // when report last returned a count
}

// take reports whether a line may be logged now at rate lines a second.
func (b *lineBudget) take(rate float64, now time.Time) bool {
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
	b.tokens--
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
