//go:build linux

package sched_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/edgeipc/edgeipc/internal/testenv"
)

// TestPackageDocSnippetRuns: the sensor loop of doc.go, as written, builds
// against sched and shm and runs: paced by its Ticker, it publishes frames
// into a ring in a private segment directory until its context ends, and
// returns the context's error.
func TestPackageDocSnippetRuns(t *testing.T) {
	b, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "//\tfunc sensorLoop(")
	if !ok {
		t.Fatal("doc.go has no sensorLoop snippet")
	}
	var code []string
	for _, l := range strings.Split("//\tfunc sensorLoop("+rest, "\n") {
		c, ok := strings.CutPrefix(l, "//\t")
		if !ok {
			break
		}
		code = append(code, c)
	}
	src := `package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/edgeipc/edgeipc/sched"
	"github.com/edgeipc/edgeipc/shm"
)

` + strings.Join(code, "\n") + `

func main() {
	r, err := shm.Create("sensor", shm.Config{Slots: 64, SlotPayload: 64})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer shm.Remove("sensor", nil)
	defer r.Close()
	w, err := r.NewWriter()
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error)
	go func() { done <- sensorLoop(ctx, w, func() []byte { return []byte("sample") }) }()
	fmt.Println("loop:", <-done)
	fmt.Println("published:", w.Seq() > 0)
}
`
	bin := testenv.BuildGo(t, src, "doc.go's snippet")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // guards a hang only
	defer cancel()
	run := exec.CommandContext(ctx, bin)
	run.Env = append(os.Environ(), "EDGEIPC_SHM_DIR="+t.TempDir())
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("doc.go's snippet fails: %v\n%s", err, out)
	}
	var got []string // without the loop's log of missed periods, which load may cause
	for _, l := range strings.SplitAfter(string(out), "\n") {
		if !strings.Contains(l, "sensor loop fell") {
			got = append(got, l)
		}
	}
	if want := "loop: context deadline exceeded\npublished: true\n"; strings.Join(got, "") != want {
		t.Fatalf("doc.go's snippet printed\n%s\nwant\n%s", out, want)
	}
}
