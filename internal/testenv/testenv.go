// Package testenv finds the host tools some tests need (a C compiler,
// python3). Where one is missing a test skips, saying what to install —
// unless EDGEIPC_REQUIRE_TOOLS=1, which `make test` (and so CI) sets:
// there a missing tool fails the test, so that a machine set up wrong can
// never pass the suite by skipping what it cannot run.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Tool returns the path of name on $PATH. If it is missing, t skips with
// hint, or fails with it when EDGEIPC_REQUIRE_TOOLS=1.
func Tool(t testing.TB, name, hint string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("EDGEIPC_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s not found on PATH, and EDGEIPC_REQUIRE_TOOLS=1 (make test): %s", name, hint)
	}
	t.Skipf("%s not found on PATH: %s", name, hint)
	return ""
}

// CanBuild32 reports whether cc can build 32-bit x86 programs (-m32). If it
// cannot on an x86-64 host, t skips saying to install gcc-multilib, or
// fails when EDGEIPC_REQUIRE_TOOLS=1; on other hosts (no -m32 to be had)
// it skips.
func CanBuild32(t testing.TB, cc string, buildErr error, out []byte) {
	t.Helper()
	if buildErr == nil {
		return
	}
	m, _ := exec.Command(cc, "-dumpmachine").Output()
	if strings.HasPrefix(string(m), "x86_64") && os.Getenv("EDGEIPC_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s cannot build -m32, and EDGEIPC_REQUIRE_TOOLS=1 (make test): install gcc-multilib: %v\n%s", cc, buildErr, out)
	}
	t.Skipf("%s cannot build -m32 (on x86-64: install gcc-multilib): %v\n%s", cc, buildErr, out)
}

// BuildGo builds the Go program src (package main; it may import this
// module's packages, resolved from the test's directory) for this
// machine's architecture without cgo, and returns the binary's path. what
// names the program in the failure ("doc.go's snippet"); a missing go
// command skips or fails as Tool does.
func BuildGo(t testing.TB, src, what string) string {
	t.Helper()
	goTool := Tool(t, "go", "the go command builds "+what)
	dir := t.TempDir()
	file := filepath.Join(dir, "main.go")
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "snippet")
	build := exec.Command(goTool, "build", "-o", bin, file)
	build.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+runtime.GOARCH, "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%s does not build: %v\n%s\n%s", what, err, out, src)
	}
	return bin
}
