// Package textesc escapes text that came from another process (a child's
// stderr, a control reply, a file name in /dev/shm) before it reaches a
// terminal, a table or a line-oriented log, where a carriage return, an
// escape sequence or a bidirectional override could forge or hide lines.
package textesc

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Escape returns s with each rune for which bad reports true, and each
// byte that is not UTF-8, written as Go writes it in a quoted string (\n,
// \x1b, \u202e; \xff for a stray byte). It returns s itself, without
// allocating, when there is nothing to escape.
func Escape(s string, bad func(rune) bool) string {
	i := strings.IndexFunc(s, func(r rune) bool { return r == utf8.RuneError || bad(r) })
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.WriteString(s[:i])
	for s = s[i:]; s != ""; {
		r, n := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case bad(r):
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[:n])
		}
		s = s[n:]
	}
	return b.String()
}

// Control reports the C0 and C1 control characters but tab: what a
// line-oriented log must not carry raw.
func Control(r rune) bool { return r < 0x20 && r != '\t' || r >= 0x7f && r < 0xa0 }

// NotPrintable reports what a terminal table must not carry raw: every
// character strconv.IsPrint rejects (controls, tab and newline included,
// and invisible ones such as bidirectional overrides), and U+FFFD, which
// stands for bytes that were not UTF-8.
func NotPrintable(r rune) bool { return r == utf8.RuneError || !strconv.IsPrint(r) }
