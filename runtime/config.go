package runtime

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/BurntSushi/toml"

	"github.com/edgeipc/edgeipc/internal/sys"
	"github.com/edgeipc/edgeipc/internal/textesc"
	"github.com/edgeipc/edgeipc/runtime/control"
	"github.com/edgeipc/edgeipc/runtime/framing"
	"github.com/edgeipc/edgeipc/shm"
)

//go:embed default.toml
var defaultTOML []byte

// DefaultTOML returns the text of the built-in configuration (what
// `edgeipc run --print-default` prints and the .deb installs as
// /etc/edgeipc/edgeipc.toml).
func DefaultTOML() []byte { return bytes.Clone(defaultTOML) }

// Config is a parsed and validated runtime configuration (docs/config.md).
type Config struct {
	// File is the path the configuration was loaded from ("" = built in).
	File string `toml:"-"`

	Runtime RuntimeConfig          `toml:"runtime"`
	Control ControlConfig          `toml:"control"`
	Rings   map[string]*RingConfig `toml:"rings"`
	Sources []*SourceConfig        `toml:"sources"`
	Sinks   []*SinkConfig          `toml:"sinks"`

	lines   lineIndex
	srcKeys []map[string]bool // keys written in each [[sources]] table (Parse)
	snkKeys []map[string]bool // keys written in each [[sinks]] table (Parse)
	blank   bool              // the text declares no table and no key (Parse)
}

// kindKeys are the source keys that apply to some kinds only.
var kindKeys = []struct {
	key   string
	kinds string // the kinds it applies to, as the error names them
}{
	{"framing", "exec and fifo"}, {"max_skip", "exec and fifo"},
	{"command", "exec"}, {"env", "exec"}, {"dir", "exec"}, {"write", "exec"}, {"restart", "exec"},
	{"backoff_min", "exec"}, {"backoff_max", "exec"}, {"backoff_reset", "exec"}, {"stop_timeout", "exec"}, {"log_rate", "exec"},
	{"path", "fifo"}, {"mode", "fifo"}, {"group", "fifo"}, {"remove_on_exit", "fifo"},
	{"rate_hz", "synthetic"}, {"size", "synthetic"},
}

// RuntimeConfig is the [runtime] table.
type RuntimeConfig struct {
	ShmDir          string   `toml:"shm_dir"`          // "" = $EDGEIPC_SHM_DIR or /dev/shm
	StatsInterval   Duration `toml:"stats_interval"`   // periodic stats log line; 0 = off
	ShutdownTimeout Duration `toml:"shutdown_timeout"` // bound on SIGTERM drain
}

// ControlConfig is the [control] table.
type ControlConfig struct {
	Enabled *bool    `toml:"enabled"` // default true
	Queue   string   `toml:"queue"`   // "" = edgeipc.ctl; $EDGEIPC_CTL_QUEUE overrides both (ctl reads it too)
	Mode    FileMode `toml:"mode"`
	Group   string   `toml:"group"`
}

// RingConfig is one [rings.NAME] table.
type RingConfig struct {
	Name         string   `toml:"-"`
	Slots        int      `toml:"slots"`
	SlotPayload  int      `toml:"slot_payload"`
	Policy       string   `toml:"policy"`
	Mode         FileMode `toml:"mode"`
	Group        string   `toml:"group"`
	RemoveOnExit bool     `toml:"remove_on_exit"`
	Stats        *bool    `toml:"stats"` // attach the built-in stats reader (default true)
}

// Source kinds.
const (
	KindExec      = "exec"
	KindFIFO      = "fifo"
	KindSynthetic = "synthetic"
)

// SourceConfig is one [[sources]] entry.
type SourceConfig struct {
	Name  string `toml:"name"`
	Kind  string `toml:"kind"`
	Ring  string `toml:"ring"`
	Type  uint32 `toml:"type"`  // frame type stamped on frames (lines/len32 framings, synthetic)
	Flags uint32 `toml:"flags"` // frame flags stamped on frames
	// Framing of exec stdout and fifo records: lines, len32, msgp.
	Framing string `toml:"framing"`
	MaxSkip int    `toml:"max_skip"` // len32, msgp: oversized records up to this size are skipped (default 1 MiB)
	// exec
	Command      []string `toml:"command"`
	Env          []string `toml:"env"`
	Dir          string   `toml:"dir"`
	Write        string   `toml:"write"`   // "runtime" (default) or "child"
	Restart      string   `toml:"restart"` // always (default), on-failure, never
	BackoffMin   Duration `toml:"backoff_min"`
	BackoffMax   Duration `toml:"backoff_max"`
	BackoffReset Duration `toml:"backoff_reset"`
	StopTimeout  Duration `toml:"stop_timeout"`
	// LogRate bounds the lines per second of the child's stderr (and of
	// its stdout with write = "child") that are logged; nil = default
	// (DefaultLogRate), 0 = no bound.
	LogRate *float64 `toml:"log_rate"`
	// fifo
	Path         string   `toml:"path"`
	Mode         FileMode `toml:"mode"`
	Group        string   `toml:"group"`
	RemoveOnExit bool     `toml:"remove_on_exit"`
	// synthetic
	RateHz float64 `toml:"rate_hz"`
	Size   int     `toml:"size"`
	// Disabled sources are configured but not started (start them with
	// `edgeipc ctl start NAME`).
	Disabled bool `toml:"disabled"`

	index int
}

// Sink kinds.
const (
	SinkStats    = "stats"
	SinkRecorder = "recorder"
)

// SinkConfig is one [[sinks]] entry.
type SinkConfig struct {
	Name     string `toml:"name"`
	Kind     string `toml:"kind"`
	Ring     string `toml:"ring"`
	Path     string `toml:"path"`      // recorder: output file
	MaxBytes int64  `toml:"max_bytes"` // recorder: stop recording at this size (0 = no limit)

	index int
}

// Duration is a time.Duration written as a TOML string ("250ms", "10s").
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("bad duration %q (want e.g. \"250ms\", \"10s\")", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// FileMode is a permission mode written as a TOML string "0600" or an octal
// integer 0o600. Only 0600, 0620 (control queue and FIFOs) and 0660 are
// accepted.
type FileMode os.FileMode

// modesWanted is what a bad mode's error asks for.
const modesWanted = `"0600", "0620" or "0660"`

// UnmarshalTOML implements toml.Unmarshaler.
func (m *FileMode) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		if x < 0 || x > 0o7777 {
			return fmt.Errorf("bad mode %d (want %s)", x, modesWanted)
		}
		if d := strconv.FormatInt(x, 10); x > 0o777 && strings.Trim(d, "01234567") == "" {
			// mode = 600 (TOML has no leading zeros): it was refused
			// as 01130, a mode nobody wrote. A number of 0o777 or
			// less is a mode as it is (0o640 is 416, not a typo).
			return fmt.Errorf("bad mode %d: TOML reads a number without 0o as decimal (%d is %#o): write mode = \"0%d\" (a string) or 0o%d; only %s are allowed", x, x, x, x, x, modesWanted)
		}
		*m = FileMode(x)
	case string:
		n, err := strconv.ParseUint(strings.TrimPrefix(x, "0o"), 8, 32)
		if err != nil || n > 0o7777 {
			return fmt.Errorf("bad mode %q (want %s)", x, modesWanted)
		}
		*m = FileMode(n)
	default:
		return fmt.Errorf("bad mode %v (want %s)", v, modesWanted)
	}
	return nil
}

// ConfigError is a configuration problem with its location.
type ConfigError struct {
	File  string // "" = built-in default
	Line  int    // 0 = unknown
	Field string // e.g. "rings.cam.slots", "sources[2].command"
	Msg   string
}

// Error returns "FILE:LINE: FIELD: MSG", leaving out what is unknown.
func (e *ConfigError) Error() string {
	f := e.File
	if f == "" {
		f = "(built-in config)"
	}
	var b strings.Builder
	b.WriteString(f)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ConfigErrors is every problem found in one configuration.
type ConfigErrors []*ConfigError

// Error returns one ConfigError per line.
func (es ConfigErrors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Load reads, parses and validates a configuration file. Errors name the
// file, line and field (a *ConfigError or ConfigErrors). A file larger than
// MaxConfigBytes is refused, and so is one that declares nothing (empty,
// or only comments): that is what a file being rewritten in place reads
// as, not a configuration someone meant.
func Load(path string) (*Config, error) { return load(path, false) }

// MaxConfigBytes bounds the size of a configuration file: a path that
// names (or links to) a device such as /dev/zero is refused, not read
// until memory runs out.
const MaxConfigBytes = 4 << 20

// loadForReload is Load for a reload, which the main loop runs: the file
// must be a regular file (a FIFO, say, would block the main loop, and
// with it the shutdown, until something wrote it; a device could be read
// for ever), and it is opened without blocking.
func loadForReload(path string) (*Config, error) { return load(path, true) }

func load(path string, regularOnly bool) (*Config, error) {
	notRegular := func(fi os.FileInfo) error {
		return fmt.Errorf("config: %s is %s, not a regular file (a reload reads a regular file; a symlink to one is fine)", path, fileType(fi.Mode()))
	}
	flags := os.O_RDONLY
	if regularOnly {
		// Refused before it is opened: an open has effects of its own on
		// a FIFO (a writer waiting in open(2) is let through) and on some
		// devices (a watchdog is armed, a serial line resets its board).
		if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
			return nil, notRegular(fi)
		}
		flags |= syscall.O_NONBLOCK | syscall.O_NOCTTY
	}
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	if regularOnly {
		// What was opened, if the path changed since it was looked at.
		fi, err := f.Stat()
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return nil, notRegular(fi)
		}
	}
	if err := checkConfigTrust(f, path); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if len(b) > MaxConfigBytes {
		return nil, fmt.Errorf("config: %s is larger than %d MiB; is it the configuration file?", path, MaxConfigBytes>>20)
	}
	c, err := Parse(path, b)
	if err == nil && c.blank {
		// A file being rewritten in place (truncated, then written: a
		// shell's >, cp, many provisioning tools) reads as empty in
		// between. As a configuration it is valid (no rings, no sources),
		// and a SIGHUP that read it stopped every source and removed
		// every ring.
		return nil, &ConfigError{File: path, Msg: fmt.Sprintf("declares nothing (%d bytes, no table or key), as a file being rewritten in place reads: write the new file under another name and rename it over this one; a configuration that runs nothing needs a table, e.g. [runtime]", len(b))}
	}
	return c, err
}

// checkConfigTrust refuses a configuration file that a user other than
// root and the runtime's own could change: its exec sources name the
// programs the runtime runs (as its own user), and its paths the files it
// creates and writes, so whoever may change the file may act as the
// runtime. The file (open as f, whatever symlinks led to it) must belong
// to root or the runtime's effective user and be writable by its owner
// only; its directory (after symlinks) must belong to one of them too, and
// be writable by no one else unless it is sticky (as /tmp is), so that
// nobody else can put another file in its place.
func checkConfigTrust(f *os.File, path string) error {
	euid := os.Geteuid()
	trusted := func(uid uint32) bool { return int(uid) == euid || uid == 0 }
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	runs := fmt.Sprintf("could make the runtime run any program as uid %d (exec sources) and write where it may", euid)
	switch perm := fi.Mode().Perm(); {
	case !trusted(st.Uid):
		return fmt.Errorf("%s belongs to uid %d, not to root or the runtime's user (uid %d): that user %s; give it to root or uid %d (chown), or use a file of theirs", path, st.Uid, euid, runs, euid)
	case perm&0o002 != 0:
		return fmt.Errorf("%s is writable by every user (mode %#o): any of them %s; make it writable by its owner only (chmod go-w %s)", path, perm, runs, path)
	case perm&0o020 != 0 && !privateGroup(st.Uid, st.Gid):
		return fmt.Errorf("%s is writable by its group (gid %d, mode %#o): its members %s; make it writable by its owner only (chmod g-w %s)", path, st.Gid, perm, runs, path)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil // removed meanwhile: what was opened is checked
	}
	dir := filepath.Dir(real)
	di, err := os.Stat(dir)
	if err != nil {
		return nil
	}
	dst, ok := di.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	switch perm := di.Mode().Perm(); {
	case !trusted(dst.Uid):
		return fmt.Errorf("%s is in %s, which belongs to uid %d, not to root or the runtime's user (uid %d): that user could replace the file and %s; keep the configuration in a directory of root or uid %d", path, dir, dst.Uid, euid, runs, euid)
	case (perm&0o002 != 0 || perm&0o020 != 0 && !privateGroup(dst.Uid, dst.Gid)) && di.Mode()&os.ModeSticky == 0:
		return fmt.Errorf("%s is in %s, which users other than its owner may write (mode %#o, gid %d): they could replace the file and %s; make the directory writable by its owner only (chmod go-w %s)", path, dir, perm, dst.Gid, runs, dir)
	}
	return nil
}

// CheckEnv checks the environment variables that stand in for keys of c
// when the runtime runs it, as the check of the file checks those keys:
// $EDGEIPC_SHM_DIR, the segment directory when shm_dir is unset, must be
// an absolute path (exec children get it, and run in a directory of their
// own), and $EDGEIPC_CTL_QUEUE, which overrides [control] queue, a name
// mq_open takes. New calls it, and so does `edgeipc run --check`, which
// otherwise said "ok" for a runtime that then could not start.
func (c *Config) CheckEnv() error {
	var errs []string
	if d := os.Getenv("EDGEIPC_SHM_DIR"); c.Runtime.ShmDir == "" && d != "" && !filepath.IsAbs(d) {
		errs = append(errs, fmt.Sprintf("$EDGEIPC_SHM_DIR %q (the segment directory: runtime.shm_dir is unset) must be an absolute path, as shm_dir must (exec children get it as EDGEIPC_SHM_DIR, and run in a directory of their own): set it to one, or set shm_dir", d))
	}
	if q := os.Getenv(control.EnvQueue); c.controlEnabled() && q != "" {
		if err := sys.ValidateMqName(q); err != nil {
			why := err.Error()
			var pe *os.PathError
			if errors.As(err, &pe) {
				why = strings.ReplaceAll(pe.Err.Error(), "\n", ": ")
			}
			errs = append(errs, fmt.Sprintf("$%s %q, which overrides [control] queue: %s; fix it or unset it", control.EnvQueue, q, why))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("environment: %s", strings.Join(errs, "; and "))
	}
	return nil
}

// privateGroup reports whether gid is the user private group of uid (the
// user's primary group, named as the user, as adduser makes them where the
// umask is 002): group write on such a file gives no other user access.
// Group root (gid 0) is never taken for one.
func privateGroup(uid, gid uint32) bool {
	if gid == 0 {
		return false
	}
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil || u.Gid != strconv.FormatUint(uint64(gid), 10) {
		return false
	}
	g, err := user.LookupGroupId(u.Gid)
	return err == nil && g.Name == u.Username
}

// Default returns the built-in configuration (runtime/default.toml).
func Default() *Config {
	c, err := Parse("", defaultTOML)
	if err != nil {
		panic("runtime: built-in default.toml is invalid: " + err.Error())
	}
	return c
}

// Parse parses and validates configuration text; file names it in errors.
func Parse(file string, data []byte) (*Config, error) {
	c := &Config{File: file}
	c.lines = scanLines(data)
	if err := c.tooDeep(data); err != nil {
		return nil, err
	}
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(c)
	if err != nil {
		return nil, c.decodeError(err)
	}
	c.blank = len(md.Keys()) == 0
	if err := c.ringsNotATable(md); err != nil {
		return nil, err
	}
	for _, k := range md.Keys() {
		switch {
		case len(k) == 1 && k[0] == "sources":
			c.srcKeys = append(c.srcKeys, map[string]bool{})
		case len(k) == 2 && k[0] == "sources" && len(c.srcKeys) > 0:
			c.srcKeys[len(c.srcKeys)-1][k[1]] = true
		case len(k) == 1 && k[0] == "sinks":
			c.snkKeys = append(c.snkKeys, map[string]bool{})
		case len(k) == 2 && k[0] == "sinks" && len(c.snkKeys) > 0:
			c.snkKeys[len(c.snkKeys)-1][k[1]] = true
		}
	}
	if !md.IsDefined("runtime", "stats_interval") {
		c.Runtime.StatsInterval = Duration(DefaultStatsInterval)
	}
	var errs ConfigErrors
	// The decoder matches a key to a field regardless of case: SLOTS was
	// taken for slots, and with both in one table the one applied changed
	// from run to run (map order). Keys are written in lowercase.
	arrayN := map[string]int{}
	for _, k := range md.Keys() {
		if len(k) == 1 {
			arrayN[k[0]]++
		}
		want := caseMismatch(k)
		if want == "" {
			continue
		}
		field, line := keyField(k), c.lines.line(k)
		if n := arrayN[k[0]]; len(k) == 2 && (k[0] == "sources" || k[0] == "sinks") && n > 0 {
			field = fmt.Sprintf("%s[%d].%s", k[0], n-1, k[1])
			line = c.lines.at(k[0], strconv.Itoa(n), k[1])
		}
		if line == 0 {
			line = c.lines.first(k[0])
		}
		errs = append(errs, &ConfigError{File: file, Line: line, Field: field, Msg: fmt.Sprintf("unknown key: keys are lowercase; write %s", want)})
	}
	for _, k := range md.Undecoded() {
		field, line := keyField(k), c.lines.line(k)
		if line == 0 {
			line = c.lines.first(k[0])
		}
		if len(k) >= 2 && (k[0] == "sources" || k[0] == "sinks") {
			// Undecoded keys of arrays of tables carry no index: find the
			// first table of the array that has the key.
			rest := strings.Join(k[1:], ".")
			if i, ok := c.lines[arrayKey+k[0]+"."+rest]; ok {
				field = fmt.Sprintf("%s[%d].%s", k[0], i-1, rest)
				line = c.lines[k[0]+"."+strconv.Itoa(i)+"."+rest]
			}
		}
		errs = append(errs, &ConfigError{File: file, Line: line, Field: field, Msg: "unknown key" + suggestKey(k) + " (see docs/config.md)"})
	}
	// Validate the known keys too, so that one run lists every problem;
	// unless a number did not fit its field, which then holds another.
	if ov := c.intOverflows(data); len(ov) > 0 {
		errs = append(errs, ov...)
	} else if err := c.validate(); err != nil {
		var ve ConfigErrors
		if !errors.As(err, &ve) {
			return nil, err
		}
		errs = append(errs, ve...)
	}
	if len(errs) > 0 {
		// In file order; problems without a line last.
		sort.SliceStable(errs, func(i, j int) bool {
			li, lj := errs[i].Line, errs[j].Line
			return li != 0 && (lj == 0 || li < lj)
		})
		return nil, errs
	}
	return c, nil
}

// Bounds on the shape of a configuration, far beyond what the format
// needs (arrays in inline tables in an array: 2 deep; rings.NAME.key: 3
// parts), checked before the TOML decoder sees the text. Within 4 MiB,
// arrays nested 2,000,000 deep overflowed the decoder's stack, a fatal
// error that no recover catches (a SIGHUP with such a file killed the
// runtime), and inline tables nested 8,000 deep, or a key of 8,000 dotted
// parts, took minutes to decode and check, holding up the main loop.
const (
	maxNesting  = 32
	maxKeyParts = 32
)

// tooDeep refuses text whose arrays or inline tables nest more than
// maxNesting deep, or with a key or table name of more than maxKeyParts
// dotted parts. It skips strings and comments, and counts a key's parts
// by the dots since the last character that cannot be in a key (a float
// value has one).
func (c *Config) tooDeep(data []byte) *ConfigError {
	depth, dots, line := 0, 0, 1
	for i := 0; i < len(data); i++ {
		switch ch := data[i]; ch {
		case '\n':
			line++
			dots = 0
		case '#':
			for i+1 < len(data) && data[i+1] != '\n' {
				i++
			}
		case '"', '\'':
			delim := data[i : i+1]
			if i+2 < len(data) && data[i+1] == ch && data[i+2] == ch {
				delim = data[i : i+3]
			}
			j := i + len(delim)
			for j < len(data) && !bytes.HasPrefix(data[j:], delim) {
				if data[j] == '\n' {
					line++
				}
				if ch == '"' && data[j] == '\\' && j+1 < len(data) {
					j++ // an escape: \" does not end the string
					if data[j] == '\n' {
						line++
					}
				}
				j++
			}
			i = j + len(delim) - 1
		case '[', '{':
			depth++
			dots = 0
			if depth > maxNesting {
				return &ConfigError{File: c.File, Line: line, Msg: fmt.Sprintf("arrays, inline tables or table headers nested more than %d deep: a configuration nests 2 at most; is this the configuration file?", maxNesting)}
			}
		case ']', '}':
			depth = max(depth-1, 0)
			dots = 0
		case '=', ',':
			dots = 0
		case '.':
			if dots++; dots >= maxKeyParts {
				return &ConfigError{File: c.File, Line: line, Msg: fmt.Sprintf("a key or table name of more than %d dotted parts: a configuration's have 3 at most (rings.NAME.key; quote a ring name with dots: [rings.\"cam.0\"]); is this the configuration file?", maxKeyParts)}
			}
		}
	}
	return nil
}

// ringsNotATable refuses a rings key that is not a table (rings = 3,
// rings = ["imu"], rings = [], an empty [[rings]]): the TOML decoder
// leaves a map field untouched for any value that is not a table, without
// an error, so such a file read as a configuration without rings, and a
// reload of it removed every ring. An array of tables with keys ([[rings]]
// name = "a") is left to the unknown-key error, which says the same.
func (c *Config) ringsNotATable(md toml.MetaData) *ConfigError {
	typ := md.Type("rings")
	if typ == "" || typ == "Hash" {
		return nil
	}
	for _, k := range md.Undecoded() {
		if k[0] == "rings" {
			return nil
		}
	}
	have := map[string]string{
		"Integer": "int64", "Float": "float64", "String": "string", "Bool": "bool",
		"Datetime": "time.Time", "Array": "[]any", "ArrayHash": "[]map[string]any",
	}[typ]
	return &ConfigError{File: c.File, Line: c.lines.first("rings"), Field: "rings", Msg: typeMismatch(toml.Key{"rings"}, have, "table")}
}

// tomlErrRe matches the errors of the TOML decoder that are not a
// toml.ParseError (a value of the wrong type): "toml: line 6 (last key
// "sources.command"): incompatible types: …".
var (
	tomlErrRe  = regexp.MustCompile(`^toml: (?:line (\d+) )?\(last key "([^"]*)"\): (.*)$`)
	badTypeRe  = regexp.MustCompile(`^incompatible types: TOML value has type (.+); destination has type (.+)$`)
	notTableRe = regexp.MustCompile(`^type mismatch for \S+: expected table but found (.+)$`)
)

// decodeError turns an error of the TOML decoder into a ConfigError with
// the line and field (sources[1].command), and a type mismatch into words
// that say what to write ("is a string; want an integer: write it without
// quotes"). The decoder stops at the first such error.
func (c *Config) decodeError(err error) *ConfigError {
	var pe toml.ParseError
	var key, msg string
	line := 0
	if errors.As(err, &pe) {
		line, key, msg = pe.Position.Line, pe.LastKey, pe.Message
	} else if m := tomlErrRe.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		key, msg = m[2], m[3]
	} else {
		return &ConfigError{File: c.File, Msg: err.Error()}
	}
	var k toml.Key
	if key != "" {
		k = strings.Split(key, ".") // dotted names of rings are split too; only for the line and the hint
	}
	if line == 0 {
		line = c.lines.first(key)
	}
	field := key
	if len(k) >= 1 && (k[0] == "sources" || k[0] == "sinks") {
		// The decoder gives no index: the table is the last [[sources]]
		// header at or before the line.
		if n := c.lines.arrayIndex(k[0], line); n > 0 && len(k) > 1 {
			field = fmt.Sprintf("%s[%d].%s", k[0], n-1, strings.Join(k[1:], "."))
		}
	}
	if m := badTypeRe.FindStringSubmatch(msg); m != nil {
		msg = typeMismatch(k, m[1], m[2])
	} else if m := notTableRe.FindStringSubmatch(msg); m != nil {
		msg = typeMismatch(k, m[1], "table")
	}
	return &ConfigError{File: c.File, Line: line, Field: field, Msg: msg}
}

// typeMismatch says what a value of TOML type have (as the decoder names
// its Go type) is and what key k wants instead (want: the decoder's name
// of the destination type).
func typeMismatch(k toml.Key, have, want string) string {
	is := map[string]string{
		"string": "a string", "int64": "an integer", "float64": "a float", "bool": "a boolean",
		"[]any": "an array", "map[string]any": "a table", "[]map[string]any": "an array of tables",
	}[have]
	if is == "" {
		is = "a date or time"
		if !strings.HasPrefix(have, "time.") && !strings.HasPrefix(have, "toml.") {
			is = "a " + have
		}
	}
	last := ""
	if len(k) > 0 {
		last = k[len(k)-1]
	}
	var hint string
	switch want {
	case "integer":
		hint = "want an integer"
		if have == "string" || have == "float64" {
			hint += ": write it as digits, without quotes or a decimal point"
		}
	case "float":
		hint = "want a number"
		if have == "string" {
			hint += ": write it without quotes"
		}
	case "boolean":
		hint = fmt.Sprintf("want true or false (%s = false: no quotes)", last)
	case "string", "primitive (string-like)":
		hint = fmt.Sprintf("want a string (%s = \"…\")", last)
	case "slice":
		switch {
		case len(k) == 1 && (k[0] == "sources" || k[0] == "sinks"):
			hint = fmt.Sprintf("want an array of tables: start each one with [[%s]] (two brackets; not [%s] or [%s.NAME])", k[0], k[0], k[0])
		default:
			hint = fmt.Sprintf("want an array of strings (%s = [\"…\", \"…\"])", last)
		}
	case "table", "map":
		switch {
		case len(k) == 1 && (k[0] == "sources" || k[0] == "sinks"):
			// An element of the array is not a table (sources = [1]):
			// [sources], as the hint below says, is no fix.
			hint = fmt.Sprintf("want an array of tables: start each one with [[%s]] (two brackets), its keys on the lines below", k[0])
		case len(k) == 1 && k[0] == "rings":
			hint = "want a table of rings: write each ring as [rings.NAME] (one bracket)"
		case len(k) == 2 && k[0] == "rings":
			hint = fmt.Sprintf("want a table: write [rings.%s] and its keys on the lines below", k[1])
		case len(k) == 1:
			hint = fmt.Sprintf("want a table: write [%s] (one bracket)", k[0])
		default:
			hint = "want a table"
		}
	default:
		hint = "want " + want
	}
	return fmt.Sprintf("is %s; %s", is, hint)
}

// configKeys lists the keys of each kind of table, for suggestions.
var configKeys = map[string][]string{
	"":        {"runtime", "control", "rings", "sources", "sinks"},
	"runtime": tomlTags(RuntimeConfig{}),
	"control": tomlTags(ControlConfig{}),
	"rings":   tomlTags(RingConfig{}),
	"sources": tomlTags(SourceConfig{}),
	"sinks":   tomlTags(SinkConfig{}),
}

func tomlTags(v any) []string {
	var keys []string
	t := reflect.TypeOf(v)
	for i := range t.NumField() {
		if k := t.Field(i).Tag.Get("toml"); k != "" && k != "-" {
			keys = append(keys, k)
		}
	}
	return keys
}

// suggestKey returns "; did you mean X?" for an unknown key k that is a
// typo of a key of its table ("slot" for "slots", "rate-hz" or "rate" for
// "rate_hz"), "; slots is a key of [rings.NAME]" for a key of another
// table, or "".
func suggestKey(k toml.Key) string {
	table, name := "", strings.ToLower(k[len(k)-1])
	if _, ok := configKeys[k[0]]; !ok {
		k = k[:1] // [ring.a]: the table's name is the typo
		name = strings.ToLower(k[0])
	}
	switch {
	case len(k) == 2 && k[0] == "rings":
		// Only an array of tables puts keys there: [[rings]].
		return "; each ring is a table named after it: [rings.NAME] (one bracket), with its keys on the lines below"
	case len(k) == 1:
	case len(k) == 2:
		table = k[0]
	case len(k) == 3 && k[0] == "rings":
		table = "rings"
	default:
		return ""
	}
	known, ok := configKeys[table]
	if !ok {
		return ""
	}
	where := map[string]string{"runtime": "[runtime]", "control": "[control]", "rings": "[rings.NAME]", "sources": "[[sources]]", "sinks": "[[sinks]]"}
	for _, t := range []string{"runtime", "control", "rings", "sources", "sinks"} {
		if t != table && table != "" && slices.Contains(configKeys[t], name) {
			return fmt.Sprintf("; %s is a key of %s", name, where[t])
		}
	}
	maxD := 2 // edits
	if len(name) <= 4 {
		maxD = 1
	}
	var best []string
	bestD := maxD + 1
	for _, c := range known {
		d := editDistance(name, c)
		if strings.HasPrefix(c, name+"_") {
			d = 1 // rate: rate_hz; backoff: backoff_min…
		}
		switch {
		case d < bestD:
			best, bestD = []string{c}, d
		case d == bestD:
			best = append(best, c)
		}
	}
	if len(best) == 0 || len(best) > 3 {
		return ""
	}
	return "; did you mean " + strings.Join(best, " or ") + "?"
}

// intOverflows lists the integers of data that do not fit the int field
// they were decoded into. On a 32-bit system (GOARCH=arm) the TOML
// decoder cuts them to 32 bits without a word: slots = 4294967298 became
// a 2-slot ring, and slot_payload = 4294967360 a payload of 64 bytes.
func (c *Config) intOverflows(data []byte) ConfigErrors {
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return nil
	}
	var errs ConfigErrors
	check := func(table map[string]any, typ reflect.Type, field string, path ...string) {
		for i := range typ.NumField() {
			k := typ.Field(i).Tag.Get("toml")
			n, ok := table[k].(int64)
			if typ.Field(i).Type.Kind() != reflect.Int || !ok || int64(int(n)) == n {
				continue
			}
			errs = append(errs, &ConfigError{File: c.File, Line: c.lines.at(append(path, k)...), Field: field + "." + k,
				Msg: fmt.Sprintf("%d is out of range (this %d-bit system's integers end at %d; see docs/config.md for the key's range)", n, strconv.IntSize, math.MaxInt)})
		}
	}
	rings, _ := raw["rings"].(map[string]any)
	for name, r := range rings {
		if t, ok := r.(map[string]any); ok {
			check(t, reflect.TypeFor[RingConfig](), "rings."+name, "rings", name)
		}
	}
	for arr, typ := range map[string]reflect.Type{"sources": reflect.TypeFor[SourceConfig](), "sinks": reflect.TypeFor[SinkConfig]()} {
		tables, _ := raw[arr].([]map[string]any)
		if a, ok := raw[arr].([]any); ok { // sources = [{…}, {…}]
			for _, v := range a {
				t, _ := v.(map[string]any)
				tables = append(tables, t)
			}
		}
		for i, t := range tables {
			check(t, typ, fmt.Sprintf("%s[%d]", arr, i), arr, strconv.Itoa(i+1))
		}
	}
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
	return errs
}

// caseMismatch returns the key that k's last element spells in another
// case (SLOTS: slots), or "".
func caseMismatch(k toml.Key) string {
	table, name := "", k[len(k)-1]
	switch top := strings.ToLower(k[0]); {
	case len(k) == 1:
	case len(k) == 2 && top != "rings": // rings.NAME is a ring's name
		table = top
	case len(k) == 3 && top == "rings":
		table = "rings"
	default:
		return ""
	}
	for _, c := range configKeys[table] {
		if c != name && strings.EqualFold(c, name) {
			return c
		}
	}
	return ""
}

// editDistance is the Levenshtein distance of a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// keyField renders a toml.Key as rings.cam.slots / sources[1].command. The
// decoder does not give array indexes for undecoded keys inside arrays of
// tables, so these show as sources[].key.
func keyField(k toml.Key) string {
	var b strings.Builder
	for i, p := range k {
		if i > 0 && !(i == 1 && (k[0] == "sources" || k[0] == "sinks")) {
			b.WriteByte('.')
		}
		if i == 1 && (k[0] == "sources" || k[0] == "sinks") {
			b.WriteString("[].")
		}
		b.WriteString(p)
	}
	return b.String()
}

// lineIndex maps "table.key" (array tables as "sources.2.key", 1-based) to
// the line where it is written. It is a plain line scanner, good enough for
// the flat tables of this format.
type lineIndex map[string]int

func scanLines(data []byte) lineIndex {
	li := lineIndex{}
	counts := map[string]int{}
	table := ""
	// The decoder reads over a byte order mark (editors on Windows write
	// one); so must the scanner: with it, the first line did not start
	// with "[", the first table's keys were taken for top-level keys, and
	// their errors had no line.
	for _, bom := range []string{"\xef\xbb\xbf", "\xff\xfe", "\xfe\xff"} {
		if b, ok := bytes.CutPrefix(data, []byte(bom)); ok {
			data = b
			break
		}
	}
	// first notes the first line of each dotted prefix of full (of up to
	// 8 parts: more than a lookup has) for lineIndex.first, which
	// scanned the whole index for each of them: a generated file of
	// thousands of sources, each with one misspelled key, took half a
	// minute to report them.
	first := func(full string, ln int) {
		for i, n := 0, 0; n < 8; n++ {
			j := strings.IndexByte(full[i:], '.')
			p := full
			if j >= 0 {
				p = full[:i+j]
			}
			if _, ok := li[firstKey+p]; !ok {
				li[firstKey+p] = ln
			}
			if j < 0 {
				break
			}
			i += j + 1
		}
	}
	arr, arrN := "", 0 // the array of tables the lines are in, and which
	for n, raw := range strings.Split(string(data), "\n") {
		ln := n + 1
		s := strings.TrimSpace(raw)
		if s == "" || s[0] == '#' {
			continue
		}
		switch {
		case strings.HasPrefix(s, "[["):
			name := dottedKey(strings.TrimPrefix(strings.SplitN(s, "]]", 2)[0], "[["))
			counts[name]++
			arr, arrN = name, counts[name]
			table = name + "." + strconv.Itoa(counts[name])
			li[table] = ln
			first(table, ln)
		case s[0] == '[':
			table = dottedKey(strings.TrimPrefix(strings.SplitN(s, "]", 2)[0], "["))
			arr = ""
			li[table] = ln
			first(table, ln)
		default:
			eq := strings.IndexByte(s, '=')
			if eq <= 0 {
				continue
			}
			k := dottedKey(s[:eq])
			full := k
			if table != "" {
				full = table + "." + k
			}
			if _, ok := li[full]; !ok {
				li[full] = ln
				first(full, ln)
			}
			if _, ok := li[arrayKey+arr+"."+k]; arr != "" && !ok {
				li[arrayKey+arr+"."+k] = arrN
			}
		}
	}
	return li
}

// Entries of a lineIndex that are not a key's line: firstKey+KEY is the
// first line of KEY or of a key under it, arrayKey+ARRAY.KEY the number
// (1-based) of the first table of the array of tables ARRAY that has KEY.
const (
	firstKey = "\x00"
	arrayKey = "\x01"
)

// dottedKey is a key or table name as written (rings.cam, rings."cam.0",
// rings.'cam', rings . cam) as the decoder's key parts joined with dots
// (rings.cam, rings.cam.0): any of these spellings, not only bare and
// double-quoted parts, finds its line.
func dottedKey(s string) string {
	var parts []string
	for s = strings.TrimSpace(s); s != ""; {
		var part string
		if q := s[0]; q == '"' || q == '\'' {
			end := strings.IndexByte(s[1:], q)
			if end < 0 {
				return ""
			}
			part, s = s[1:1+end], s[2+end:]
		} else {
			end := strings.IndexByte(s, '.')
			if end < 0 {
				end = len(s)
			}
			part, s = strings.TrimSpace(s[:end]), s[end:]
		}
		parts = append(parts, part)
		s = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(s), "."))
	}
	return strings.Join(parts, ".")
}

// line finds the line of a key path, falling back to its table.
func (li lineIndex) line(k toml.Key) int {
	for n := len(k); n > 0; n-- {
		if l, ok := li[strings.Join(k[:n], ".")]; ok {
			return l
		}
	}
	return 0
}

func (li lineIndex) at(path ...string) int { return li.line(toml.Key(path)) }

// first is the first line of key (dotted, as the decoder writes it) or of
// a table under it ("sources" finds [sources.cam]); 0 if none.
func (li lineIndex) first(key string) int {
	if key == "" {
		return 0
	}
	return li[firstKey+key]
}

// arrayIndex is the number (1-based) of the last [[name]] table that
// starts at or before line; 0 if none does.
func (li lineIndex) arrayIndex(name string, line int) int {
	n := 0
	for i := 1; ; i++ {
		l, ok := li[name+"."+strconv.Itoa(i)]
		if !ok || l > line {
			return n
		}
		n = i
	}
}

// errAt builds a ConfigError for a field.
func (c *Config) errAt(field string, path []string, format string, a ...any) *ConfigError {
	return &ConfigError{File: c.File, Line: c.lines.at(path...), Field: field, Msg: fmt.Sprintf(format, a...)}
}

func (c *Config) ringErr(name, key, format string, a ...any) *ConfigError {
	f := "rings." + name
	p := []string{"rings", name}
	if key != "" {
		f += "." + key
		p = append(p, key)
	}
	return c.errAt(f, p, format, a...)
}

func (c *Config) srcErr(s *SourceConfig, key, format string, a ...any) *ConfigError {
	f := fmt.Sprintf("sources[%d]", s.index)
	if s.Name != "" {
		f = fmt.Sprintf("sources[%d] (%s)", s.index, textesc.Escape(s.Name, textesc.NotPrintable)) // a name nameProblem refuses, as %q shows it
	}
	p := []string{"sources", strconv.Itoa(s.index + 1)}
	if key != "" {
		f += "." + key
		p = append(p, key)
	}
	return c.errAt(f, p, format, a...)
}

func (c *Config) sinkErr(s *SinkConfig, key, format string, a ...any) *ConfigError {
	f := fmt.Sprintf("sinks[%d]", s.index)
	if s.Name != "" {
		f = fmt.Sprintf("sinks[%d] (%s)", s.index, textesc.Escape(s.Name, textesc.NotPrintable)) // a name nameProblem refuses, as %q shows it
	}
	p := []string{"sinks", strconv.Itoa(s.index + 1)}
	if key != "" {
		f += "." + key
		p = append(p, key)
	}
	return c.errAt(f, p, format, a...)
}

// Defaults applied by validate.
const (
	DefaultStatsInterval = 2 * time.Second
	// MinStatsInterval is the shortest stats_interval (other than 0,
	// off): shorter ones flood the log.
	MinStatsInterval       = 100 * time.Millisecond
	DefaultShutdownTimeout = 10 * time.Second
	DefaultBackoffMin      = 100 * time.Millisecond
	DefaultBackoffMax      = 30 * time.Second
	DefaultBackoffReset    = 10 * time.Second
	DefaultStopTimeout     = 3 * time.Second
	DefaultMaxSkip         = 1 << 20
	DefaultLogRate         = 100.0 // lines a second of a child's log output
	// MaxStopTimeout bounds stop_timeout, so that a stop, restart or
	// reload answers within a bound `edgeipc ctl` can wait for (for a
	// reload, MaxReloadTime).
	MaxStopTimeout = time.Minute
	// ReloadTurnTimeout is how long Reload (SIGHUP's reload does not
	// wait) waits for the main loop to take it up while it runs another
	// reload; then it fails: "main loop busy; reload not started".
	ReloadTurnTimeout = 30 * time.Second
	// MaxReloadTime bounds how long Reload, and so `edgeipc ctl reload`,
	// takes to answer: its turn (ReloadTurnTimeout), then the reload,
	// which stops sources in parallel for up to their stop_timeout (at
	// most MaxStopTimeout) and is given busyMargin for the rest (the
	// sinks' drain, reloadDrain; the rings), the bound the watchdog
	// gives it (setBusy). Only a process that outlives SIGKILL (stuck in
	// the kernel, or another user's) holds a reload up for longer.
	// `edgeipc ctl reload` waits longer than this by default.
	MaxReloadTime = ReloadTurnTimeout + MaxStopTimeout + busyMargin
	// MaxNameLen bounds a source's or sink's name, as shm.ValidName
	// bounds a ring's: every row of `edgeipc ctl sources` must fit one
	// control message, and `ctl start NAME` one request.
	MaxNameLen = 200
)

func (c *Config) validate() error {
	var errs ConfigErrors
	add := func(e *ConfigError) { errs = append(errs, e) }
	if c.Rings == nil {
		c.Rings = map[string]*RingConfig{}
	}
	if si := c.Runtime.StatsInterval.D(); si < 0 {
		add(c.errAt("runtime.stats_interval", []string{"runtime", "stats_interval"}, "must not be negative"))
	} else if si > 0 && si < MinStatsInterval {
		// "1ns" (or "1ms" for "1m") logged tens of thousands of lines a
		// second, flooding the log and journald's rate limit.
		add(c.errAt("runtime.stats_interval", []string{"runtime", "stats_interval"}, "%v: at least %v (each interval logs a line per ring, source and sink), or \"0s\" for none", si, MinStatsInterval))
	}
	if c.Runtime.ShutdownTimeout == 0 {
		c.Runtime.ShutdownTimeout = Duration(DefaultShutdownTimeout)
	} else if c.Runtime.ShutdownTimeout < 0 {
		add(c.errAt("runtime.shutdown_timeout", []string{"runtime", "shutdown_timeout"}, "must be positive"))
	}
	if c.Runtime.ShmDir != "" && !filepath.IsAbs(c.Runtime.ShmDir) {
		add(c.errAt("runtime.shm_dir", []string{"runtime", "shm_dir"}, "%q must be an absolute path (exec children get it as EDGEIPC_SHM_DIR)", c.Runtime.ShmDir))
	} else if strings.ContainsRune(c.Runtime.ShmDir, 0) {
		add(c.errAt("runtime.shm_dir", []string{"runtime", "shm_dir"}, "%q contains a NUL byte (\\u0000), which no path can hold: remove it", c.Runtime.ShmDir))
	}
	if q := c.Control.Queue; q != "" {
		// What mq_open would refuse when the runtime starts: say so now,
		// at the key (--check passed "/edgeipc.ctl", and run then failed).
		if err := sys.ValidateMqName(q); err != nil {
			why := err.Error()
			var pe *os.PathError
			if errors.As(err, &pe) {
				why = strings.ReplaceAll(pe.Err.Error(), "\n", ": ")
			}
			add(c.errAt("control.queue", []string{"control", "queue"}, "%q: %s", q, why))
		}
	}
	if m, g := modeGroupProblems(&c.Control.Mode, c.Control.Group, true); m != "" || g != "" {
		if m != "" {
			add(c.errAt("control.mode", []string{"control", "mode"}, "%s", m))
		}
		if g != "" {
			add(c.errAt("control.group", []string{"control", "group"}, "%s", g))
		}
	} else if c.Control.Group != "" && os.Getegid() != 0 {
		if gid, err := shm.LookupGroup(c.Control.Group); err == nil && gid == 0 {
			add(c.errAt("control.group", []string{"control", "group"}, "%q is gid 0, which a runtime running as group %d cannot give the control queue: choose another group, or run the runtime as group root", c.Control.Group, os.Getegid()))
		}
	}
	names := make([]string, 0, len(c.Rings))
	for n := range c.Rings {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r := c.Rings[n]
		if r == nil {
			r = &RingConfig{}
			c.Rings[n] = r
		}
		r.Name = n
		ringErrs := len(errs)
		if err := shm.ValidName(n); err != nil {
			add(c.ringErr(n, "", "bad ring name: %v", err))
		}
		if r.Slots == 0 {
			r.Slots = shm.DefaultSlots
		}
		if r.Slots < 2 || r.Slots > shm.MaxSlots || r.Slots&(r.Slots-1) != 0 {
			add(c.ringErr(n, "slots", "%d is not a power of two from 2 to %d", r.Slots, shm.MaxSlots))
		}
		if r.SlotPayload == 0 {
			r.SlotPayload = shm.DefaultSlotPayload
		}
		if r.SlotPayload < 1 || r.SlotPayload > shm.MaxSlotPayload {
			add(c.ringErr(n, "slot_payload", "%d is out of range 1..%d", r.SlotPayload, shm.MaxSlotPayload))
		} else {
			// shm rounds the payload up to a multiple of 64; use the real value
			// so that a reattach compares the same geometry.
			r.SlotPayload = (r.SlotPayload + 63) &^ 63
		}
		// As it takes effect ("" is overwrite; "Block" is block), so that
		// a reload that spells it otherwise does not recreate the ring.
		if p, err := shm.ParsePolicy(r.Policy); err != nil {
			add(c.ringErr(n, "policy", "%q: want \"overwrite\" or \"block\"", r.Policy))
		} else {
			r.Policy = p.String()
		}
		if m, g := modeGroupProblems(&r.Mode, r.Group, false); m != "" || g != "" {
			if m != "" {
				add(c.ringErr(n, "mode", "%s", m))
			}
			if g != "" {
				add(c.ringErr(n, "group", "%s", g))
			}
		}
		// What the checks above do not cover (the ring's total size): a
		// reload must not find out only after it has removed the old ring.
		if len(errs) == ringErrs {
			if err := r.shmConfig("").Validate(); err != nil {
				// The ring as a whole is too large: say what makes its size.
				add(c.ringErr(n, "", "%v (%d slots of %d bytes): lower slots or slot_payload", err, r.Slots, r.SlotPayload))
			}
		}
	}
	srcNames := map[string]bool{}
	writers := map[string]string{}
	fifoPaths := map[string]string{}
	for i, s := range c.Sources {
		s.index = i
		if s.Name == "" {
			add(c.srcErr(s, "name", "missing (every source needs a unique name)"))
		} else if srcNames[s.Name] {
			add(c.srcErr(s, "name", "duplicate source name %q", s.Name))
		} else if len(s.Name) > MaxNameLen {
			add(c.srcErr(s, "name", "%d bytes long: at most %d", len(s.Name), MaxNameLen))
		} else if msg := nameProblem(s.Name); msg != "" {
			add(c.srcErr(s, "name", "%s", msg))
		}
		srcNames[s.Name] = true
		ring, ok := c.Rings[s.Ring]
		if s.Ring == "" {
			add(c.srcErr(s, "ring", "missing"))
		} else if !ok {
			add(c.srcErr(s, "ring", "no ring %q is declared (add a [rings.%s] table)", s.Ring, s.Ring))
		} else if w, dup := writers[s.Ring]; dup {
			add(c.srcErr(s, "ring", "ring %q is already written by source %q (a ring has one writer)", s.Ring, w))
		} else {
			writers[s.Ring] = s.Name
		}
		if s.Framing == "" {
			s.Framing = "lines"
		}
		if s.Kind == KindExec || s.Kind == KindFIFO {
			if _, err := framing.ParseKind(s.Framing); err != nil {
				add(c.srcErr(s, "framing", "%q: want lines, len32 or msgp", s.Framing))
			}
		}
		switch {
		case (s.Kind == KindExec || s.Kind == KindFIFO) && s.Framing == "lines" && s.Write != "child" && i < len(c.srcKeys) && c.srcKeys[i]["max_skip"]:
			// The lines decoder has no use for it (an over-long line is
			// dropped up to its newline, whatever its length): it was
			// accepted and did nothing.
			dflt := ""
			if !c.srcKeys[i]["framing"] {
				dflt = " (the default: framing is not set here)"
			}
			add(c.srcErr(s, "max_skip", "does nothing on a source whose framing is \"lines\"%s: it applies to the len32 and msgp framings only (an over-long line is always dropped up to its newline, whatever its length): remove it, or set framing", dflt))
		case s.MaxSkip < 0:
			add(c.srcErr(s, "max_skip", "%d: must be positive (bytes; default %d)", s.MaxSkip, DefaultMaxSkip))
		}
		if s.MaxSkip == 0 {
			s.MaxSkip = DefaultMaxSkip
		}
		switch s.Kind {
		case KindExec:
			if len(s.Command) == 0 || s.Command[0] == "" {
				add(c.srcErr(s, "command", "missing: an argv array, e.g. [\"/usr/bin/sensor\", \"--rate\", \"100\"]"))
			}
			switch s.Write {
			case "":
				s.Write = "runtime"
			case "runtime", "child":
			default:
				add(c.srcErr(s, "write", "%q: want \"runtime\" or \"child\"", s.Write))
			}
			// They shape the frames the runtime writes: with a child that
			// writes the ring itself, its stdout is only logged, and they
			// were accepted and did nothing.
			for _, k := range []string{"framing", "max_skip", "type", "flags"} {
				if s.Write == "child" && i < len(c.srcKeys) && c.srcKeys[i][k] {
					add(c.srcErr(s, k, "does nothing with write = \"child\": the child writes the ring itself (its frames' type and flags too), and its stdout is logged, not cut into frames: remove it, or set write = \"runtime\""))
				}
			}
			switch s.Restart {
			case "":
				s.Restart = "always"
			case "always", "on-failure", "never":
			default:
				add(c.srcErr(s, "restart", "%q: want always, on-failure or never", s.Restart))
			}
			// The restart delay of a child that is never restarted: they
			// were accepted and did nothing.
			for _, k := range []string{"backoff_min", "backoff_max", "backoff_reset"} {
				if s.Restart == "never" && i < len(c.srcKeys) && c.srcKeys[i][k] {
					add(c.srcErr(s, k, "does nothing with restart = \"never\": the child is not started again, so there is no restart delay: remove it, or set restart = \"always\" or \"on-failure\""))
				}
			}
			if len(s.Env) == 0 {
				// env = [] is the default written out: compared as unset,
				// so that a reload that writes it keeps the child.
				s.Env = nil
			}
			for _, e := range s.Env {
				k, _, ok := strings.Cut(e, "=")
				switch k {
				case "EDGEIPC_RING", "EDGEIPC_SHM_DIR", "EDGEIPC_SOURCE", "EDGEIPC_SLOT_PAYLOAD", "EDGEIPC_WRITE":
					add(c.srcErr(s, "env", "%q: the runtime sets %s for the child (from the source's ring, name and write): remove it", e, k))
					continue
				}
				if !ok || k == "" {
					add(c.srcErr(s, "env", "%q is not KEY=VALUE", e))
				}
			}
			// The kernel takes argv, the environment and the directory
			// as C strings: with a NUL every start would fail with
			// "invalid argument", over and over.
			for _, a := range s.Command {
				if strings.ContainsRune(a, 0) {
					add(c.srcErr(s, "command", "%q contains a NUL byte (\\u0000), which no program argument can hold: remove it", a))
				}
			}
			for _, e := range s.Env {
				if strings.ContainsRune(e, 0) {
					add(c.srcErr(s, "env", "%q contains a NUL byte (\\u0000), which no environment variable can hold: remove it", e))
				}
			}
			if strings.ContainsRune(s.Dir, 0) {
				add(c.srcErr(s, "dir", "%q contains a NUL byte (\\u0000), which no path can hold: remove it", s.Dir))
			}
			// As the child gets it, and as a reload compares it: "/tmp/"
			// and "/tmp/./" are "/tmp", and a reload that respells it
			// restarted the child.
			s.Dir = cleanPath(s.Dir)
			def(&s.BackoffMin, DefaultBackoffMin)
			def(&s.BackoffMax, DefaultBackoffMax)
			def(&s.BackoffReset, DefaultBackoffReset)
			def(&s.StopTimeout, DefaultStopTimeout)
			switch {
			case s.BackoffMin < 0:
				add(c.srcErr(s, "backoff_min", "%v: must be positive (the first restart delay; default %v)", s.BackoffMin.D(), DefaultBackoffMin))
			case s.BackoffMax < s.BackoffMin && i < len(c.srcKeys) && !c.srcKeys[i]["backoff_max"]:
				// Only backoff_min is written: the error is at its line,
				// not at an unwritten backoff_max's (the table's).
				add(c.srcErr(s, "backoff_min", "%v: more than backoff_max (default %v, not set here): lower backoff_min, or set backoff_max at least as long", s.BackoffMin.D(), s.BackoffMax.D()))
			case s.BackoffMax < s.BackoffMin:
				add(c.srcErr(s, "backoff_max", "%v: must be ≥ backoff_min (%v)", s.BackoffMax.D(), s.BackoffMin.D()))
			}
			if s.BackoffReset < 0 {
				add(c.srcErr(s, "backoff_reset", "%v: must be positive (how long a child must run for the delay to start again at backoff_min; default %v)", s.BackoffReset.D(), DefaultBackoffReset))
			}
			if s.LogRate == nil {
				r := DefaultLogRate
				s.LogRate = &r
			} else if *s.LogRate < 0 || math.IsNaN(*s.LogRate) || math.IsInf(*s.LogRate, 0) {
				add(c.srcErr(s, "log_rate", "%v: must be 0 (no bound) or a positive number of lines a second (default %v)", *s.LogRate, DefaultLogRate))
			}
			if s.StopTimeout < 0 || s.StopTimeout.D() > MaxStopTimeout {
				add(c.srcErr(s, "stop_timeout", "%v: must be positive and at most %v (how long a child has between SIGTERM and SIGKILL; default %v)", s.StopTimeout.D(), MaxStopTimeout, DefaultStopTimeout))
			}
		case KindFIFO:
			if s.Path == "" {
				add(c.srcErr(s, "path", "missing: the FIFO path, e.g. \"/run/edgeipc/sensor.fifo\""))
				break
			}
			if !filepath.IsAbs(s.Path) {
				add(c.srcErr(s, "path", "%q must be absolute", s.Path))
			}
			if strings.ContainsRune(s.Path, 0) {
				add(c.srcErr(s, "path", "%q contains a NUL byte (\\u0000), which no path can hold: remove it", s.Path))
				break
			}
			s.Path = cleanPath(s.Path) // "/x/./y.fifo" is "/x/y.fifo"; ".." parts stay
			if o, dup := fifoPaths[s.Path]; dup {
				add(c.srcErr(s, "path", "%q is also used by source %q", s.Path, o))
			}
			fifoPaths[s.Path] = s.Name
			if m, g := modeGroupProblems(&s.Mode, s.Group, true); m != "" || g != "" {
				if m != "" {
					add(c.srcErr(s, "mode", "%s", m))
				}
				if g != "" {
					add(c.srcErr(s, "group", "%s", g))
				}
			}
			if err := checkFIFOPath(s.Path); err != nil {
				add(c.srcErr(s, "path", "%v", err))
			}
		case KindSynthetic:
			if !(s.RateHz > 0 && s.RateHz <= 1e6) { // NaN too
				add(c.srcErr(s, "rate_hz", "%v: want 0 < rate_hz ≤ 1000000", s.RateHz))
			}
			if ok && (s.Size < 0 || s.Size > ring.SlotPayload) {
				add(c.srcErr(s, "size", "%d does not fit ring %q (slot_payload %d)", s.Size, s.Ring, ring.SlotPayload))
			}
		case "":
			add(c.srcErr(s, "kind", "missing: exec, fifo or synthetic"))
		default:
			add(c.srcErr(s, "kind", "%q: want exec, fifo or synthetic", s.Kind))
		}
		// A key of another kind is a mistake (a synthetic source with a
		// command, a fifo source with a rate): say so rather than ignore it.
		if (s.Kind == KindExec || s.Kind == KindFIFO || s.Kind == KindSynthetic) && i < len(c.srcKeys) {
			for _, k := range kindKeys {
				if c.srcKeys[i][k.key] && !strings.Contains(k.kinds, s.Kind) {
					add(c.srcErr(s, k.key, "does not apply to %s sources (only to %s sources): remove it", s.Kind, k.kinds))
				}
			}
		}
	}
	sinkNames := map[string]bool{}
	statsOf := map[string]string{}       // ring -> its stats sink
	recorderPaths := map[string]string{} // path -> the recorder sink appending to it
	for i, s := range c.Sinks {
		s.index = i
		named := s.Name != ""
		if !named {
			s.Name = fmt.Sprintf("%s-%d", s.Kind, i)
		}
		if sinkNames[s.Name] {
			add(c.sinkErr(s, "name", "duplicate sink name %q", s.Name))
		} else if len(s.Name) > MaxNameLen {
			add(c.sinkErr(s, "name", "%d bytes long: at most %d", len(s.Name), MaxNameLen))
		} else if msg := nameProblem(s.Name); named && msg != "" {
			// A default name comes from the kind, whose own error says
			// what is wrong with it.
			add(c.sinkErr(s, "name", "%s", msg))
		}
		// "stats:RING" names ring RING's implicit stats reader (apply):
		// another sink by that name would silently take its place.
		if r, ok := strings.CutPrefix(s.Name, "stats:"); ok && (s.Kind != SinkStats || s.Ring != r) {
			add(c.sinkErr(s, "name", "%q is the name of ring %q's stats reader: choose another name", s.Name, r))
		}
		sinkNames[s.Name] = true
		if _, ok := c.Rings[s.Ring]; !ok {
			add(c.sinkErr(s, "ring", "no ring %q is declared", s.Ring))
		}
		switch s.Kind {
		case SinkStats:
			// A recorder's key on a stats sink was ignored: a sink meant
			// to record (kind = "stats" for "recorder") ran without a word.
			if i < len(c.snkKeys) {
				for _, k := range []string{"path", "max_bytes"} {
					if c.snkKeys[i][k] {
						add(c.sinkErr(s, k, "does not apply to stats sinks (only to recorder sinks): remove it, or make the sink kind = \"recorder\""))
					}
				}
			}
			// The ring's figures come from its one stats reader: a second
			// would make them depend on which one reported last.
			if other, dup := statsOf[s.Ring]; dup {
				add(c.sinkErr(s, "ring", "ring %q already has a stats sink (%q): a ring has one", s.Ring, other))
			} else {
				statsOf[s.Ring] = s.Name
			}
		case SinkRecorder:
			if s.Path == "" {
				add(c.sinkErr(s, "path", "missing: the file to append frames to"))
			} else if !filepath.IsAbs(s.Path) {
				add(c.sinkErr(s, "path", "%q must be an absolute path", s.Path))
			} else if strings.ContainsRune(s.Path, 0) {
				add(c.sinkErr(s, "path", "%q contains a NUL byte (\\u0000), which no path can hold: remove it", s.Path))
			} else {
				// Two recorders on one file interleave their records
				// (Recorder.Run also refuses a file another recorder
				// holds, for paths that differ but name one file).
				s.Path = cleanPath(s.Path)
				if o, dup := recorderPaths[s.Path]; dup {
					add(c.sinkErr(s, "path", "%q is also recorded to by sink %q: two recorders would interleave their records in one file; give each its own path", s.Path, o))
				} else if o, fifo := fifoPaths[s.Path]; fifo {
					// Sinks start first: the recorder made a file there,
					// and the source failed on it (not a FIFO).
					add(c.sinkErr(s, "path", "%q is the FIFO of source %q: a recorder appends to a regular file of its own; give it another path", s.Path, o))
				} else {
					recorderPaths[s.Path] = s.Name
				}
			}
			if s.MaxBytes < 0 {
				add(c.sinkErr(s, "max_bytes", "must not be negative"))
			}
		default:
			add(c.sinkErr(s, "kind", "%q: want stats or recorder", s.Kind))
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// cleanPath returns the spelling of path d that compares equal for
// every spelling of it that names the same file whatever the symlinks on
// its way: without "." parts, repeated slashes and a trailing slash
// ("/tmp/", "/tmp/./" and "/tmp//" are "/tmp"; "." and "./" are "", the
// runtime's working directory, as "" is). It keeps ".." parts, which
// filepath.Clean takes out lexically: with lnk a symlink to /srv/app/v3,
// "/opt/lnk/../shared" is /srv/app/shared to the kernel, and Clean made it
// /opt/shared, so the runtime created a FIFO, a recorder's file or its
// rings somewhere other than where a program that opens the path as
// written looks. A trailing slash only asks that d be a directory: a
// working directory or segment directory must be one anyway, and a FIFO
// or recorder file is opened as what it is.
func cleanPath(d string) string {
	var parts []string
	for _, p := range strings.Split(d, "/") {
		if p != "" && p != "." {
			parts = append(parts, p)
		}
	}
	s := strings.Join(parts, "/")
	if strings.HasPrefix(d, "/") {
		return "/" + s
	}
	return s
}

// nameProblem says what is wrong with the characters of a source's or
// sink's name, or "". A name is shown in log lines, in the tables and JSON
// of `edgeipc ctl` and (a source's) in an exec child's EDGEIPC_SOURCE, and
// typed in `edgeipc ctl start NAME`: it must be printable text, without a
// control character (NUL, tab, newline, escape…) or one that does not
// print (a bidirectional override, a zero-width or non-ASCII space), which
// the log and ctl show escaped (\n, \u202e), not as the name is typed.
// Ring names have stricter rules of their own (shm.ValidName).
func nameProblem(name string) string {
	if !utf8.ValidString(name) {
		return fmt.Sprintf("%q is not UTF-8 text: a name is printable text", name)
	}
	i := strings.IndexFunc(name, textesc.NotPrintable)
	if i < 0 {
		return ""
	}
	r, _ := utf8.DecodeRuneInString(name[i:])
	what := "a character that does not print"
	switch {
	case r == 0:
		what = "a NUL byte"
	case textesc.Control(r) || r == '\t':
		what = "a control character"
	}
	return fmt.Sprintf("%q contains %s (%s, at byte %d): a name is shown in log lines and by edgeipc ctl, and typed in 'edgeipc ctl start NAME', so it must be printable text (letters, digits, punctuation, symbols, spaces): remove it", name, what, strconv.QuoteRuneToASCII(r), i)
}

// modeGroupProblems checks the mode and group of a queue, ring or FIFO. A
// ring's mode is 0600 or 0660: its readers write their cursors into it,
// so its group needs read and write. The control queue and a FIFO are
// only written to by others (requests, records), so they also take 0620,
// the default with a group: the group may send, and cannot take each
// other's requests or records. 0 is the default: 0600, or with a group
// 0660 (ring) or 0620 (sendOnly). A group needs a mode that lets it in,
// and must exist. It returns what is wrong with each, or "". It sets an
// unset *mode to its default, so that a reload that writes the default
// out (mode = "0600") compares equal to one that leaves it unset: a ring
// whose mode changed is recreated.
func modeGroupProblems(mode *FileMode, group string, sendOnly bool) (modeMsg, groupMsg string) {
	groupDefault := FileMode(0o660)
	if sendOnly {
		groupDefault = 0o620
	}
	switch m := *mode; {
	case m == 0 && group != "":
		*mode = groupDefault
	case m == 0:
		*mode = 0o600
	case m == 0o620 && !sendOnly:
		modeMsg = "\"0620\" gives the group no read access, and a ring's readers must read it and write their cursor into it: use \"0660\" (the default with a group) or \"0600\""
	case m != 0o600 && m != 0o620 && m != 0o660:
		if sendOnly {
			modeMsg = fmt.Sprintf("%#o: only \"0600\" (owner only), \"0620\" (the group may write) or \"0660\" (the group may also read what others wrote)", uint32(m))
		} else {
			modeMsg = fmt.Sprintf("%#o: only \"0600\" (owner only) or \"0660\" (owner and group)", uint32(m))
		}
	case m == 0o600 && group != "":
		modeMsg = fmt.Sprintf("\"0600\" with group %q gives the group no access: use \"%#o\" (the default with a group) or remove group", group, uint32(groupDefault))
	}
	if group != "" {
		if _, err := shm.LookupGroup(group); err != nil {
			groupMsg = fmt.Sprintf("%q: %v", group, err)
		}
	}
	return modeMsg, groupMsg
}

func def(d *Duration, v time.Duration) {
	if *d == 0 {
		*d = Duration(v)
	}
}

// checkFIFOPath refuses a path that exists and is not a FIFO (a symlink
// included: the runtime never follows one) or is a FIFO of another user,
// and a path in a directory that every user may write and that is not
// sticky (any of them could put their own FIFO in the place of the
// runtime's, and read what writers send it).
func checkFIFOPath(p string) error {
	// The parent as the kernel finds it: filepath.Dir cleans, and takes
	// "/x/lnk/.." for "/x" where lnk may lead elsewhere.
	dir := "."
	if i := strings.LastIndexByte(p, '/'); i == 0 {
		dir = "/"
	} else if i > 0 {
		dir = p[:i]
	}
	if di, err := os.Stat(dir); err == nil && di.IsDir() && di.Mode().Perm()&0o002 != 0 && di.Mode()&os.ModeSticky == 0 {
		return fmt.Errorf("%s is in %s, which every user may write (mode %#o) and is not sticky: any of them could rename the FIFO away and put their own in its place, then read what writers send and forge records; make the directory sticky like /tmp (chmod +t %s) or writable by its owner only", p, dir, di.Mode().Perm(), dir)
	}
	fi, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("%s is a symlink; refusing to use it as a FIFO (remove it or choose another path)", p)
	}
	if fi.Mode()&os.ModeNamedPipe == 0 {
		return fmt.Errorf("%s exists and is %s, not a FIFO; refusing to replace it", p, fileType(fi.Mode()))
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return checkFIFOOwner(p, int(st.Uid))
	}
	return nil
}

// checkFIFOOwner refuses a FIFO that the runtime's effective user does not
// own: another user could read what is written to it, or replace it.
func checkFIFOOwner(path string, uid int) error {
	if euid := os.Geteuid(); uid != euid {
		return fmt.Errorf("%s is a FIFO owned by uid %d, not by the runtime's user (uid %d); refusing to reuse it: remove it (rm %s) so the runtime creates its own, or choose another path", path, uid, euid, path)
	}
	return nil
}

// statsEnabled reports whether the ring gets a built-in stats reader.
func (r *RingConfig) statsEnabled() bool { return r.Stats == nil || *r.Stats }

func (r *RingConfig) shmConfig(dir string) shm.Config {
	p, _ := shm.ParsePolicy(r.Policy)
	return shm.Config{
		Slots: r.Slots, SlotPayload: r.SlotPayload, Policy: p,
		// An existing segment must be the runtime's own: another user's
		// is refused before it is mapped (openRing, foreignSegment).
		Segment: shm.SegmentOptions{Dir: dir, Group: r.Group, Mode: os.FileMode(r.Mode), Owners: []int{os.Geteuid()}},
	}
}

// sameRing reports whether two ring configs describe the same segment.
func sameRing(a, b *RingConfig) bool {
	return a.Slots == b.Slots && a.SlotPayload == b.SlotPayload && a.Policy == b.Policy &&
		a.Mode == b.Mode && sameGroup(a.Group, b.Group)
}

// sameGroup reports whether two group settings name the same group: a
// name and its number ("video", "44") are one group, and a reload that
// respells it must not remove and recreate the ring. Settings that do not
// resolve (the group database changed) compare as written.
func sameGroup(a, b string) bool {
	if a == b {
		return true
	}
	if a == "" || b == "" {
		return false
	}
	ga, errA := shm.LookupGroup(a)
	gb, errB := shm.LookupGroup(b)
	return errA == nil && errB == nil && ga == gb
}

// logRate is the source's log_rate: lines a second of the child's output
// logged (0: no bound).
func (s *SourceConfig) logRate() float64 {
	if s.LogRate == nil {
		return DefaultLogRate
	}
	return *s.LogRate
}

func sameSource(a, b *SourceConfig) bool {
	x, y := *a, *b
	x.index, y.index = 0, 0
	if sameGroup(x.Group, y.Group) {
		y.Group = x.Group
	}
	return reflect.DeepEqual(x, y)
}

func sameSink(a, b *SinkConfig) bool {
	x, y := *a, *b
	x.index, y.index = 0, 0
	return x == y
}

// Summary counts what the configuration declares: "2 rings, 1 source,
// 0 sinks" (the built-in stats readers are not sinks it declares).
func (c *Config) Summary() string {
	n := func(k int, what string) string {
		if k == 1 {
			return "1 " + what
		}
		return fmt.Sprintf("%d %ss", k, what)
	}
	return n(len(c.Rings), "ring") + ", " + n(len(c.Sources), "source") + ", " + n(len(c.Sinks), "sink")
}

func (c *Config) controlEnabled() bool { return c.Control.Enabled == nil || *c.Control.Enabled }

// fileType names the type of a file for messages.
func fileType(m os.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a directory"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeDevice != 0:
		return "a device"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "a " + m.Type().String() + " file"
}
