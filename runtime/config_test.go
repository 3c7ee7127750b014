//go:build linux

package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/shm"
)

func TestDefaultConfig(t *testing.T) {
	c := Default()
	if len(c.Rings) != 2 || c.Rings["imu"].SlotPayload != 64 || c.Rings["camera"].SlotPayload != 640*480 {
		t.Fatalf("unexpected default rings: %+v", c.Rings)
	}
	if len(c.Sources) != 2 || c.Sources[0].RateHz != 1000 || c.Sources[1].RateHz != 30 {
		t.Fatalf("unexpected default sources")
	}
	if c.Runtime.StatsInterval.D() <= 0 || c.Runtime.ShutdownTimeout.D() <= 0 {
		t.Fatal("default intervals not set")
	}
}

func TestConfigErrorsNameFileLineField(t *testing.T) {
	cases := []struct {
		name, text string
		want       []string // substrings of the error
	}{
		{"syntax", "[rings.a]\nslots = = 4\n", []string{"bad.toml:2:"}},
		{"unknown key", "[rings.a]\nslots = 4\nslotz = 8\n", []string{"bad.toml:3:", "rings.a.slotz", "unknown key"}},
		{"unknown source key", "[rings.a]\n\n[[sources]]\nname = \"s\"\nkind = \"synthetic\"\nring = \"a\"\nrate_hz = 1\nsize_bytes = 3\n", []string{"bad.toml:8:", "sources[0].size_bytes", "unknown key"}},
		{"bad slots", "[rings.a]\nslot_payload = 64\nslots = 3\n", []string{"bad.toml:3:", "rings.a.slots", "power of two"}},
		{"bad policy", "[rings.a]\npolicy = \"drop\"\n", []string{"bad.toml:2:", "rings.a.policy"}},
		{"second source bad", "[rings.a]\n[rings.b]\n[[sources]]\nname = \"x\"\nkind = \"synthetic\"\nring = \"a\"\nrate_hz = 10\n[[sources]]\nname = \"y\"\nkind = \"exec\"\nring = \"b\"\n", []string{"bad.toml:8:", "sources[1] (y).command", "missing"}},
		{"unknown ring", "[[sources]]\nname = \"x\"\nkind = \"synthetic\"\nring = \"nope\"\nrate_hz = 1\n", []string{"bad.toml:4:", "sources[0] (x).ring", "no ring \"nope\""}},
		{"bad duration", "[runtime]\nstats_interval = \"soon\"\n", []string{"bad.toml:2:", "stats_interval"}},
		{"NUL in command", "[rings.a]\n[[sources]]\nname = \"x\"\nkind = \"exec\"\nring = \"a\"\ncommand = [\"/bin/echo\", \"a\\u0000b\"]\n", []string{"bad.toml:6:", "sources[0] (x).command", "NUL byte"}},
		{"NUL in name", "[rings.a]\n[[sources]]\nname = \"x\\u0000\"\nkind = \"exec\"\nring = \"a\"\ncommand = [\"/bin/echo\"]\n", []string{"bad.toml:3:", ".name", "NUL byte"}},
		// Names go into log lines, ctl tables and JSON, and are typed in
		// `ctl start NAME`: a control or invisible character in one was
		// accepted, and showed escaped (or not at all).
		{"newline in source name", "[rings.a]\n[[sources]]\nname = \"x\\nFORGED\"\nkind = \"synthetic\"\nring = \"a\"\nrate_hz = 1\n", []string{`bad.toml:3: sources[0] (x\nFORGED).name: "x\nFORGED" contains a control character ('\n', at byte 1)`, "must be printable text"}},
		{"tab in source name", "[rings.a]\n[[sources]]\nname = \"a\\tb\"\nkind = \"synthetic\"\nring = \"a\"\nrate_hz = 1\n", []string{"bad.toml:3:", `contains a control character ('\t', at byte 1)`}},
		{"NUL in sink name", "[rings.a]\n[[sinks]]\nkind = \"stats\"\nring = \"a\"\nname = \"s\\u0000\"\n", []string{"bad.toml:5:", `sinks[0] (s\x00).name: "s\x00" contains a NUL byte ('\x00', at byte 1)`}},
		{"escape in sink name", "[rings.a]\n[[sinks]]\nname = \"\\u001b[2Jrec\"\nkind = \"recorder\"\nring = \"a\"\npath = \"/tmp/a.rec\"\n", []string{"bad.toml:3:", `sinks[0] (\x1b[2Jrec).name: "\x1b[2Jrec" contains a control character ('\x1b', at byte 0)`}},
		{"C1 control in sink name", "[rings.a]\n[[sinks]]\nname = \"r\\u0085\"\nkind = \"stats\"\nring = \"a\"\n", []string{"bad.toml:3:", `contains a control character ('\u0085', at byte 1)`}},
		{"bidi override in source name", "[rings.a]\n[[sources]]\nname = \"cam\\u202e0\"\nkind = \"synthetic\"\nring = \"a\"\nrate_hz = 1\n", []string{"bad.toml:3:", `contains a character that does not print ('\u202e', at byte 3)`}},
		{"runtime's env", "[rings.a]\n[[sources]]\nname = \"x\"\nkind = \"exec\"\nring = \"a\"\ncommand = [\"/bin/echo\"]\nenv = [\"A=1\", \"EDGEIPC_RING=b\"]\n", []string{"bad.toml:7:", "sources[0] (x).env", "the runtime sets EDGEIPC_RING"}},
		{"env without a name", "[rings.a]\n[[sources]]\nname = \"x\"\nkind = \"exec\"\nring = \"a\"\ncommand = [\"/bin/echo\"]\nenv = [\"=1\"]\n", []string{"bad.toml:7:", "sources[0] (x).env", "not KEY=VALUE"}},
		{"NUL in env", "[rings.a]\n[[sources]]\nname = \"x\"\nkind = \"exec\"\nring = \"a\"\ncommand = [\"/bin/echo\"]\nenv = [\"A=\\u0000\"]\n", []string{"bad.toml:7:", "sources[0] (x).env", "NUL byte"}},
		{"NUL in dir", "[rings.a]\n[[sources]]\nname = \"x\"\nkind = \"exec\"\nring = \"a\"\ncommand = [\"/bin/echo\"]\ndir = \"/tmp\\u0000\"\n", []string{"bad.toml:7:", "sources[0] (x).dir", "NUL byte"}},
		{"NUL in fifo path", "[rings.a]\n[[sources]]\nname = \"x\"\nkind = \"fifo\"\nring = \"a\"\npath = \"/tmp/a\\u0000b\"\n", []string{"bad.toml:6:", "sources[0] (x).path", "NUL byte"}},
		{"long source name", "[rings.a]\n[[sources]]\nname = \"" + strings.Repeat("n", MaxNameLen+1) + "\"\nkind = \"synthetic\"\nring = \"a\"\nrate_hz = 1\n", []string{"bad.toml:3:", ".name", "201 bytes long: at most 200"}},
		{"long sink name", "[rings.a]\n[[sinks]]\nname = \"" + strings.Repeat("n", MaxNameLen+1) + "\"\nkind = \"recorder\"\nring = \"a\"\npath = \"/tmp/a.rec\"\n", []string{"bad.toml:3:", ".name", "201 bytes long: at most 200"}},
		{"NUL in recorder path", "[rings.a]\n[[sinks]]\nkind = \"recorder\"\nring = \"a\"\npath = \"/tmp/a\\u0000b\"\n", []string{"bad.toml:5:", "path", "NUL byte"}},
		{"NUL in shm_dir", "[runtime]\nshm_dir = \"/dev/shm\\u0000\"\n", []string{"bad.toml:2:", "runtime.shm_dir", "NUL byte"}},
		// A value of the wrong type: the decoder's own message had no
		// file:line prefix and spoke of Go types ("destination has type
		// slice").
		{"string for an integer", "[rings.a]\nslots = \"256\"\n", []string{"bad.toml:2: rings.a.slots: is a string; want an integer: write it as digits, without quotes"}},
		{"string for a boolean", "[control]\nenabled = \"false\"\n", []string{"bad.toml:2: control.enabled: is a string; want true or false"}},
		{"string for a command", "[rings.a]\n[rings.b]\n[[sources]]\nname = \"x\"\nkind = \"exec\"\nring = \"a\"\ncommand = [\"/bin/true\"]\n[[sources]]\nname = \"y\"\nkind = \"exec\"\nring = \"b\"\ncommand = \"/bin/true\"\n", []string{"bad.toml:12: sources[1].command: is a string; want an array of strings"}},
		{"[sources.NAME]", "[rings.a]\n[sources.x]\nkind = \"synthetic\"\n", []string{"bad.toml:2: sources: is a table; want an array of tables: start each one with [[sources]]"}},
		// An element that is not a table: the hint said to write
		// [sources], with one bracket, which is no fix.
		{"sources = [1]", "sources = [1, 2]\n[rings.a]\n", []string{"bad.toml:1: sources: is an integer; want an array of tables: start each one with [[sources]] (two brackets)"}},
		{"sinks = [[…]]", "sinks = [[\"a\"]]\n[rings.a]\n", []string{"bad.toml:1: sinks: is an array; want an array of tables: start each one with [[sinks]] (two brackets)"}},
		{"[[control]]", "[[control]]\nenabled = true\n", []string{"bad.toml:1: control: is an array of tables; want a table: write [control]"}},
		{"type out of range", "[rings.a]\n[[sources]]\nname = \"x\"\nkind = \"synthetic\"\nring = \"a\"\nrate_hz = 1\ntype = -1\n", []string{"bad.toml:7: sources[0].type: -1 is out of range"}},
		// Unknown keys: a typo is named, and so is a key of another table.
		{"typo", "[runtime]\nstat_interval = \"1s\"\n", []string{"bad.toml:2: runtime.stat_interval: unknown key; did you mean stats_interval?"}},
		{"short for", "[rings.a]\n[[sources]]\nname = \"x\"\nkind = \"synthetic\"\nring = \"a\"\nrate_hz = 1\n[[sources]]\nname = \"y\"\nkind = \"synthetic\"\nring = \"a\"\nrate = 1\n", []string{"bad.toml:11: sources[1].rate: unknown key; did you mean rate_hz?"}},
		{"key of another table", "[rings.a]\nrate_hz = 3\n", []string{"bad.toml:2: rings.a.rate_hz: unknown key; rate_hz is a key of [[sources]]"}},
		{"table name typo", "[ring.a]\nslots = 4\n", []string{"bad.toml:1: ring.a: unknown key; did you mean rings?"}},
		{"[[rings]]", "[[rings]]\nname = \"a\"\n", []string{"bad.toml:1: rings.name: unknown key; each ring is a table named after it: [rings.NAME]"}},
		// The decoder left the rings map empty, without an error, for any
		// value that is not a table: the file ran (or a reload applied it)
		// as one without rings.
		{"rings = array", "rings = [\"imu\"]\n[runtime]\n", []string{"bad.toml:1: rings: is an array; want a table of rings: write each ring as [rings.NAME] (one bracket)"}},
		{"rings = empty array", "rings = []\n[runtime]\n", []string{"bad.toml:1: rings: is an array; want a table of rings"}},
		{"rings = integer", "# rings\nrings = 3\n", []string{"bad.toml:2: rings: is an integer; want a table of rings"}},
		{"empty [[rings]]", "[runtime]\n[[rings]]\n", []string{"bad.toml:2: rings: is an array of tables; want a table of rings"}},
		// mq_open refuses these when the runtime starts; --check passed them.
		{"queue with a slash", "[control]\nqueue = \"/edgeipc.ctl\"\n", []string{"bad.toml:2: control.queue: \"/edgeipc.ctl\"", "without the leading slash"}},
		{"queue ..", "[control]\nenabled = false\nqueue = \"..\"\n", []string{"bad.toml:3: control.queue: \"..\""}},
		{"long queue", "[control]\nqueue = \"" + strings.Repeat("q", 256) + "\"\n", []string{"bad.toml:2: control.queue:", "longer than 255 bytes"}},
		// The decoder took SLOTS for slots; with both, which one applied
		// changed from run to run.
		{"key in capitals", "[rings.a]\nslots = 4\nSLOTS = 1024\n", []string{"bad.toml:3: rings.a.SLOTS: unknown key: keys are lowercase; write slots"}},
		{"source key in capitals", "[rings.a]\n[[sources]]\nname = \"x\"\nkind = \"synthetic\"\nring = \"a\"\nrate_hz = 1\nCommand = [\"/bin/true\"]\n", []string{"bad.toml:7: sources[0].Command: unknown key: keys are lowercase; write command"}},
		{"table in capitals", "[Runtime]\nstats_interval = \"0s\"\n", []string{"bad.toml:1: Runtime: unknown key: keys are lowercase; write runtime"}},
		// A byte order mark (Notepad writes one): the decoder reads over
		// it, and the errors of the first table's keys had no line.
		{"UTF-8 BOM", "\xef\xbb\xbf[rings.a]\nslots = 3\nslotz = 4\n", []string{"bad.toml:2: rings.a.slots: 3 is not a power of two", "bad.toml:3: rings.a.slotz: unknown key"}},
		{"UTF-16 BOM", "\xff\xfe[rings.a]\nslots = 3\n", []string{"bad.toml:2: rings.a.slots: 3 is not a power of two"}},
		// Any spelling of a key finds its line, not only bare and
		// double-quoted ones.
		{"literal-quoted ring name", "[runtime]\n[rings.'cam']\nslots = 3\n", []string{"bad.toml:3: rings.cam.slots: 3 is not a power of two"}},
		{"spaced ring name", "[runtime]\n[ rings . \"cam\" ]\nslots = 3\n", []string{"bad.toml:3: rings.cam.slots: 3 is not a power of two"}},
		{"quoted key", "[rings.cam]\n\n'slots' = 3\n", []string{"bad.toml:3: rings.cam.slots: 3 is not a power of two"}},
		{"spaced array of tables", "[rings.a]\n[[ sinks ]]\nkind = 'recorder'\nring = 'a'\n\"path\" = 'x'\n", []string{"bad.toml:5: sinks[0] (recorder-0).path: \"x\" must be an absolute path"}},
		{"two writers", "[rings.a]\n[[sources]]\nname = \"x\"\nkind = \"synthetic\"\nring = \"a\"\nrate_hz = 1\n[[sources]]\nname = \"y\"\nkind = \"synthetic\"\nring = \"a\"\nrate_hz = 1\n", []string{"bad.toml:10:", "one writer"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "bad.toml")
			os.WriteFile(p, []byte(c.text), 0o600)
			_, err := Load(p)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// A config whose second ring is invalid creates no segment at all, and
// neither does one whose FIFO path is unusable or whose control queue or
// ring names a group that cannot be used.
func TestNothingHalfStarted(t *testing.T) {
	e := newEnv(t)
	regular := filepath.Join(e.dir, "plain")
	os.WriteFile(regular, nil, 0o600)
	for _, text := range []string{
		"[rings.first]\nslots = 8\n[rings.second]\nslots = 7\n",
		"[rings.first]\n[rings.second]\n[[sources]]\nname = \"f\"\nkind = \"fifo\"\nring = \"second\"\npath = \"" + regular + "\"\n",
		// Refused by the control server or at ring creation, once rings existed.
		"[control]\nmode = \"0600\"\ngroup = \"root\"\n[rings.first]\n",
		"[rings.first]\n[rings.second]\ngroup = \"no-such-group-edgeipc\"\n",
	} {
		p := e.writeConfig(t, "c.toml", text)
		cfg, err := Load(p)
		if err == nil {
			rt, _ := New(cfg, Options{IgnoreSignals: true})
			err = rt.Run(t.Context())
			t.Fatalf("invalid config accepted (run: %v)", err)
		}
		segs, err := shm.ListSegments(e.sopts())
		if err != nil {
			t.Fatal(err)
		}
		if len(segs) != 0 {
			t.Fatalf("segments created by an invalid config: %+v", segs)
		}
	}
}

func TestFIFOPathRefused(t *testing.T) {
	e := newEnv(t)
	regular := filepath.Join(e.dir, "regular")
	os.WriteFile(regular, []byte("x"), 0o600)
	link := filepath.Join(e.dir, "link")
	os.Symlink(filepath.Join(e.dir, "target.fifo"), link)
	for path, want := range map[string]string{regular: "is a regular file, not a FIFO", link: "symlink"} {
		text := "[rings.r]\n[[sources]]\nname = \"f\"\nkind = \"fifo\"\nring = \"r\"\npath = \"" + path + "\"\n"
		_, err := Parse("f.toml", []byte(text))
		var ce ConfigErrors
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "f.toml:6:") {
			t.Errorf("%s: got %v, want a config error at f.toml:6 saying %q", path, err, want)
		}
		// And openFIFO (the check at start time, e.g. after a race) agrees.
		if r, dummy, _, err := openFIFO(path, 0, ""); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("openFIFO(%s): %v", path, err)
			if err == nil {
				r.Close()
				unix.Close(dummy)
			}
		}
	}
	if b, _ := os.ReadFile(regular); string(b) != "x" {
		t.Fatal("the regular file was modified")
	}
}

// Values that used to be accepted without a word (and then misbehaved or
// failed only at run time, after rings were created) are rejected by the
// check, naming the line, the key and the allowed values.
func TestConfigRejectsOutOfRange(t *testing.T) {
	exec := "[rings.a]\n[[sources]]\nname = \"x\"\nkind = \"exec\"\nring = \"a\"\ncommand = [\"true\"]\n"
	fifo := "[rings.a]\n[[sources]]\nname = \"f\"\nkind = \"fifo\"\nring = \"a\"\npath = \"/run/edgeipc-test/in.fifo\"\n"
	cases := []struct {
		name, text string
		want       []string
	}{
		{"control 0600 with group", "[control]\nmode = \"0600\"\ngroup = \"root\"\n", []string{"bad.toml:2:", "control.mode", `"0600" with group "root" gives the group no access`, `use "0620"`}},
		{"control unknown group", "[control]\ngroup = \"no-such-group-edgeipc\"\n", []string{"bad.toml:2:", "control.group", `"no-such-group-edgeipc": no such group`}},
		{"ring 0600 with group", "[rings.a]\nmode = 0o600\ngroup = \"0\"\n", []string{"bad.toml:2:", "rings.a.mode", "gives the group no access", `use "0660"`}},
		// Readers write their cursor into the segment: a group that may
		// only write cannot read the ring at all.
		{"ring 0620", "[rings.a]\nmode = \"0620\"\ngroup = \"0\"\n", []string{"bad.toml:2:", "rings.a.mode", `"0620" gives the group no read access`, `use "0660"`}},
		{"ring 0640", "[rings.a]\nmode = \"0640\"\n", []string{"bad.toml:2:", "rings.a.mode", `0640: only "0600" (owner only) or "0660"`}},
		{"fifo 0640", fifo + "mode = \"0640\"\n", []string{"bad.toml:7:", "sources[0] (f).mode", `0640: only "0600" (owner only), "0620" (the group may write) or "0660"`}},
		{"control 0640", "[control]\nmode = 0o640\n", []string{"bad.toml:2:", "control.mode", `"0620" (the group may write)`}},
		{"ring unknown group", "[rings.a]\ngroup = \"no-such-group-edgeipc\"\n", []string{"bad.toml:2:", "rings.a.group", "no such group"}},
		{"ring negative gid", "[rings.a]\ngroup = \"-1\"\n", []string{"bad.toml:2:", "rings.a.group", "no such group"}},
		{"ring missing gid", "[rings.a]\ngroup = \"2000000001\"\n", []string{"bad.toml:2:", "rings.a.group", "no group has id 2000000001"}},
		{"fifo 0600 with group", fifo + "mode = \"0600\"\ngroup = \"0\"\n", []string{"bad.toml:7:", "sources[0] (f).mode", "gives the group no access"}},
		{"fifo unknown group", fifo + "group = \"no-such-group-edgeipc\"\n", []string{"bad.toml:7:", "sources[0] (f).group", "no such group"}},
		{"mode beyond 32 bits", "[rings.a]\nmode = 4294967680\n", []string{"bad.toml:2:", "rings.a.mode", "bad mode 4294967680", `want "0600", "0620" or "0660"`}},
		{"mode string beyond 07777", "[rings.a]\nmode = \"0o40000000600\"\n", []string{"bad.toml:2:", "rings.a.mode", "bad mode"}},
		// TOML has no leading-zero octal: 600 is decimal, and was refused
		// as 01130, a mode nobody wrote.
		{"decimal 600", "[rings.a]\nmode = 600\n", []string{"bad.toml:2:", "rings.a.mode", `bad mode 600: TOML reads a number without 0o as decimal (600 is 01130): write mode = "0600" (a string) or 0o600`}},
		{"decimal 660 on a fifo", fifo + "mode = 660\n", []string{"bad.toml:7:", ".mode", `write mode = "0660" (a string) or 0o660`}},
		{"negative mode", "[control]\nmode = -384\n", []string{"bad.toml:2:", "control.mode", "bad mode -384"}},
		{"negative stop_timeout", exec + "stop_timeout = \"-5s\"\n", []string{"bad.toml:7:", "sources[0] (x).stop_timeout", "-5s: must be positive"}},
		{"stop_timeout over a minute", exec + "stop_timeout = \"2m\"\n", []string{"bad.toml:7:", "sources[0] (x).stop_timeout", "at most 1m0s"}},
		{"negative log_rate", exec + "log_rate = -1\n", []string{"bad.toml:7:", "sources[0] (x).log_rate", "-1: must be 0 (no bound) or a positive number"}},
		{"log_rate nan", exec + "log_rate = nan\n", []string{"bad.toml:7:", "sources[0] (x).log_rate", "NaN: must be 0"}},
		{"negative backoff_reset", exec + "backoff_reset = \"-1s\"\n", []string{"bad.toml:7:", "sources[0] (x).backoff_reset", "-1s: must be positive"}},
		{"negative backoff_min", exec + "backoff_min = \"-1s\"\n", []string{"bad.toml:7:", "sources[0] (x).backoff_min", "-1s: must be positive"}},
		{"backoff_max below min", exec + "backoff_min = \"2s\"\nbackoff_max = \"1s\"\n", []string{"bad.toml:8:", "sources[0] (x).backoff_max", "1s: must be ≥ backoff_min (2s)"}},
		// backoff_max was not written: the error was at the table's line,
		// about a key the file does not have.
		{"backoff_min above the default max", exec + "backoff_min = \"1m\"\n", []string{"bad.toml:7:", "sources[0] (x).backoff_min", "1m0s: more than backoff_max (default 30s, not set here)", "set backoff_max"}},
		// A child that writes the ring itself: the keys that shape the
		// runtime's frames did nothing.
		{"framing with write = child", exec + "write = \"child\"\nframing = \"len32\"\n", []string{"bad.toml:8:", "sources[0] (x).framing", `does nothing with write = "child"`}},
		{"type with write = child", exec + "type = 7\nwrite = \"child\"\n", []string{"bad.toml:7:", "sources[0] (x).type", `does nothing with write = "child"`}},
		{"flags with write = child", exec + "write = \"child\"\nflags = 1\n", []string{"bad.toml:8:", "sources[0] (x).flags", `does nothing with write = "child"`}},
		{"max_skip with write = child", exec + "write = \"child\"\nmax_skip = 4096\n", []string{"bad.toml:8:", "sources[0] (x).max_skip", `does nothing with write = "child"`}},
		// A child never restarted has no restart delay: they did nothing.
		{"backoff_min with restart = never", exec + "restart = \"never\"\nbackoff_min = \"1s\"\n", []string{"bad.toml:8:", "sources[0] (x).backoff_min", `does nothing with restart = "never"`}},
		{"backoff_max with restart = never", exec + "backoff_max = \"1m\"\nrestart = \"never\"\n", []string{"bad.toml:7:", "sources[0] (x).backoff_max", `does nothing with restart = "never"`}},
		{"backoff_reset with restart = never", exec + "restart = \"never\"\nbackoff_reset = \"0s\"\n", []string{"bad.toml:8:", "sources[0] (x).backoff_reset", `does nothing with restart = "never"`}},
		{"negative max_skip", exec + "framing = \"len32\"\nmax_skip = -7\n", []string{"bad.toml:8:", "sources[0] (x).max_skip", "-7: must be positive"}},
		{"NaN rate", "[rings.a]\n[[sources]]\nname = \"s\"\nkind = \"synthetic\"\nring = \"a\"\nrate_hz = nan\n", []string{"bad.toml:6:", "rate_hz", "NaN"}},
		// Logged tens of thousands of lines a second.
		{"stats_interval too short", "[runtime]\nstats_interval = \"1ns\"\n", []string{"bad.toml:2:", "runtime.stats_interval", `1ns: at least 100ms`, `"0s" for none`}},
		{"stats_interval just too short", "[runtime]\nstats_interval = \"99ms\"\n", []string{"bad.toml:2:", "runtime.stats_interval", `99ms: at least 100ms`}},
		// Every key in range, the ring as a whole too large: the error
		// said only "ring of 1048577.0 GiB is too large".
		{"ring too large", "[rings.a]\nslots = 16777216\nslot_payload = 67108864\n", []string{"bad.toml:1:", "rings.a:", "(16777216 slots of 67108864 bytes): lower slots or slot_payload"}},
		{"relative shm_dir", "[runtime]\nshm_dir = \"shm\"\n", []string{"bad.toml:2:", "runtime.shm_dir", `"shm" must be an absolute path`}},
		{"relative recorder path", "[rings.a]\n[[sinks]]\nkind = \"recorder\"\nring = \"a\"\npath = \"rel.rec\"\n", []string{"bad.toml:5:", "sinks[0] (recorder-0).path", `"rel.rec" must be an absolute path`}},
		{"sink named like a ring's stats reader", "[rings.a]\n[rings.b]\n[[sinks]]\nname = \"stats:a\"\nkind = \"recorder\"\nring = \"b\"\npath = \"/tmp/b.rec\"\n", []string{"bad.toml:4:", "sinks[0] (stats:a).name", `"stats:a" is the name of ring "a"'s stats reader`}},
		{"exec key on a synthetic source", "[rings.a]\n[[sources]]\nname = \"s\"\nkind = \"synthetic\"\nring = \"a\"\nrate_hz = 10\ncommand = [\"true\"]\n", []string{"bad.toml:7:", "sources[0] (s).command", "does not apply to synthetic sources (only to exec sources)"}},
		{"fifo key on an exec source", exec + "path = \"/tmp/x.fifo\"\n", []string{"bad.toml:7:", "sources[0] (x).path", "does not apply to exec sources (only to fifo sources)"}},
		{"framing on a synthetic source", "[rings.a]\n[[sources]]\nname = \"s\"\nkind = \"synthetic\"\nring = \"a\"\nrate_hz = 10\nframing = \"len32\"\n", []string{"bad.toml:7:", "sources[0] (s).framing", "only to exec and fifo sources"}},
		// A recorder's keys on a stats sink were ignored: the sink meant
		// to record ran as a stats reader, and nothing was recorded.
		{"path on a stats sink", "[rings.a]\n[[sinks]]\nname = \"log\"\nkind = \"stats\"\nring = \"a\"\npath = \"/var/lib/edgeipc/a.rec\"\n", []string{"bad.toml:6:", "sinks[0] (log).path", "does not apply to stats sinks (only to recorder sinks)", `kind = "recorder"`}},
		{"max_bytes on a stats sink", "[rings.a]\n[rings.b]\n[[sinks]]\nkind = \"recorder\"\nring = \"b\"\npath = \"/tmp/b.rec\"\nmax_bytes = 10\n[[sinks]]\nkind = \"stats\"\nring = \"a\"\nmax_bytes = 100\n", []string{"bad.toml:11:", "sinks[1] (stats-1).max_bytes", "does not apply to stats sinks"}},
		{"path on a stats sink, inline", "sinks = [{kind = \"stats\", ring = \"a\", path = \"/tmp/a.rec\"}]\n[rings.a]\n", []string{"sinks[0] (stats-0).path", "does not apply to stats sinks"}},
		{"two stats sinks on one ring", "[rings.a]\n[[sinks]]\nname = \"s1\"\nkind = \"stats\"\nring = \"a\"\n[[sinks]]\nname = \"s2\"\nkind = \"stats\"\nring = \"a\"\n", []string{"bad.toml:9:", "sinks[1] (s2).ring", `ring "a" already has a stats sink ("s1")`}},
		{"same recorder file written two ways", "[rings.a]\n[rings.b]\n[[sinks]]\nname = \"r1\"\nkind = \"recorder\"\nring = \"a\"\npath = \"/var/lib/edgeipc/all.rec\"\n[[sinks]]\nname = \"r2\"\nkind = \"recorder\"\nring = \"b\"\npath = \"/var/lib/edgeipc/./all.rec\"\n", []string{"bad.toml:12:", "sinks[1] (r2).path", `"/var/lib/edgeipc/all.rec" is also recorded to by sink "r1"`}},
		// The recorder (sinks start first) made a regular file at the
		// path, and the fifo source then failed on it.
		{"recorder on a FIFO source's path", "[rings.a]\n[rings.b]\n[[sources]]\nname = \"in\"\nkind = \"fifo\"\nring = \"a\"\npath = \"/run/edgeipc-test/x.fifo\"\n[[sinks]]\nname = \"rec\"\nkind = \"recorder\"\nring = \"b\"\npath = \"/run/edgeipc-test/./x.fifo\"\n", []string{"bad.toml:12:", "sinks[0] (rec).path", `"/run/edgeipc-test/x.fifo" is the FIFO of source "in"`}},
		{"same FIFO written two ways", "[rings.a]\n[rings.b]\n[[sources]]\nname = \"f1\"\nkind = \"fifo\"\nring = \"a\"\npath = \"/run/edgeipc-test/x.fifo\"\n[[sources]]\nname = \"f2\"\nkind = \"fifo\"\nring = \"b\"\npath = \"/run/edgeipc-test/.//x.fifo\"\n", []string{"bad.toml:12:", "sources[1] (f2).path", `"/run/edgeipc-test/x.fifo" is also used by source "f1"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("bad.toml", []byte(c.text))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	// The accepted forms: a group with 0660 or with no mode, a numeric gid,
	// a FIFO path that is cleaned; with a group and no mode, the control
	// queue and a FIFO are 0620 (the group writes and cannot read what
	// the others wrote), a ring 0660 (its readers write their cursors).
	ok := "[control]\ngroup = \"0\"\n[rings.a]\ngroup = \"0\"\nmode = \"0660\"\n[rings.b]\ngroup = \"0\"\n[[sources]]\nname = \"f\"\nkind = \"fifo\"\nring = \"b\"\npath = \"/run/edgeipc-test/./in.fifo\"\ngroup = \"0\"\n"
	cfg, err := Parse("ok.toml", []byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.Sources[0].Path; p != "/run/edgeipc-test/in.fifo" {
		t.Fatalf("FIFO path %q not cleaned", p)
	}
	if c, f, r := cfg.Control.Mode, cfg.Sources[0].Mode, cfg.Rings["b"].Mode; c != 0o620 || f != 0o620 || r != 0o660 {
		t.Fatalf("with a group and no mode: control %#o, fifo %#o, ring %#o; want 0620, 0620, 0660", uint32(c), uint32(f), uint32(r))
	}
	// 0660 is still taken for the control queue and a FIFO (the group may
	// read as well), and 0o620 is not mistaken for a decimal 400.
	for _, mode := range []string{`"0660"`, `"0620"`, "0o620", "0o660"} {
		text := "[control]\ngroup = \"0\"\nmode = " + mode + "\n[rings.b]\n[[sources]]\nname = \"f\"\nkind = \"fifo\"\nring = \"b\"\npath = \"/run/edgeipc-test/in.fifo\"\ngroup = \"0\"\nmode = " + mode + "\n"
		if _, err := Parse("ok.toml", []byte(text)); err != nil {
			t.Errorf("mode = %s: %v", mode, err)
		}
	}
	// Each sink's keys are its own: a recorder's path and max_bytes do not
	// count against the stats sink that follows it.
	if _, err := Parse("ok.toml", []byte("[rings.a]\n[[sinks]]\nkind = \"recorder\"\nring = \"a\"\npath = \"/tmp/a.rec\"\nmax_bytes = 10\n[[sinks]]\nkind = \"stats\"\nring = \"a\"\n")); err != nil {
		t.Fatal(err)
	}
	// A ring's explicit stats sink may take its stats reader's name.
	if _, err := Parse("ok.toml", []byte("[rings.a]\n[[sinks]]\nname = \"stats:a\"\nkind = \"stats\"\nring = \"a\"\n")); err != nil {
		t.Fatal(err)
	}
}

// TestControlGroupZero: [control] group = "root" is refused by the check of
// a runtime that does not run as group root (the queue could not be given
// gid 0, see control.NewServer), and accepted by one that does.
func TestControlGroupZero(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch the effective group")
	}
	text := "[control]\ngroup = \"0\"\n[rings.r]\n"
	if _, err := Parse("c.toml", []byte(text)); err != nil {
		t.Fatalf("as group root: %v", err)
	}
	if err := syscall.Setegid(65534); err != nil {
		t.Fatal(err)
	}
	_, err := Parse("c.toml", []byte(text))
	if rerr := syscall.Setegid(0); rerr != nil {
		t.Fatal(rerr)
	}
	if err == nil || !strings.Contains(err.Error(), "c.toml:2:") || !strings.Contains(err.Error(), "is gid 0") {
		t.Fatalf("as gid 65534: %v; want a config error at c.toml:2 saying the group is gid 0", err)
	}
}

// A number too large for an int field is refused on every system: on a
// 32-bit one (GOARCH=arm) the TOML decoder cut it to 32 bits without a
// word, and slots = 4294967298 made a 2-slot ring, slot_payload =
// 4294967360 a 64-byte payload, and slots = 4294967296 the default 256.
func TestConfigIntOverflow(t *testing.T) {
	for _, tc := range []struct{ text, field, value string }{
		{"[rings.a]\nslots = 4294967298\n", "bad.toml:2: rings.a.slots", "4294967298"},
		{"[rings.a]\nslots = 4294967296\n", "bad.toml:2: rings.a.slots", "4294967296"},
		{"[rings.a]\nslot_payload = 4294967360\n", "bad.toml:2: rings.a.slot_payload", "4294967360"},
		{"[rings.a]\n[[sources]]\nname = \"x\"\nkind = \"synthetic\"\nring = \"a\"\nrate_hz = 1\nsize = 4294967304\n", "bad.toml:7: sources[0]", "4294967304"},
	} {
		_, err := Parse("bad.toml", []byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.field) || !strings.Contains(err.Error(), tc.value) {
			t.Errorf("%q: %v; want an error at %s naming %s", tc.text, err, tc.field, tc.value)
		}
	}
	// In the range of an int64 but not of a 32-bit int: valid where an int
	// holds it, refused (not cut) where it does not.
	c, err := Parse("big.toml", []byte("[rings.a]\n[[sources]]\nname = \"x\"\nkind = \"fifo\"\nring = \"a\"\npath = \"/run/edgeipc-test/x.fifo\"\nmax_skip = 3000000000\nframing = \"len32\"\n"))
	switch {
	case strconv.IntSize == 64 && (err != nil || int64(c.Sources[0].MaxSkip) != 3000000000):
		t.Errorf("max_skip = 3000000000 on a 64-bit system: %v", err)
	case strconv.IntSize == 32 && (err == nil || !strings.Contains(err.Error(), "big.toml:7: sources[0].max_skip: 3000000000 is out of range")):
		t.Errorf("max_skip = 3000000000 on a 32-bit system: %v; want it refused at its line", err)
	}
	// Inline tables too.
	if _, err := Parse("bad.toml", []byte("sources = [{name = \"x\", kind = \"synthetic\", ring = \"a\", rate_hz = 1, size = 4294967304}]\n[rings.a]\n")); err == nil || !strings.Contains(err.Error(), "4294967304") {
		t.Errorf("size = 4294967304 in an inline table: %v", err)
	}
}

// Options.StatsInterval has the floor of stats_interval: New refuses a
// shorter one, which flooded the log.
func TestOptionsStatsIntervalFloor(t *testing.T) {
	if _, err := New(Default(), Options{StatsInterval: MinStatsInterval - 1}); err == nil || !strings.Contains(err.Error(), "at least 100ms") {
		t.Fatalf("New with StatsInterval %v: %v; want it refused", MinStatsInterval-1, err)
	}
	if _, err := New(Default(), Options{StatsInterval: MinStatsInterval}); err != nil {
		t.Fatal(err)
	}
}

// New refuses the environment variables that --check refuses
// (Config.CheckEnv): a relative $EDGEIPC_SHM_DIR made the rings relative
// to the runtime's working directory, and exec children, which run in
// their own, were told that path.
func TestNewChecksEnvironment(t *testing.T) {
	t.Setenv("EDGEIPC_SHM_DIR", "shm")
	if _, err := New(Default(), Options{}); err == nil || !strings.Contains(err.Error(), `$EDGEIPC_SHM_DIR "shm"`) {
		t.Fatalf("New with EDGEIPC_SHM_DIR=shm: %v; want it refused", err)
	}
	t.Setenv("EDGEIPC_SHM_DIR", t.TempDir())
	t.Setenv("EDGEIPC_CTL_QUEUE", "..")
	if _, err := New(Default(), Options{}); err == nil || !strings.Contains(err.Error(), `$EDGEIPC_CTL_QUEUE ".."`) {
		t.Fatalf("New with EDGEIPC_CTL_QUEUE=..: %v; want it refused", err)
	}
}

// Text nested or dotted far beyond what the format needs is refused before
// the TOML decoder sees it: arrays nested 2,000,000 deep (4 MB, under
// MaxConfigBytes) overflowed the decoder's stack, a fatal error that kills
// the process (Load at start, a reload), and inline tables nested 8,000
// deep or a key of 8,000 dotted parts took minutes to decode and check.
// The shapes a configuration has pass, brackets and dots in strings and
// comments included.
func TestConfigTooDeep(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"arrays", "[runtime]\nx = " + strings.Repeat("[", 2_000_000) + strings.Repeat("]", 2_000_000) + "\n", "bad.toml:2: arrays, inline tables or table headers nested more than 32 deep"},
		{"inline tables", "[rings.a]\n\n" + "x = " + strings.Repeat("{a=", 200) + "1" + strings.Repeat("}", 200) + "\n", "bad.toml:3: arrays, inline tables or table headers nested more than 32 deep"},
		{"dotted key", "[rings.a]\n" + strings.Repeat("a.", 8000) + "a = 1\n", "bad.toml:2: a key or table name of more than 32 dotted parts"},
		{"dotted table", "# c\n[" + strings.Repeat("a . ", 100) + "a]\n", "bad.toml:2: a key or table name of more than 32 dotted parts"},
	} {
		_, err := Parse("bad.toml", []byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %.300v; want %q", tc.name, err, tc.want)
		}
	}
	ok := "# [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[ a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z.a.b.c.d.e.f.g\n" +
		"[rings.\"a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z.a.b.c.d.e.f.g\"]\n" +
		"[rings.b]\n[[sources]]\nname = \"x\"\nkind = \"exec\"\nring = \"b\"\n" +
		"command = [\"/bin/echo\", \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"\", '{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{', \"\"\"\n" + strings.Repeat(".", 100) + "\n\"\"\"]\n" +
		"log_rate = 1.5\n"
	if _, err := Parse("ok.toml", []byte(ok)); err != nil {
		t.Fatalf("brackets and dots in comments and strings: %v", err)
	}
}

// An unknown key of a source past the 1024th is named with its index and
// line, as one of an earlier source is: the search for the table that has
// it stopped at the 1024th, and the error said "sources[].rate" at the line
// of the first [[sources]]. (That search, and the one for a table's first
// line, now look up an index built with the line index: a generated file
// of thousands of sources, each with the same misspelled key, took half
// a minute to check, holding up a reload.)
func TestConfigUnknownKeyOfALateSource(t *testing.T) {
	var b strings.Builder
	b.WriteString("[rings.a]\n")
	for i := range 1100 {
		fmt.Fprintf(&b, "[[sources]]\nname = \"s%d\"\nkind = \"synthetic\"\nring = \"a\"\nrate_hz = 1\n", i)
	}
	b.WriteString("rate = 1\n")
	line := 1 + 1100*5 + 1
	_, err := Parse("bad.toml", []byte(b.String()))
	want := fmt.Sprintf("bad.toml:%d: sources[1099].rate: unknown key; did you mean rate_hz?", line)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("%.400v\nwant an error containing %q", err, want)
	}
}

// max_skip acts in the len32 and msgp decoders only: on a source whose
// framing is lines (written, or the default) it was accepted and did
// nothing. It is refused at its line, saying which framings it applies to;
// with len32 and msgp it is taken.
func TestConfigMaxSkipOnlyWhereItActs(t *testing.T) {
	src := func(kind, framing, maxSkip string) string {
		s := "[rings.a]\n[[sources]]\nname = \"x\"\nkind = \"" + kind + "\"\nring = \"a\"\n"
		if kind == KindExec {
			s += "command = [\"true\"]\n"
		} else {
			s += "path = \"/run/edgeipc-test/x.fifo\"\n"
		}
		if framing != "" {
			s += "framing = \"" + framing + "\"\n"
		}
		return s + "max_skip = " + maxSkip + "\n"
	}
	for _, kind := range []string{KindExec, KindFIFO} {
		for _, c := range []struct{ framing, maxSkip, want string }{
			{"", "4096", `bad.toml:7: sources[0] (x).max_skip: does nothing on a source whose framing is "lines" (the default: framing is not set here): it applies to the len32 and msgp framings only`},
			{"lines", "4096", `bad.toml:8: sources[0] (x).max_skip: does nothing on a source whose framing is "lines": it applies to the len32 and msgp framings only`},
			{"lines", "0", `bad.toml:8: sources[0] (x).max_skip: does nothing on a source whose framing is "lines": it`},
			{"len32", "4096", ""},
			{"msgp", "4096", ""},
		} {
			c2, err := Parse("bad.toml", []byte(src(kind, c.framing, c.maxSkip)))
			switch {
			case c.want == "" && err != nil:
				t.Errorf("%s source, framing %q, max_skip = %s: %v", kind, c.framing, c.maxSkip, err)
			case c.want == "" && c2.Sources[0].MaxSkip != 4096:
				t.Errorf("%s source, framing %q: max_skip %d, want 4096", kind, c.framing, c2.Sources[0].MaxSkip)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("%s source, framing %q, max_skip = %s: %v; want %q", kind, c.framing, c.maxSkip, err, c.want)
			}
		}
	}
}

// Names of printable text are taken as written: spaces, punctuation and
// letters beyond ASCII are not control characters.
func TestConfigPrintableNames(t *testing.T) {
	const name = "Kamera 1 (vorn) — ü/β:#1"
	c, err := Parse("ok.toml", []byte("[rings.a]\n[rings.b]\n[[sources]]\nname = \""+name+"\"\nkind = \"synthetic\"\nring = \"a\"\nrate_hz = 1\n[[sinks]]\nname = \""+name+"\"\nkind = \"stats\"\nring = \"b\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Sources[0].Name != name || c.Sinks[0].Name != name {
		t.Fatalf("names %q, %q; want %q", c.Sources[0].Name, c.Sinks[0].Name, name)
	}
}

// An exec source's dir is kept as the child gets it and a reload compares
// it: "." parts, repeated and trailing slashes go; ".." parts stay (with a
// symlink before them, the kernel's parent is not the lexical one).
func TestConfigDirCleaned(t *testing.T) {
	for _, c := range []struct{ dir, want string }{
		{"/tmp", "/tmp"}, {"/tmp/", "/tmp"}, {"/tmp/./", "/tmp"}, {"//tmp//.", "/tmp"}, {"/", "/"}, {"//", "/"},
		{".", ""}, {"./", ""}, {"", ""}, {"./a//b/", "a/b"},
		{"/opt/lnk/../shared/", "/opt/lnk/../shared"}, {"../x/.", "../x"},
	} {
		cfg, err := Parse("d.toml", []byte("[rings.a]\n[[sources]]\nname = \"x\"\nkind = \"exec\"\nring = \"a\"\ncommand = [\"true\"]\ndir = "+strconv.Quote(c.dir)+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Sources[0].Dir; got != c.want {
			t.Errorf("dir = %q: %q; want %q", c.dir, got, c.want)
		}
	}
}

// `edgeipc ctl reload` waits MaxReloadTime and more for the answer
// (internal/cli checks its default against it): MaxReloadTime must cover
// the slowest reload the configuration allows, its turn included.
func TestMaxReloadTimeCoversTheSlowestReload(t *testing.T) {
	if MaxReloadTime < ReloadTurnTimeout+MaxStopTimeout+reloadDrain {
		t.Errorf("MaxReloadTime %v < turn %v + the longest stop_timeout %v + the sinks' drain %v", MaxReloadTime, ReloadTurnTimeout, MaxStopTimeout, reloadDrain)
	}
	// The watchdog's bound for a reload (setBusy in doReload) fits in
	// what is left once the turn has been waited.
	if MaxStopTimeout+busyMargin > MaxReloadTime-ReloadTurnTimeout {
		t.Errorf("a reload may take %v by the watchdog's bound; MaxReloadTime leaves it %v", MaxStopTimeout+busyMargin, MaxReloadTime-ReloadTurnTimeout)
	}
	// The check holds stop_timeout to MaxStopTimeout.
	exec := "[rings.a]\n[[sources]]\nname = \"x\"\nkind = \"exec\"\nring = \"a\"\ncommand = [\"true\"]\nstop_timeout = "
	if _, err := Parse("max.toml", []byte(exec+strconv.Quote(MaxStopTimeout.String())+"\n")); err != nil {
		t.Errorf("stop_timeout = MaxStopTimeout: %v", err)
	}
	if _, err := Parse("over.toml", []byte(exec+strconv.Quote((MaxStopTimeout+time.Millisecond).String())+"\n")); err == nil {
		t.Errorf("stop_timeout = MaxStopTimeout + 1ms was accepted")
	}
}
