package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// docTable is one key table of docs/config.md: the heading it is under,
// and for every key its default column ("" when the table has none).
type docTable struct {
	heading  string
	defaults map[string]string
}

// readConfigDoc parses the key tables of docs/config.md: a row whose first
// cell holds backquoted keys ("`backoff_min`, `backoff_max`") gives each key
// the matching part of the default column (`"100ms"`, `"30s"`).
func readConfigDoc(t *testing.T) []docTable {
	t.Helper()
	b, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	keyCell := regexp.MustCompile("^`([a-z_]+)`$")
	var tables []docTable
	var heading string
	var cur *docTable
	hasDefault := false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "#"):
			heading, cur = strings.TrimSpace(strings.TrimLeft(line, "#")), nil
		case strings.HasPrefix(line, "| key |"):
			tables = append(tables, docTable{heading: heading, defaults: map[string]string{}})
			cur = &tables[len(tables)-1]
			hasDefault = strings.HasPrefix(line, "| key | default |")
		case cur != nil && strings.HasPrefix(line, "|---"):
		case cur != nil && strings.HasPrefix(line, "| "):
			cells := strings.Split(strings.Trim(line, "|"), " | ")
			keys := strings.Split(strings.TrimSpace(cells[0]), ", ")
			var defs []string
			if hasDefault && len(cells) > 1 {
				defs = strings.Split(strings.TrimSpace(cells[1]), ", ")
			}
			for i, k := range keys {
				m := keyCell.FindStringSubmatch(k)
				if m == nil {
					t.Fatalf("docs/config.md, under %q: %q is not a `key` cell", heading, k)
				}
				d := ""
				if len(defs) == len(keys) {
					d = defs[i]
				} else if len(defs) == 1 {
					d = defs[0]
				}
				cur.defaults[m[1]] = d
			}
		default:
			cur = nil
		}
	}
	return tables
}

// tomlKeys lists the TOML keys of a config struct.
func tomlKeys(v any) []string {
	var keys []string
	rt := reflect.TypeOf(v)
	for i := 0; i < rt.NumField(); i++ {
		if k := rt.Field(i).Tag.Get("toml"); k != "" && k != "-" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// docDefault renders a value that validate filled in as docs/config.md
// writes it.
func docDefault(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case Duration:
		return fmt.Sprintf("`%q`", x.D().String())
	case string:
		return fmt.Sprintf("`%q`", x)
	case bool:
		return fmt.Sprintf("`%v`", x)
	case []string:
		if len(x) == 0 {
			return "`[]`"
		}
	case FileMode:
		return fmt.Sprintf("`\"%04o\"`", uint32(x)) // validate fills in 0600 (with a group: 0660 for a ring, 0620 for the control queue and a FIFO)
	case *bool:
		if x == nil { // nil: the accessor's default, true
			return "`true`"
		}
	case *float64:
		if x != nil { // validate filled in the default
			return fmt.Sprint(*x)
		}
	case int, uint32:
		return fmt.Sprint(x)
	}
	return fmt.Sprintf("(no rendering for %T %v)", v.Interface(), v.Interface())
}

// TestConfigDocCoversEveryKey: every key the parser decodes is in a table of
// docs/config.md under its own section, every key in those tables is one
// the parser decodes (an undocumented key is as bad as a documented one
// that is "unknown key"), and the defaults the tables give are the ones
// validate fills in. The source kinds' tables hold exactly the keys that
// the kind check (kindKeys) gives to that kind.
func TestConfigDocCoversEveryKey(t *testing.T) {
	tables := readConfigDoc(t)
	// The parsed defaults of a minimal file with one source of each kind
	// and one sink of each kind.
	cfg, err := Parse("min.toml", []byte(`
[rings.a]
[rings.b]
[rings.c]
[[sources]]
name = "e"
kind = "exec"
ring = "a"
command = ["true"]
[[sources]]
name = "f"
kind = "fifo"
ring = "b"
path = "/run/edgeipc-doc-test/x.fifo"
[[sources]]
name = "s"
kind = "synthetic"
ring = "c"
rate_hz = 1
[[sinks]]
kind = "recorder"
ring = "a"
path = "/run/edgeipc-doc-test/a.rec"
`))
	if err != nil {
		t.Fatal(err)
	}
	kindOf := map[string]string{}
	for _, k := range kindKeys {
		kindOf[k.key] = k.kinds
	}
	sections := []struct {
		heading string // prefix of the headings of its tables
		v       any    // the struct with those keys
		parsed  reflect.Value
		kind    func(key string) bool // for [[sources]]: keys of the tables of this heading
	}{
		{"`[runtime]`", RuntimeConfig{}, reflect.ValueOf(cfg.Runtime), nil},
		{"`[control]`", ControlConfig{}, reflect.ValueOf(cfg.Control), nil},
		{"`[rings.NAME]`", RingConfig{}, reflect.ValueOf(*cfg.Rings["a"]), nil},
		{"`[[sources]]`", SourceConfig{}, reflect.ValueOf(*cfg.Sources[0]), func(k string) bool { _, ok := kindOf[k]; return !ok || kindOf[k] == "exec and fifo" }},
		{"`kind = \"exec\"`", SourceConfig{}, reflect.ValueOf(*cfg.Sources[0]), func(k string) bool { return kindOf[k] == "exec" }},
		{"`kind = \"fifo\"`", SourceConfig{}, reflect.ValueOf(*cfg.Sources[1]), func(k string) bool { return kindOf[k] == "fifo" }},
		{"`kind = \"synthetic\"`", SourceConfig{}, reflect.ValueOf(*cfg.Sources[2]), func(k string) bool { return kindOf[k] == "synthetic" }},
		{"`[[sinks]]`", SinkConfig{}, reflect.ValueOf(*cfg.Sinks[0]), nil},
	}
	for _, s := range sections {
		var want []string
		for _, k := range tomlKeys(s.v) {
			if s.kind == nil || s.kind(k) {
				want = append(want, k)
			}
		}
		doc := map[string]string{}
		found := false
		for _, tb := range tables {
			if strings.HasPrefix(tb.heading, s.heading) {
				found = true
				for k, d := range tb.defaults {
					doc[k] = d
				}
			}
		}
		if !found {
			t.Errorf("docs/config.md has no key table under a heading %s", s.heading)
			continue
		}
		var got []string
		for k := range doc {
			got = append(got, k)
		}
		sort.Strings(got)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("docs/config.md, %s: documents keys %v; the parser decodes %v", s.heading, got, want)
		}
		// The defaults, where the table has a default column.
		rt := s.parsed.Type()
		for i := 0; i < rt.NumField(); i++ {
			k := rt.Field(i).Tag.Get("toml")
			d, ok := doc[k]
			if !ok || d == "" || d == "required" {
				continue
			}
			if w := docDefault(s.parsed.Field(i)); d != w {
				t.Errorf("docs/config.md, %s: %s defaults to %s; validate fills in %s", s.heading, k, d, w)
			}
		}
	}
}

// TestDocsQuoteThePackagedUnit: the numbers the documents quote from the
// packaged systemd unit are the unit's, and the default shutdown_timeout
// stays at least 1 s below its TimeoutStopSec, as the documents ask.
func TestDocsQuoteThePackagedUnit(t *testing.T) {
	unit, err := os.ReadFile("../packaging/edgeipc.service")
	if err != nil {
		t.Fatal(err)
	}
	val := func(key string) string {
		m := regexp.MustCompile(`(?m)^` + key + `=(\S+)$`).FindStringSubmatch(string(unit))
		if m == nil {
			t.Fatalf("packaging/edgeipc.service sets no %s", key)
		}
		return m[1]
	}
	stop, wd := val("TimeoutStopSec"), val("WatchdogSec")
	if val("RemoveIPC") != "no" || val("Type") != "notify" {
		t.Errorf("packaging/edgeipc.service: RemoveIPC=%s, Type=%s; the documents say no and notify", val("RemoveIPC"), val("Type"))
	}
	stopSec, err := strconv.Atoi(stop)
	if err != nil {
		t.Fatalf("TimeoutStopSec=%s: want whole seconds", stop)
	}
	if DefaultShutdownTimeout+time.Second > time.Duration(stopSec)*time.Second {
		t.Errorf("the default shutdown_timeout (%v) is not 1 s below the unit's TimeoutStopSec=%s", DefaultShutdownTimeout, stop)
	}
	text := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(strings.Fields(string(b)), " ")
	}
	for path, wants := range map[string][]string{
		"../docs/config.md":     {"(" + stop + " s in the packaged unit)"},
		"../docs/operations.md": {"(" + stop + " s in the packaged unit)"},
		"../docs/install.md":    {"`WatchdogSec=" + wd + "`", "waits up to " + stop + " s"},
	} {
		doc := text(path)
		for _, w := range wants {
			if !strings.Contains(doc, w) {
				t.Errorf("%s does not say %q (packaging/edgeipc.service: TimeoutStopSec=%s, WatchdogSec=%s)", path, w, stop, wd)
			}
		}
	}
}

// TestDocsTOMLExamplesParse: every configuration the documents show —
// ```toml blocks (also indented, in a list), and files written with <<'TOML' in shell blocks, in
// README.md, docs/ and the examples' and clients' READMEs — and the
// commented-out examples of runtime/default.toml (its lines that are TOML
// once uncommented) parse and validate, so that none of them shows a key
// or a value the runtime refuses. Group names become this process's gid:
// the documents name groups ("edgeipc") this machine need not have.
func TestDocsTOMLExamplesParse(t *testing.T) {
	files, _ := filepath.Glob("../docs/*.md")
	more, _ := filepath.Glob("../examples/*/README.md")
	files = append(files, append(more, "../README.md", "../clients/README.md")...)
	block := regexp.MustCompile("(?s)```toml\n(.*?)\n[ \t]*```|<<'TOML'\n(.*?)\nTOML\n")
	group := regexp.MustCompile(`(?m)^(\s*group\s*=\s*)"[^"]*"`)
	gid := strconv.Itoa(os.Getgid())
	type example struct{ where, text string }
	var examples []example
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range block.FindAllStringSubmatch(string(b), -1) {
			examples = append(examples, example{fmt.Sprintf("%s, example %d", strings.TrimPrefix(f, "../"), i+1), m[1] + m[2]})
		}
	}
	if len(examples) < 2 {
		t.Fatalf("found only %d configuration examples in the documents: the scan is broken", len(examples))
	}
	// runtime/default.toml with its commented-out examples switched on.
	tomlLine := regexp.MustCompile(`^# ?(\[\[?[a-z.]+\]\]?|[a-z_]+ = ("[^"]*"|\[.*\]|[0-9][0-9_]*|true|false)\s*(#.*)?)$`)
	var def strings.Builder
	on := 0
	for _, l := range strings.Split(string(DefaultTOML()), "\n") {
		if m := tomlLine.FindStringSubmatch(l); m != nil {
			l = m[1]
			on++
		}
		def.WriteString(l + "\n")
	}
	if on < 10 {
		t.Fatalf("switched on only %d commented-out lines of runtime/default.toml: the scan is broken", on)
	}
	examples = append(examples, example{"runtime/default.toml, its commented-out examples uncommented", def.String()})
	for _, e := range examples {
		text := group.ReplaceAllString(e.text, `${1}"`+gid+`"`)
		if _, err := Parse(e.where, []byte(text)); err != nil {
			t.Errorf("%v\n%s", err, text)
		}
	}
	t.Logf("%d configuration examples parsed", len(examples))
}

// TestConfigDocQuotesRealErrors: the error messages docs/config.md quotes
// as examples are the ones Parse gives for such a file. Each quote is
// compared with its line breaks and backquotes ignored, as the page
// wraps it.
func TestConfigDocQuotesRealErrors(t *testing.T) {
	b, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Join(strings.Fields(string(b)), " ")
	const src = "[rings.a]\n[[sources]]\nname = \"s\"\nkind = \"synthetic\"\nring = \"a\"\nrate_hz = 1\n"
	for _, c := range []struct{ toml, quote string }{
		{"[rings.camera]\nslots = 3\n", "rings.camera.slots: 3 is not a power of two from 2 to 16777216"},
		{src + "[[sources]]\nname = \"t\"\nkind = \"synthetic\"\nring = \"a\"\nrate_hz = 1\nsize_bytes = 4\n", "sources[1].size_bytes: unknown key (see docs/config.md)"},
		{"[rings.a]\nSLOTS = 4\n", "`SLOTS` is an unknown key"},
		{"[rings.cam]\nslot = 4\n", "rings.cam.slot: unknown key; did you mean slots or slot_payload?"},
		{"[rings.cam]\nrate_hz = 4\n", "rate_hz is a key of [[sources]]"},
		{"[rings.cam]\nslots = \"4\"\n", "rings.cam.slots: is a string; want an integer: write it as digits, without quotes or a decimal point"},
		{"[sources]\nname = \"s\"\n", "sources: is a table; want an array of tables: start each one with [[sources]]"},
	} {
		if !strings.Contains(doc, c.quote) {
			t.Errorf("docs/config.md does not quote %q", c.quote)
		}
		_, err := Parse("doc.toml", []byte(c.toml))
		want := strings.ReplaceAll(strings.TrimSuffix(c.quote, " is an unknown key"), "`", "")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("docs/config.md quotes %q; for\n%s\nParse says: %v", c.quote, c.toml, err)
		}
	}
}

// TestConfigDocZeroMeansDefault: an integer key that Parse reads as its
// default when it is 0 says "0 = the default" in its row of
// docs/config.md, and one that refuses 0 does not; `slots = 0`,
// `slot_payload = 0` and `max_skip = 0` ran the defaults while the page
// gave their ranges as from 2, from 1 and "> 0".
func TestConfigDocZeroMeansDefault(t *testing.T) {
	b, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	row := func(key string) string {
		for _, l := range strings.Split(string(b), "\n") {
			first, _, _ := strings.Cut(strings.TrimPrefix(l, "| "), " |")
			if strings.HasPrefix(l, "| `") && slices.Contains(strings.Split(first, ", "), "`"+key+"`") {
				return l
			}
		}
		t.Fatalf("docs/config.md has no row for %s", key)
		return ""
	}
	const (
		ring   = "[rings.a]\n"
		source = "[rings.a]\n[[sources]]\nname = \"e\"\nkind = \"exec\"\nring = \"a\"\ncommand = [\"true\"]\nframing = \"len32\"\n"
		sink   = "[rings.a]\n[[sinks]]\nkind = \"recorder\"\nring = \"a\"\npath = \"/run/edgeipc-doc-test/a.rec\"\n"
	)
	value := func(cfg *Config, prefix string) reflect.Value {
		switch prefix {
		case ring:
			return reflect.ValueOf(*cfg.Rings["a"])
		case source:
			return reflect.ValueOf(*cfg.Sources[0])
		}
		return reflect.ValueOf(*cfg.Sinks[0])
	}
	checked := 0
	for _, s := range []struct {
		prefix string
		v      any
	}{{ring, RingConfig{}}, {source, SourceConfig{}}, {sink, SinkConfig{}}} {
		base, err := Parse("base.toml", []byte(s.prefix))
		if err != nil {
			t.Fatal(err)
		}
		rt := reflect.TypeOf(s.v)
		for i := 0; i < rt.NumField(); i++ {
			f := rt.Field(i)
			key := f.Tag.Get("toml")
			if key == "" || key == "-" {
				continue
			}
			switch f.Type.Kind() {
			case reflect.Int, reflect.Int64, reflect.Uint32:
			default:
				continue
			}
			if f.Type == reflect.TypeOf(FileMode(0)) || f.Type == reflect.TypeOf(Duration(0)) {
				continue // modes and durations: the page says once for all that 0 means the default
			}
			def := value(base, s.prefix).Field(i).Interface()
			cfg, err := Parse("zero.toml", []byte(s.prefix+key+" = 0\n"))
			if err != nil && strings.Contains(err.Error(), "does not apply") {
				continue
			}
			checked++
			says := strings.Contains(row(key), "0 = the default")
			switch {
			case err != nil && says:
				t.Errorf("docs/config.md says 0 = the default for %s; Parse refuses it: %v", key, err)
			case err == nil && !reflect.ValueOf(def).IsZero() && value(cfg, s.prefix).Field(i).Interface() == def && !says:
				t.Errorf("Parse reads %s = 0 as the default, %v; docs/config.md's row does not say 0 = the default:\n%s", key, def, row(key))
			}
		}
	}
	if checked < 5 {
		t.Fatalf("checked %d integer keys: the scan is broken", checked)
	}
}
