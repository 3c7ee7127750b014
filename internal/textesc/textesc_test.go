package textesc

import "testing"

func TestEscape(t *testing.T) {
	for _, tc := range []struct {
		in, control, printable string
	}{
		{"plain text, ünïcode", "plain text, ünïcode", "plain text, ünïcode"},
		{"a\tb", "a\tb", `a\tb`},
		{"line\r\nforged", `line\r\nforged`, `line\r\nforged`},
		{"\x1b[31mred", `\x1b[31mred`, `\x1b[31mred`},
		{"bad \xff byte", `bad \xff byte`, `bad \xff byte`},
		{"c1 \u0085 next", `c1 \u0085 next`, `c1 \u0085 next`},
		{"bidi \u202e txt", "bidi \u202e txt", `bidi \u202e txt`},
		{"replacement \ufffd", "replacement \ufffd", `replacement \ufffd`},
	} {
		if got := Escape(tc.in, Control); got != tc.control {
			t.Errorf("Escape(%q, Control) = %q, want %q", tc.in, got, tc.control)
		}
		if got := Escape(tc.in, NotPrintable); got != tc.printable {
			t.Errorf("Escape(%q, NotPrintable) = %q, want %q", tc.in, got, tc.printable)
		}
	}
	if n := testing.AllocsPerRun(100, func() { Escape("nothing to escape here", NotPrintable) }); n != 0 {
		t.Errorf("%v allocations for a string with nothing to escape, want 0", n)
	}
}
