//go:build linux

package shm_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/edgeipc/edgeipc/internal/testenv"
)

// TestPackageDocSnippetRuns: the producer and consumer of doc.go's
// "Getting started", as written, build against this package and run, in a
// private segment directory: the producer publishes three samples, the
// consumer prints them and returns the error of its context's end.
func TestPackageDocSnippetRuns(t *testing.T) {
	b, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "// # Getting started\n")
	if !ok {
		t.Fatal(`doc.go has no "# Getting started" section`)
	}
	section, _, ok := strings.Cut(rest, "\n// #")
	if !ok {
		t.Fatal(`doc.go: no section follows "# Getting started"`)
	}
	var code []string
	for _, l := range strings.Split(section, "\n") {
		if c, ok := strings.CutPrefix(l, "//\t"); ok {
			code = append(code, c)
		} else if l == "//" && len(code) > 0 {
			code = append(code, "")
		}
	}
	if len(code) == 0 {
		t.Fatal(`doc.go's "Getting started" has no code`)
	}
	src := `package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/edgeipc/edgeipc/shm"
)

` + strings.Join(code, "\n") + `

func main() {
	samples := make(chan []byte, 3)
	for _, s := range []string{"a", "bb", "ccc"} {
		samples <- []byte(s)
	}
	close(samples)
	if err := produce(samples); err != nil {
		fmt.Println("produce:", err)
		return
	}
	defer shm.Remove("accel", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	fmt.Println("consume:", consume(ctx))
}
`
	bin := testenv.BuildGo(t, src, "doc.go's snippet")
	shmDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // guards a hang only
	defer cancel()
	run := exec.CommandContext(ctx, bin)
	run.Env = append(os.Environ(), "EDGEIPC_SHM_DIR="+shmDir)
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("doc.go's snippet fails: %v\n%s", err, out)
	}
	want := "frame 0: \"a\"\nframe 1: \"bb\"\nframe 2: \"ccc\"\nconsume: context deadline exceeded\n"
	if string(out) != want {
		t.Fatalf("doc.go's snippet printed\n%s\nwant\n%s", out, want)
	}
	if left, _ := os.ReadDir(shmDir); len(left) != 0 {
		t.Fatalf("the snippet left %d files in its segment directory", len(left))
	}
}
