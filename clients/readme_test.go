package clients

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/edgeipc/edgeipc/internal/testenv"
	"github.com/edgeipc/edgeipc/shm"
)

// TestREADMEListsEveryTest: the test table of clients/README.md, which
// says what the C and Python clients are checked for, names every test of
// this package, and no test that is gone.
func TestREADMEListsEveryTest(t *testing.T) {
	src, err := os.ReadFile("clients_test.go")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^func (Test[A-Za-z0-9_]+)\(t \*testing\.T\)`).FindAllStringSubmatch(string(src), -1) {
		tests[m[1]] = true
	}
	if len(tests) < 10 {
		t.Fatalf("found only %d tests in clients_test.go", len(tests))
	}
	_, table, _ := strings.Cut(string(readme), "| test | checks |")
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile("`(Test[A-Za-z0-9_]+)`").FindAllStringSubmatch(table, -1) {
		listed[m[1]] = true
	}
	for name := range tests {
		if !listed[name] {
			t.Errorf("clients/README.md's test table does not list %s", name)
		}
	}
	for name := range listed {
		if !tests[name] {
			t.Errorf("clients/README.md lists %s, which clients_test.go does not have", name)
		}
	}
}

// readmeBlock returns the first ```lang code block of clients/README.md
// after the heading section.
func readmeBlock(t *testing.T, readme, section, lang string) string {
	t.Helper()
	_, rest, ok := strings.Cut(readme, "\n"+section+"\n")
	if !ok {
		t.Fatalf("clients/README.md has no %q", section)
	}
	_, rest, ok = strings.Cut(rest, "\n```"+lang+"\n")
	if !ok {
		t.Fatalf("clients/README.md, %s: no ```%s block", section, lang)
	}
	block, _, ok := strings.Cut(rest, "\n```\n")
	if !ok {
		t.Fatalf("clients/README.md, %s: the ```%s block does not end", section, lang)
	}
	return block + "\n"
}

// TestREADMESnippetsRun: the C and Python snippets of clients/README.md,
// as written, build and run against a ring that Go created under the name
// they use: each reads (nothing comes, so its 1 s wait times out), then
// opens the ring as a writer and publishes one frame. The C snippet's
// elided error handling ("...") becomes "return 1;"; data and len, which
// it leaves to the program, are declared before it.
func TestREADMESnippetsRun(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, lang := range []string{"c", "python"} {
		t.Run(lang, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // guards a hang only
			defer cancel()
			var cmd *exec.Cmd
			switch lang {
			case "c":
				cc := testenv.Tool(t, "cc", "install gcc to test clients/c")
				var head, body strings.Builder
				for _, l := range strings.SplitAfter(readmeBlock(t, readme, "## C", "c"), "\n") {
					if strings.HasPrefix(l, "#include") {
						head.WriteString(l)
					} else {
						body.WriteString(strings.ReplaceAll(l, "...", "return 1;"))
					}
				}
				src := head.String() + "int main(void)\n{\nstatic const uint8_t data[] = \"readme\";\nuint32_t len = sizeof data - 1;\n" + body.String() + "return 0;\n}\n"
				dir := t.TempDir()
				file := filepath.Join(dir, "snippet.c")
				if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
					t.Fatal(err)
				}
				bin := filepath.Join(dir, "snippet")
				if out, err := exec.Command(cc, "-Wall", "-Werror", "-Wno-unused", "-std=c11", "-I", "c", "-o", bin, file).CombinedOutput(); err != nil {
					t.Fatalf("the C snippet of clients/README.md does not build: %v\n%s\n%s", err, out, src)
				}
				cmd = exec.CommandContext(ctx, bin)
			case "python":
				py := testenv.Tool(t, "python3", "install python3 to test clients/python")
				cmd = exec.CommandContext(ctx, py, "-c", readmeBlock(t, readme, "## Python", "python"))
				cmd.Dir = "python" // "clients/python on PYTHONPATH"
			}
			dir := t.TempDir()
			r, err := shm.Create("cam0", shm.Config{Slots: 8, SlotPayload: 64, Segment: shm.SegmentOptions{Dir: dir}})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			cmd.Env = append(os.Environ(), "EDGEIPC_SHM_DIR="+dir)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("the %s snippet of clients/README.md failed: %v\n%s", lang, err, out)
			}
			if in := r.Inspect(); in.Frames != 1 || in.WriterPID != 0 || len(in.Readers) != 0 {
				t.Fatalf("after the %s snippet: %d frames written (want 1), writer pid %d, readers %+v (want the lease and the entry given back)", lang, in.Frames, in.WriterPID, in.Readers)
			}
		})
	}
}
