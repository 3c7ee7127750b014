package cli

import (
	"encoding/json"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgeipc/edgeipc/shm"
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

// goImports returns the imports of the non-test Go files of the package in
// dir (relative to the module root), for every GOOS and build tag at once,
// written as docs/architecture.md writes them: the module's packages by
// their path in it, golang.org/x/sys/... as x/sys, github.com/tinylib/msgp/...
// as msgp, github.com/BurntSushi/toml as toml, and the standard library left
// out.
func goImports(t *testing.T, dir string) map[string]bool {
	t.Helper()
	const module = "github.com/edgeipc/edgeipc/"
	files, _ := filepath.Glob(filepath.Join("../..", dir, "*.go"))
	imps := map[string]bool{}
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		n++
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, is := range af.Imports {
			p, _ := strconv.Unquote(is.Path.Value)
			switch {
			case strings.HasPrefix(p, module):
				imps[strings.TrimPrefix(p, module)] = true
			case strings.HasPrefix(p, "golang.org/x/sys/"):
				imps["x/sys"] = true
			case strings.HasPrefix(p, "github.com/tinylib/msgp/"):
				imps["msgp"] = true
			case p == "github.com/BurntSushi/toml":
				imps["toml"] = true
			case strings.Contains(strings.Split(p, "/")[0], "."):
				imps[p] = true // a module the table has no short name for
			}
		}
	}
	if n == 0 {
		t.Fatalf("no Go files in %s", dir)
	}
	return imps
}

// TestArchitectureImports: the package table of docs/architecture.md says,
// for each package, every package it imports besides the standard library
// (its third column: `a`, `b`, `runtime/*` for runtime's subpackages, — for
// none; "everything above" for the CLI, which imports only packages of the
// rows above it and those named after it), and has a row for every package
// the edgeipc binary is built from.
func TestArchitectureImports(t *testing.T) {
	b, err := os.ReadFile("../../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(b), "\n## Packages\n")
	if !ok {
		t.Fatal("docs/architecture.md has no Packages section")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	row := regexp.MustCompile("(?m)^\\| `([a-z/]+)/` \\|.*\\| ([^|]+) \\|$")
	tick := regexp.MustCompile("`([^`]+)`")
	rows := map[string]bool{}
	var above []string
	for _, m := range row.FindAllStringSubmatch(table, -1) {
		pkg, col := m[1], strings.TrimSpace(m[2])
		rows[pkg] = true
		got := goImports(t, pkg)
		if rest, ok := strings.CutPrefix(col, "everything above"); ok {
			extra := map[string]bool{}
			for _, tm := range tick.FindAllStringSubmatch(rest, -1) {
				extra[tm[1]] = true
			}
			for imp := range got {
				if (!rows[imp] || imp == pkg) && !extra[imp] {
					t.Errorf("docs/architecture.md: %s imports %s, which is not a row above it (the table says \"everything above\")", pkg, imp)
				}
			}
			above = append(above, pkg)
			continue
		}
		doc := map[string]bool{}
		if col != "—" {
			for _, tm := range tick.FindAllStringSubmatch(col, -1) {
				doc[tm[1]] = true
			}
			if len(doc) == 0 {
				t.Errorf("docs/architecture.md, %s: imports column %q names no `package`", pkg, col)
			}
		}
		var missing, extra []string
		for imp := range got {
			if !doc[imp] && !(doc[pkg+"/*"] && strings.HasPrefix(imp, pkg+"/")) {
				missing = append(missing, imp)
			}
		}
		for d := range doc {
			if !got[d] && !(strings.HasSuffix(d, "/*") && anyPrefix(got, strings.TrimSuffix(d, "*"))) {
				extra = append(extra, d)
			}
		}
		sort.Strings(missing)
		sort.Strings(extra)
		if len(missing)+len(extra) > 0 {
			t.Errorf("docs/architecture.md, %s: the imports column leaves out %v and names %v, which it does not import", pkg, missing, extra)
		}
	}
	if len(rows) < 10 || len(above) != 1 {
		t.Fatalf("read %d rows (%d \"everything above\"): the scan is broken", len(rows), len(above))
	}
	// Every package of the binary has a row (cmd/edgeipc is the thin main).
	seen := map[string]bool{}
	var walk func(pkg string)
	walk = func(pkg string) {
		if seen[pkg] {
			return
		}
		seen[pkg] = true
		for imp := range goImports(t, pkg) {
			if _, err := os.Stat(filepath.Join("../..", imp)); err == nil {
				walk(imp)
			}
		}
	}
	walk("cmd/edgeipc")
	for pkg := range seen {
		if pkg != "cmd/edgeipc" && !rows[pkg] {
			t.Errorf("docs/architecture.md's package table has no row for %s/, which the edgeipc binary is built from", pkg)
		}
	}
}

func anyPrefix(set map[string]bool, prefix string) bool {
	for k := range set {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

// TestStreamJSONDocumented: the keys that 'hz --json' and 'sub --framing
// json' print are exactly those their help lists (the help of ring ls and
// ring inspect is held to their output by TestRingJSONDocumented, that of
// version by TestVersionJSON).
func TestStreamJSONDocumented(t *testing.T) {
	dir := t.TempDir()
	name := uniqueName("jsondoc")
	mustCode(t, runCLI(t, "", "ring", "create", name, "--slots", "8", "--slot-size", "64", "--dir", dir), 0, "ring create")
	w, err := shm.OpenWriter(name, &shm.SegmentOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write([]byte("first")); err != nil {
		t.Fatal(err)
	}
	// A writer that keeps writing while hz measures its window.
	stop := make(chan struct{})
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
				w.Write([]byte("frame"))
			}
		}
	}()
	hz := runCLI(t, "", "hz", name, "--json", "--count", "1", "--window", "200ms", "--dir", dir)
	close(stop)
	<-wrote
	mustCode(t, hz, 0, "hz --json")
	sub := runCLI(t, "", "sub", name, "--framing", "json", "--from", "oldest", "--count", "1", "--dir", dir)
	mustCode(t, sub, 0, "sub --framing json")

	quoted := regexp.MustCompile(`"([a-z_]+)"`)
	for _, c := range []struct{ cmd, start, out string }{
		{"hz", "With --json", hz.stdout},
		{"sub", "--framing json", sub.stdout},
	} {
		help := commands[c.cmd].Long
		i := strings.Index(help, c.start)
		if i < 0 {
			t.Fatalf("help %s has no %q", c.cmd, c.start)
		}
		para, _, _ := strings.Cut(help[i:], "\n\n")
		doc := map[string]bool{}
		for _, m := range quoted.FindAllStringSubmatch(para, -1) {
			doc[m[1]] = true
		}
		var obj map[string]any
		line, _, _ := strings.Cut(c.out, "\n")
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Fatalf("%s: %v\n%s", c.cmd, err, c.out)
		}
		for k := range obj {
			if !doc[k] {
				t.Errorf("%s prints the key %q, which 'edgeipc help %s' does not name:\n%s", c.cmd, k, c.cmd, para)
			}
		}
		for k := range doc {
			if _, ok := obj[k]; !ok {
				t.Errorf("'edgeipc help %s' names the key %q, which %s does not print: %s", c.cmd, k, c.cmd, line)
			}
		}
		if len(doc) < 5 {
			t.Fatalf("help %s: found keys %v: the scan is broken", c.cmd, doc)
		}
	}
}

// TestREADMETestCommandIsCI: README.md says `make test` installs what a
// fresh machine lacks (scripts/setup.sh, its first step) and that CI runs
// exactly this (.ci/run): .ci/run ends in `make test`, and the Debian
// packages it installs are those scripts/setup.sh installs, amd64's
// gcc-multilib included, so that a developer's `make test` and CI test
// the same machine.
func TestREADMETestCommandIsCI(t *testing.T) {
	read := func(p string) string {
		b, err := os.ReadFile("../../" + p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	readme, ci, setup, mk := read("README.md"), read(".ci/run"), read("scripts/setup.sh"), read("Makefile")
	for _, want := range []string{"\nmake test ", "(`.ci/run`)", "`sudo scripts/setup.sh`"} {
		if !strings.Contains(readme, want) {
			t.Errorf("README.md does not say %q", want)
		}
	}
	if !regexp.MustCompile(`(?m)^make test$`).MatchString(ci) {
		t.Error(".ci/run does not run `make test`")
	}
	if !regexp.MustCompile(`(?m)^test: setup `).MatchString(mk) || !regexp.MustCompile(`(?m)^setup:.*\n\tscripts/setup\.sh$`).MatchString(mk) {
		t.Error("Makefile: `make test` does not start with `setup` (scripts/setup.sh)")
	}
	pkgs := func(where, list, cond string) []string {
		out := strings.Fields(list)
		if strings.Contains(cond, "amd64") && strings.Contains(cond, "gcc-multilib") {
			out = append(out, "gcc-multilib (amd64 only)")
		}
		sort.Strings(out)
		if len(out) < 5 {
			t.Fatalf("%s: read packages %v: the scan is broken", where, out)
		}
		return out
	}
	m := regexp.MustCompile(`(?s)install -y -q --no-install-recommends --no-upgrade \\\n(.*?)\n\n`).FindStringSubmatch(ci)
	if m == nil {
		t.Fatal(".ci/run: no apt-get install list found")
	}
	ciText := strings.ReplaceAll(m[1], "\\\n", " ")
	cond := regexp.MustCompile(`\$\(.*\)`)
	ciPkgs := pkgs(".ci/run", cond.ReplaceAllString(ciText, ""), cond.FindString(ciText))
	list := regexp.MustCompile(`(?m)^PKGS=\((.*)\)$`).FindStringSubmatch(setup)
	add := regexp.MustCompile(`(?m)^.*PKGS\+=\(.*\).*$`).FindString(setup)
	if list == nil {
		t.Fatal("scripts/setup.sh: no PKGS=(...) list found")
	}
	setupPkgs := pkgs("scripts/setup.sh", list[1], add)
	if strings.Join(ciPkgs, " ") != strings.Join(setupPkgs, " ") {
		t.Errorf(".ci/run installs %v; scripts/setup.sh (make test) installs %v", ciPkgs, setupPkgs)
	}
}
