package clients

import (
	"os"
	"regexp"
	"strings"
	"testing"
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
