package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// helpFlags returns the flags that `edgeipc ARGS -h` lists.
func helpFlags(t *testing.T, args ...string) map[string]bool {
	t.Helper()
	r := runCLI(t, "", append(args, "-h")...)
	mustCode(t, r, 0, strings.Join(args, " ")+" -h")
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  (--?[a-z][a-z-]*)`).FindAllStringSubmatch(r.stdout, -1) {
		flags[m[1]] = true
	}
	return flags
}

// TestDocsUseRealFlags: every `edgeipc COMMAND ... --flag` written in the
// user documents (README, docs/, the clients' and examples' READMEs) and
// in the commands' own help names a command that exists and flags that
// command has, so that no document shows a command line that fails with
// a usage error.
func TestDocsUseRealFlags(t *testing.T) {
	texts := map[string]string{}
	files, _ := filepath.Glob("../../docs/*.md")
	more, _ := filepath.Glob("../../examples/*/README.md")
	files = append(files, append(more, "../../README.md", "../../clients/README.md")...)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		texts[strings.TrimPrefix(f, "../../")] = string(b)
	}
	for name, c := range commands {
		texts["edgeipc help "+name] = c.Usage + "\n" + c.Long
	}
	for _, s := range ringSubs {
		texts["edgeipc ring "+s.name+" -h"] = "edgeipc " + s.usage + "\n" + s.examples
	}
	subs := map[string]bool{}
	for _, s := range ringSubs {
		subs[s.name] = true
	}
	cache := map[string]map[string]bool{}
	flagsOf := func(args ...string) map[string]bool {
		k := strings.Join(args, " ")
		if cache[k] == nil {
			cache[k] = helpFlags(t, args...)
		}
		return cache[k]
	}
	// A command line: "edgeipc" (or "go run ./cmd/edgeipc"), a command,
	// and the rest of the line up to a closing quote, a '#' comment or a
	// pipe.
	line := regexp.MustCompile("edgeipc ([a-z]+)((?: [^`'\"#|\\n]*)?)")
	flag := regexp.MustCompile(`(?:^| )(--?[a-z][a-z-]*)`)
	ctlWord := regexp.MustCompile(`^[a-z]+(/[a-z]+)*$`)
	checked := 0
	for where, text := range texts {
		for _, m := range line.FindAllStringSubmatch(text, -1) {
			cmd, rest := m[1], m[2]
			if _, ok := commands[cmd]; !ok {
				continue // prose: "edgeipc runtime", "edgeipc rings"
			}
			args := []string{cmd}
			if cmd == "ring" {
				f := strings.Fields(rest)
				if len(f) == 0 || !subs[f[0]] {
					continue // "ring create|ls|inspect|rm", prose
				}
				args = append(args, f[0])
			}
			if cmd == "ctl" {
				// The first word that is not a flag or its value is a ctl
				// command ("start/stop/restart" in prose names three).
				f := strings.Fields(rest)
				for i := 0; i < len(f); i++ {
					if f[i] == "--queue" || f[i] == "--timeout" {
						i++
						continue
					}
					if strings.HasPrefix(f[i], "-") || strings.HasPrefix(f[i], "[") {
						continue // a flag, or a usage line's [--flag]
					}
					w := strings.TrimRight(f[i], ".,;:)")
					if !ctlWord.MatchString(w) {
						break // not a command line: a diagram, a placeholder
					}
					for _, c := range strings.Split(w, "/") {
						if _, ok := ctlCommands[c]; !ok {
							t.Errorf("%s: `edgeipc ctl%s` names %q, which is no ctl command", where, rest, c)
						}
					}
					break
				}
			}
			known := flagsOf(args...)
			for _, fm := range flag.FindAllStringSubmatch(rest, -1) {
				f := fm[1]
				if f == "-h" || f == "--help" {
					continue
				}
				checked++
				if !known[f] && !known["-"+strings.TrimLeft(f, "-")] && !known["--"+strings.TrimLeft(f, "-")] {
					t.Errorf("%s: `edgeipc %s%s` uses %s, which 'edgeipc %s -h' does not list", where, cmd, rest, f, strings.Join(args, " "))
				}
			}
		}
	}
	t.Logf("checked %d flags in %d texts", checked, len(texts))
	if checked < 20 {
		t.Fatalf("checked only %d flags: the scan is broken", checked)
	}
}

// TestREADMELinksEveryDoc: the documentation table of README.md links
// every page of docs/, and no page that is gone.
func TestREADMELinksEveryDoc(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(b), "\n## Documentation\n")
	if !ok {
		t.Fatal("README.md has no Documentation section")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	linked := map[string]bool{}
	for _, m := range regexp.MustCompile(`\]\((docs/[^)#]+\.md)\)`).FindAllStringSubmatch(table, -1) {
		linked[m[1]] = true
	}
	pages, _ := filepath.Glob("../../docs/*.md")
	if len(pages) == 0 {
		t.Fatal("no docs/*.md found")
	}
	for _, p := range pages {
		p = strings.TrimPrefix(p, "../../")
		if !linked[p] {
			t.Errorf("README.md's Documentation table does not link %s", p)
		}
		delete(linked, p)
	}
	for p := range linked {
		t.Errorf("README.md's Documentation table links %s, which does not exist", p)
	}
}
