//go:build linux

package runtime

import (
	"strings"
	"testing"
)

// A child's stderr line goes into the text log with its control bytes and
// bytes that are not UTF-8 escaped: a carriage return followed by a forged
// line, or an escape sequence, must not rewrite the log in a terminal or
// for a reader that splits on \r. The JSON log escapes them already.
func TestTextLogEscapesChildControlBytes(t *testing.T) {
	e := newEnv(t)
	script := writeScript(t, e.dir, "noisy.sh", `printf 'a\rFAKE 12:00:00.000 ERROR forged\033[2J\000\377 end\ttab\n' >&2
exec sleep 1000
`)
	_, logb, _ := inproc(t, execConfig("noisy", script))
	want := `[noisy] a\rFAKE 12:00:00.000 ERROR forged\x1b[2J\x00\xff end` + "\ttab"
	logb.waitFor(t, want, 1)
	if s := logb.String(); strings.ContainsAny(s, "\r\x1b\x00") || !strings.Contains(s, want+" source=noisy stream=stderr\n") {
		t.Fatalf("log: %q", s)
	}
}
