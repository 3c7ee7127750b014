package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// TestHelpFlagsDoubleDash: every command's help lists its flags as --name,
// the way usage lines and examples write them, and states the 64 MiB
// slot-size limit where it applies.
func TestHelpFlagsDoubleDash(t *testing.T) {
	single := regexp.MustCompile(`(?m)^  -[a-z][a-z]`) // -c alone is fine
	for name, c := range commands {
		if c.Hidden || c.Flags == nil {
			continue
		}
		r := runCLI(t, "", "help", name)
		mustCode(t, r, 0, "help "+name)
		if !strings.Contains(r.stdout, "\nFlags:\n  -") || single.MatchString(r.stdout) {
			t.Errorf("help %s lists flags with one dash:\n%s", name, r.stdout)
		}
	}
	if r := runCLI(t, "", "help", "run"); !strings.Contains(r.stdout, "\n  -c FILE\n") {
		t.Errorf("help run lists its config flag unlike its usage line (-c FILE):\n%s", r.stdout)
	}
	for _, args := range [][]string{{"help", "pub"}, {"ring", "create", "-h"}} {
		r := runCLI(t, "", args...)
		mustCode(t, r, 0, strings.Join(args, " "))
		if !strings.Contains(r.stdout, "  --slot-size size\n") || !strings.Contains(r.stdout, "up to 64m") || single.MatchString(r.stdout) {
			t.Errorf("%s: slot-size flag listing:\n%s", strings.Join(args, " "), r.stdout)
		}
	}
}

// TestHelpHelp: "edgeipc help help" is the command list, not an unknown
// command.
func TestHelpHelp(t *testing.T) {
	r := runCLI(t, "", "help", "help")
	mustCode(t, r, 0, "help help")
	if !strings.Contains(r.stdout, "Commands:") || !strings.Contains(r.stdout, "edgeipc help COMMAND") {
		t.Errorf("help help printed %q", r.stdout)
	}
	r = runCLI(t, "", "help", "nosuch")
	mustCode(t, r, ExitUsage, "help nosuch")
}

// TestRingSubcommandErrors: a ring subcommand's usage error names the
// subcommand and prints its own usage line (not the list of ring
// subcommands), and its -h has examples.
func TestRingSubcommandErrors(t *testing.T) {
	for _, c := range []struct {
		args       []string
		sub, fixes string
	}{
		{[]string{"ring", "create", "r", "--bogus"}, "create", "not defined: --bogus"},
		{[]string{"ring", "create", "r", "--slots", "3"}, "create", "use a power of two"},
		{[]string{"ring", "create"}, "create", "ring name missing"},
		{[]string{"ring", "ls", "extra"}, "ls", "edgeipc ring inspect NAME"},
		{[]string{"ring", "inspect", "a", "b"}, "inspect", "one NAME"},
		{[]string{"ring", "rm"}, "rm", "--stale"},
	} {
		what := strings.Join(c.args, " ")
		r := runCLI(t, "", c.args...)
		mustCode(t, r, ExitUsage, what)
		var usage string
		for _, s := range ringSubs {
			if s.name == c.sub {
				usage = s.usage
			}
		}
		want := "edgeipc ring " + c.sub + ": "
		if !strings.HasPrefix(r.stderr, want) || !strings.Contains(r.stderr, c.fixes) ||
			!strings.Contains(r.stderr, "\nusage: edgeipc "+usage+"\n") || !strings.Contains(r.stderr, "edgeipc ring "+c.sub+" -h") ||
			strings.Count(r.stderr, "usage") != 1 {
			t.Errorf("%s: stderr\n%s\nwant %q, %q and one usage line: edgeipc %s", what, r.stderr, want, c.fixes, usage)
		}
	}
	for _, s := range ringSubs {
		r := runCLI(t, "", "ring", s.name, "-h")
		mustCode(t, r, 0, "ring "+s.name+" -h")
		if !strings.Contains(r.stdout, "\nExamples:\n  edgeipc ring "+s.name) {
			t.Errorf("ring %s -h has no examples:\n%s", s.name, r.stdout)
		}
		// 'edgeipc help ring create' is the subcommand's help too, not
		// the ring overview with "create" ignored.
		h := runCLI(t, "", "help", "ring", s.name)
		mustCode(t, h, 0, "help ring "+s.name)
		if h.stdout != r.stdout {
			t.Errorf("help ring %s printed\n%s\nwant what ring %s -h prints:\n%s", s.name, h.stdout, s.name, r.stdout)
		}
	}
	// An unknown one is a usage error, as 'help nosuch' is (it printed
	// the ring overview and exited 0).
	r := runCLI(t, "", "help", "ring", "bogus")
	mustCode(t, r, ExitUsage, "help ring bogus")
	if !strings.Contains(r.stderr, `unknown ring subcommand "bogus"`) || !strings.Contains(r.stderr, "create, ls, inspect, rm") {
		t.Errorf("help ring bogus: stderr %q; want it to name the subcommands", r.stderr)
	}
}

// TestVersionJSON: version --json is one object with the text's fields.
func TestVersionJSON(t *testing.T) {
	r := runCLI(t, "", "version", "--json")
	mustCode(t, r, 0, "version --json")
	var v map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("version --json: %v\n%s", err, r.stdout)
	}
	// A GOARCH=arm build also says its GOARM, which nothing else tells
	// apart (the armv6 and armv7 release binaries are both linux/arm).
	fields, platform := 5, runtime.GOOS+"/"+runtime.GOARCH
	if runtime.GOARCH == "arm" {
		fields++
		if v["goarm"] != selfGOARM(t) {
			t.Errorf("version --json: goarm %v, want %q", v["goarm"], selfGOARM(t))
		}
		platform += "/v" + selfGOARM(t)
	}
	if v["version"] != Version || v["commit"] != Commit || v["go_version"] != runtime.Version() || v["os"] != runtime.GOOS || v["arch"] != runtime.GOARCH || len(v) != fields {
		t.Errorf("version --json: %v", v)
	}
	r = runCLI(t, "", "version")
	mustCode(t, r, 0, "version")
	if !strings.HasPrefix(r.stdout, "edgeipc "+Version+" (commit "+Commit) || !strings.HasSuffix(r.stdout, ", "+platform+")\n") {
		t.Errorf("version: %q, want platform %s", r.stdout, platform)
	}
	mustCode(t, runCLI(t, "", "version", "extra"), ExitUsage, "version extra")
}

// selfGOARM is the GOARM this test binary was built with, from its build
// information.
func selfGOARM(t *testing.T) string {
	t.Helper()
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("the test binary has no build information")
	}
	for _, s := range bi.Settings {
		if s.Key == "GOARM" {
			return s.Value
		}
	}
	t.Fatal("a GOARCH=arm test binary without a GOARM build setting")
	return ""
}

// failWriter fails every write, as stdout on a full disk does.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// TestOutputWriteFailed: a command whose output could not be written
// exits 1 and says so, even where it prints with fmt.Fprintf and never
// looks at the error. Help texts (help, -h) exited 0.
func TestOutputWriteFailed(t *testing.T) {
	dir := t.TempDir()
	name := uniqueName("full")
	mustCode(t, runCLI(t, "", "ring", "create", name, "--dir", dir), 0, "ring create")
	for _, args := range [][]string{
		{"version"},
		{"version", "--json"},
		{"ring", "inspect", name, "--dir", dir},
		{"ring", "inspect", name, "--json", "--dir", dir},
		{"ring", "ls", "--dir", dir},
		{"run", "--check"},
		{"help"},
		{"help", "sub"},
		{"sub", "-h"},
		{"ctl", "status", "-h"}, // -h after a positional argument
	} {
		var errb bytes.Buffer
		code := MainEnv(context.Background(), &Env{Stdin: strings.NewReader(""), Stdout: failWriter{}, Stderr: &errb}, args)
		if code != ExitFailure || !strings.Contains(errb.String(), "no space left on device") {
			t.Errorf("%s into a full disk: exit %d, stderr %q; want 1 and the error", strings.Join(args, " "), code, errb.String())
		}
	}
}

// TestTopHelpExitCodes: the command list documents the exit codes, run's
// exception, what a closed output pipe does, and the JSON conventions.
func TestTopHelpExitCodes(t *testing.T) {
	r := runCLI(t, "", "help")
	mustCode(t, r, 0, "help")
	text := strings.Join(strings.Fields(r.stdout), " ")
	for _, want := range []string{"0 ok, 1 failure, 2 usage error, 130 interrupted", "'edgeipc run' exits 0 after a clean shutdown",
		"status 141", "sub and hz, which leave their ring and exit 0", "one object per line", "errors go to stderr as text"} {
		if !strings.Contains(text, want) {
			t.Errorf("help lacks %q:\n%s", want, r.stdout)
		}
	}
}

// TestFlagErrorsSpellFlagsAsHelp: a flag error writes the flag the way
// help lists it: --name, and -c for run's one-letter flag (it said
// "flag needs an argument: --c", a flag that help never shows).
func TestFlagErrorsSpellFlagsAsHelp(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "-c"}, "flag needs an argument: -c\n"},
		{[]string{"run", "--c"}, "flag needs an argument: -c\n"},
		{[]string{"ring", "create", "x", "-q"}, "flag provided but not defined: -q\n"},
		{[]string{"sub", "x", "-bogus"}, "flag provided but not defined: --bogus\n"},
		{[]string{"sub", "x", "--count", "x"}, `invalid value "x" for flag --count:`},
		{[]string{"ring", "create", "x", "--slots"}, "flag needs an argument: --slots\n"},
	} {
		r := runCLI(t, "", c.args...)
		mustCode(t, r, ExitUsage, strings.Join(c.args, " "))
		if !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: stderr %q, want it to contain %q", strings.Join(c.args, " "), r.stderr, c.want)
		}
	}
}

// TestFlagBeforeCommand: a flag where the command should be says how to
// write the command line, and --version names the version command; both
// were reported as an unknown command "--version" or "--dir".
func TestFlagBeforeCommand(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--version"}, "the version is a command, 'edgeipc version'"},
		{[]string{"-v"}, "the version is a command, 'edgeipc version'"},
		{[]string{"--dir", "/tmp", "ring", "ls"}, "flag --dir is before the command: flags go after it ('edgeipc COMMAND [flags] [args]'"},
		{[]string{"--json", "version"}, "flag --json is before the command"},
	} {
		r := runCLI(t, "", c.args...)
		mustCode(t, r, ExitUsage, strings.Join(c.args, " "))
		if !strings.Contains(r.stderr, c.want) || strings.Contains(r.stderr, "unknown command") || r.stdout != "" {
			t.Errorf("%s: stdout %q stderr %q, want %q", strings.Join(c.args, " "), r.stdout, r.stderr, c.want)
		}
	}
	r := runCLI(t, "", "bogus")
	mustCode(t, r, ExitUsage, "bogus")
	if !strings.Contains(r.stderr, `unknown command "bogus"`) {
		t.Errorf("bogus: stderr %q", r.stderr)
	}
}

// TestFlagValueErrorsSayWhatFlagTakes: a value the flag package cannot
// parse is answered with what the flag takes, not only "parse error"
// ('sub --timeout 5' said 'invalid value "5" for flag --timeout: parse
// error'), and a bad boolean names the flag as help does (it said "for
// -json").
func TestFlagValueErrorsSayWhatFlagTakes(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"sub", "r", "--timeout", "5"}, `invalid value "5" for flag --timeout: want a duration with a unit, such as 500ms, 5s or 1m` + "\n"},
		{[]string{"hz", "r", "--window", "1"}, `invalid value "1" for flag --window: want a duration with a unit`},
		{[]string{"ring", "create", "r", "--slots", "1k"}, `invalid value "1k" for flag --slots: want a whole number (number of slots, a power of two from 2 to 16777216)` + "\n"},
		{[]string{"pub", "r", "--create", "--slots", "99999999999999999999"}, `for flag --slots: value out of range (with --create: number of slots, a power of two)` + "\n"},
		{[]string{"ring", "ls", "--json=maybe"}, `invalid boolean value "maybe" for flag --json: want true or false` + "\n"},
		{[]string{"hz", "r", "--json=2"}, `invalid boolean value "2" for flag --json: want true or false` + "\n"},
	} {
		r := runCLI(t, "", c.args...)
		mustCode(t, r, ExitUsage, strings.Join(c.args, " "))
		if !strings.Contains(r.stderr, c.want) || strings.Contains(r.stderr, "parse error") {
			t.Errorf("%s: stderr %q, want it to contain %q", strings.Join(c.args, " "), r.stderr, c.want)
		}
	}
}

// TestRingFlagBeforeSubcommand: a flag of the ring subcommands written
// before the subcommand says where it goes, with the command line
// rewritten; 'edgeipc ring --dir DIR ls' said "flag provided but not
// defined: --dir", a flag that ring ls has.
func TestRingFlagBeforeSubcommand(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"ring", "--dir", "/run/edgeipc", "ls"}, "flag --dir is before the subcommand: flags go after it ('edgeipc ring ls --dir /run/edgeipc')"},
		{[]string{"ring", "--json", "inspect", "cam"}, "flag --json is before the subcommand: flags go after it ('edgeipc ring inspect --json cam')"},
		{[]string{"ring", "--force"}, "flag --force is before the subcommand: flags go after it ('edgeipc ring create|ls|inspect|rm"},
		// Not a flag of that subcommand, or of any: as before.
		{[]string{"ring", "--json", "create", "x"}, "flag provided but not defined: --json\n"},
		{[]string{"ring", "--bogus", "ls"}, "flag provided but not defined: --bogus\n"},
	} {
		r := runCLI(t, "", c.args...)
		mustCode(t, r, ExitUsage, strings.Join(c.args, " "))
		if !strings.Contains(r.stderr, c.want) || r.stdout != "" {
			t.Errorf("%s: stdout %q stderr %q, want %q", strings.Join(c.args, " "), r.stdout, r.stderr, c.want)
		}
	}
}
