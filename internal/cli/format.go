package cli

// Helpers shared by the commands: argument parsing that accepts flags
// after positional arguments, byte sizes, table and JSON output, and the
// stdin and stdout wrappers that give up on a signal (ctxReader,
// ctxWriter).

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/edgeipc/edgeipc/shm"
)

// parseInterspersed parses fs from args, allowing flags after positional
// arguments ("pub cam0 --framing len32"), and returns the positional
// arguments. "--" ends flag parsing. A -h/--help returns flag.ErrHelp.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// fs.Parse stops at the first non-flag or after "--".
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// reparse parses the flags that followed the positional arguments of
// command name, whose FlagSet the framework already parsed up to the first
// positional argument. Flag errors become usage errors; a late -h prints the
// command's help and ends the command with exit 0.
func reparse(env *Env, name string, fs *flag.FlagSet, args []string) ([]string, error) {
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			if c, ok := commands[name]; ok {
				printCmdHelp(env.Stdout, c)
			}
			return nil, &ExitError{Code: ExitOK}
		}
		return nil, Usagef("%s", flagError(fs, err))
	}
	return pos, nil
}

// flagError is the message of an error from fs.Parse with the flag written
// --name, as usage lines and help write it, and a one-letter flag written
// -c, as help lists it (printFlags). Where the flag package says only
// "parse error" or "value out of range" about a value, it says what the
// flag takes instead ("want a duration with a unit, such as 500ms, 5s or
// 1m": '--timeout 5' is the common slip).
func flagError(fs *flag.FlagSet, err error) string {
	s := err.Error()
	if strings.HasPrefix(s, "invalid boolean value ") {
		// The flag package writes "for -json" here, "for flag -json"
		// elsewhere.
		if i := strings.LastIndex(s, " for -"); i >= 0 {
			s = s[:i] + " for flag -" + s[i+len(" for -"):]
		}
	}
	var flagName string
	for _, p := range []string{"flag provided but not defined: -", "for flag -", "flag needs an argument: -"} {
		i := strings.LastIndex(s, p)
		if i < 0 {
			continue
		}
		name := s[i+len(p):]
		if j := strings.IndexAny(name, ": "); j >= 0 {
			name = name[:j]
		}
		flagName = name
		if len(name) > 1 {
			s = s[:i+len(p)] + "-" + s[i+len(p):]
		}
	}
	f := fs.Lookup(flagName)
	if f == nil {
		return s
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return s
	}
	var want string
	switch g.Get().(type) {
	case time.Duration:
		want = "want a duration with a unit, such as 500ms, 5s or 1m"
	case bool:
		want = "want true or false"
	case int, int64, uint, uint64:
		want = "want a whole number"
		if strings.HasSuffix(s, ": value out of range") {
			want = "value out of range"
		}
		want += " (" + f.Usage + ")" // "number of slots, a power of two ..."
	}
	for _, suffix := range []string{": parse error", ": value out of range"} {
		if want != "" && strings.HasSuffix(s, suffix) {
			return strings.TrimSuffix(s, suffix) + ": " + want
		}
	}
	return s
}

// getFlag returns the current value of the flag name declared on fs.
// Commands read their flags this way, after reparse, so that no state is
// shared between concurrent runs of a command (tests run several at once).
func getFlag[T any](fs *flag.FlagSet, name string) T {
	return fs.Lookup(name).Value.(flag.Getter).Get().(T)
}

// sizeValue is a flag.Value for byte counts written as 64, 4k, 1m, 2MiB, up
// to max bytes (0: parseSize's limit).
type sizeValue struct {
	n   *int
	max int
}

func (s sizeValue) String() string {
	if s.n == nil || *s.n == 0 {
		return "0"
	}
	return strconv.Itoa(*s.n)
}

func (s sizeValue) Get() any { return *s.n }

func (s sizeValue) Set(v string) error {
	n, err := parseSize(v)
	if s.max > 0 && (err != nil || n > s.max) {
		return fmt.Errorf("bad size %q: want 1 byte to %s, such as 64, 4k or 1m", v, shortBytes(s.max))
	}
	if err != nil {
		return err
	}
	*s.n = n
	return nil
}

// slotSizeValue is the --slot-size flag: 1 byte to shm.MaxSlotPayload.
func slotSizeValue(n *int) sizeValue { return sizeValue{n: n, max: shm.MaxSlotPayload} }

// shortBytes writes n the way parseSize reads it: 64m, 4k, 100.
func shortBytes(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + "m"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + "k"
	}
	return strconv.Itoa(n)
}

// uintValue is a flag.Value for an unsigned integer up to max, whose error
// says the allowed range (the flag package only says "parse error").
// Get returns a uint64.
type uintValue struct {
	n    *uint64
	max  uint64
	want string // the allowed values, e.g. "0 to 4294967295"
}

func (u uintValue) String() string {
	if u.n == nil {
		return "0"
	}
	return strconv.FormatUint(*u.n, 10)
}

func (u uintValue) Get() any { return *u.n }

func (u uintValue) Set(v string) error {
	n, err := strconv.ParseUint(strings.TrimSpace(v), 0, 64)
	if err != nil || n > u.max {
		return fmt.Errorf("want %s", u.want)
	}
	*u.n = n
	return nil
}

// plural returns "1 frame" or "2 frames".
func plural(n uint64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.FormatUint(n, 10) + " " + noun + "s"
}

// parseSize parses a byte count: digits with an optional k, m or g suffix
// (powers of 1024), optionally followed by "b" or "ib", case-insensitive.
func parseSize(v string) (int, error) {
	s := strings.ToLower(strings.TrimSpace(v))
	s = strings.TrimSuffix(s, "ib")
	s = strings.TrimSuffix(s, "b")
	mult := 1
	if s != "" {
		switch s[len(s)-1] {
		case 'k':
			mult = 1 << 10
		case 'm':
			mult = 1 << 20
		case 'g':
			mult = 1 << 30
		}
		if mult != 1 {
			s = s[:len(s)-1]
		}
	}
	n, err := strconv.ParseUint(s, 10, 31)
	if err != nil || n == 0 || int64(n)*int64(mult) > 1<<31-1 {
		return 0, fmt.Errorf("bad size %q: want a positive byte count such as 64, 4k or 1m", v)
	}
	return int(n) * mult, nil
}

// modeString formats permission bits as 0600.
func modeString(m os.FileMode) string { return fmt.Sprintf("%04o", uint32(m.Perm())) }

// idNames caches uid or gid to name lookups (ls shows many files with
// the same owner).
type idNames struct {
	mu     sync.Mutex
	m      map[int]string
	lookup func(id string) (string, error)
}

var (
	users = &idNames{lookup: func(id string) (string, error) {
		u, err := user.LookupId(id)
		if err != nil {
			return "", err
		}
		return u.Username, nil
	}}
	groups = &idNames{lookup: func(id string) (string, error) {
		g, err := user.LookupGroupId(id)
		if err != nil {
			return "", err
		}
		return g.Name, nil
	}}
)

// name returns the name for id, or the number if it has none.
func (c *idNames) name(id int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.m[id]; ok {
		return n
	}
	n := strconv.Itoa(id)
	if s, err := c.lookup(n); err == nil {
		n = s
	}
	if c.m == nil {
		c.m = map[int]string{}
	}
	c.m[id] = n
	return n
}

// userName returns the login name for uid, or the number.
func userName(uid int) string { return users.name(uid) }

// groupName returns the group name for gid, or the number.
func groupName(gid int) string { return groups.name(gid) }

// writeJSON writes v as indented JSON followed by a newline.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newTable returns a tabwriter for aligned columns; Flush it when done.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
}

// ctxIO runs the reads or the writes of one stream in a helper goroutine,
// so that the caller can give up on one with ctx.Err() when ctx is
// cancelled: read(2) of stdin and write(2) to stdout (a full pipe, a
// terminal held by Ctrl-S) block and cannot be interrupted. The call in
// progress is then abandoned: the helper goroutine stays in it, and every
// later call fails at once (the process is about to exit). One call at a
// time.
type ctxIO struct {
	ctx  context.Context
	call func([]byte) (int, error)
	req  chan []byte
	res  chan ioResult
	once sync.Once
}

type ioResult struct {
	n   int
	err error
}

func newCtxIO(ctx context.Context, call func([]byte) (int, error)) ctxIO {
	return ctxIO{ctx: ctx, call: call, req: make(chan []byte), res: make(chan ioResult, 1)}
}

// do runs call(p) in the helper goroutine and returns its result, or
// ctx.Err() as soon as ctx is cancelled. Once it has returned ctx.Err()
// the call may still be using p.
func (c *ctxIO) do(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	c.once.Do(func() { go c.serve() })
	select {
	case c.req <- p:
	case <-c.ctx.Done():
		return 0, c.ctx.Err()
	}
	select {
	case r := <-c.res:
		return r.n, r.err
	case <-c.ctx.Done():
		return 0, c.ctx.Err()
	}
}

func (c *ctxIO) serve() {
	for {
		select {
		case b := <-c.req:
			n, err := c.call(b)
			c.res <- ioResult{n, err}
		case <-c.ctx.Done():
			return
		}
	}
}

// ctxReader makes reads from r (typically stdin) give up with ctx.Err()
// when ctx is cancelled. A read it gives up on may still fill the caller's
// buffer afterwards: the caller must not use r or that buffer again (pub
// does not: it is about to exit).
type ctxReader struct{ io ctxIO }

func newCtxReader(ctx context.Context, r io.Reader) *ctxReader {
	return &ctxReader{newCtxIO(ctx, r.Read)}
}

func (c *ctxReader) Read(p []byte) (int, error) { return c.io.do(p) }

// ctxWriteChunk is the most a ctxWriter hands its helper goroutine at
// once: what a pipe holds by default.
const ctxWriteChunk = 64 << 10

// ctxWriter makes writes to w (typically stdout, whose write(2) blocks
// while a pipe is full and cannot be interrupted) give up with ctx.Err()
// when ctx is cancelled: every command's stdout is one (MainEnv), so that
// 'edgeipc sub cam | consumer' or 'edgeipc ring ls --json | consumer' ends
// on SIGINT or SIGTERM even while the consumer reads nothing. The helper
// goroutine writes a copy, at most ctxWriteChunk bytes at a time, so that
// a write it gives up on never reads the caller's memory afterwards (fmt
// returns its buffers to a pool for other writes to reuse). Safe for
// concurrent use; each Write's bytes stay together.
type ctxWriter struct {
	w   io.Writer
	mu  sync.Mutex
	io  ctxIO
	buf []byte
}

func newCtxWriter(ctx context.Context, w io.Writer) *ctxWriter {
	return &ctxWriter{w: w, io: newCtxIO(ctx, w.Write)}
}

func (c *ctxWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for len(p) > 0 {
		if err := c.io.ctx.Err(); err != nil {
			// Not a byte more into buf: a write given up on may still
			// be reading it.
			return n, err
		}
		if k := min(len(p), ctxWriteChunk); cap(c.buf) < k {
			c.buf = make([]byte, k)
		}
		k := copy(c.buf[:cap(c.buf)], p)
		m, err := c.io.do(c.buf[:k])
		n += m
		if err == nil && m < k {
			err = io.ErrShortWrite
		}
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

// removedPoll is how often a reader waiting for frames checks whether its
// ring was removed.
const removedPoll = time.Second

var errRingRemoved = errors.New("ring removed")

// removedWatch tells a reader waiting on a ring that the ring's file was
// removed (edgeipc ring rm, or a runtime recreating the ring): no writer
// can open the removed ring any more, so the reader would wait forever.
type removedWatch struct{ r *shm.Ring }

func newRemovedWatch(r *shm.Ring) *removedWatch { return &removedWatch{r: r} }

// removed reports whether the ring's file has no name left
// (shm.Segment.Removed) and no live writer (a writer that still holds the
// removed ring may write to it).
func (w *removedWatch) removed() bool {
	gone, err := w.r.Segment().Removed()
	return err == nil && gone && !w.r.Inspect().WriterAlive
}
