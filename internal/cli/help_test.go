package cli

import (
	"regexp"
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
