//go:build linux

package shm_test

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/edgeipc/edgeipc/internal/testenv"
	"github.com/edgeipc/edgeipc/shm"
)

// readmePrelude declares what the README's Go snippet leaves to the
// program around it.
const readmePrelude = `	ctx := context.Background()
	sample := make([]byte, 64)
	typ := uint32(1)
`

// TestREADMEGoSnippetRuns: the Go snippet of README.md ("As a Go
// library"), as written, builds against this package and runs: writer
// and reader in one process, in a segment directory that holds the rings
// of the built-in configuration, as /dev/shm does after `make run`, the
// README's first command (they stay: remove_on_exit = false). It ignores
// every error, so a call that fails there (Create of a name that exists)
// dereferences a nil pointer and the program exits non-zero. Variables it
// declares and leaves unused are used after it.
func TestREADMEGoSnippetRuns(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "\n```go\n")
	if !ok {
		t.Fatal("README.md has no ```go block")
	}
	block, _, ok := strings.Cut(rest, "\n```\n")
	if !ok {
		t.Fatal("README.md: the ```go block does not end")
	}
	body := readmePrelude + block + "\n"
	// Use every variable the snippet declares, so that one it shows and
	// leaves unused does not fail the build.
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "snippet.go", "package main\nfunc main() {\n"+body+"}\n", 0)
	if err != nil {
		t.Fatalf("README.md's Go snippet does not parse: %v\n%s", err, block)
	}
	names := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		if as, ok := n.(*ast.AssignStmt); ok && as.Tok == token.DEFINE {
			for _, l := range as.Lhs {
				if id, ok := l.(*ast.Ident); ok && id.Name != "_" {
					names[id.Name] = true
				}
			}
		}
		return true
	})
	var use []string
	for n := range names {
		use = append(use, "\t_ = "+n+"\n")
	}
	sort.Strings(use)
	src := "package main\n\nimport (\n\t\"context\"\n\n\t\"github.com/edgeipc/edgeipc/shm\"\n)\n\nfunc main() {\n" +
		body + strings.Join(use, "") + "}\n"

	bin := testenv.BuildGo(t, src, "README.md's Go snippet")
	shmDir := t.TempDir()
	def, err := os.ReadFile("../runtime/default.toml")
	if err != nil {
		t.Fatal(err)
	}
	left := regexp.MustCompile(`(?m)^\[rings\.([a-z0-9_-]+)\]`).FindAllStringSubmatch(string(def), -1)
	if len(left) == 0 {
		t.Fatal("runtime/default.toml declares no [rings.NAME]: the scan is broken")
	}
	for _, m := range left {
		r, err := shm.Create(m[1], shm.Config{Slots: 8, SlotPayload: 64, Segment: shm.SegmentOptions{Dir: shmDir}})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // guards a hang only
	defer cancel()
	run := exec.CommandContext(ctx, bin)
	run.Env = append(os.Environ(), "EDGEIPC_SHM_DIR="+shmDir)
	if out, err := run.CombinedOutput(); err != nil {
		t.Fatalf("README.md's Go snippet fails: %v\n%s\n%s", err, out, src)
	}
}
