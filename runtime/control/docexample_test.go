package control

import (
	"bytes"
	"encoding/hex"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestControlDocRequestExample: the request docs/control.md spells out
// byte by byte ("Example, restart cam0 (N bytes)") is what the encoder
// writes for that request, and N is its length, so that a client written
// from the page can compare its bytes with it.
func TestControlDocRequestExample(t *testing.T) {
	b, err := os.ReadFile("../../docs/control.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)Example, `restart cam0` \\((\\d+) bytes\\):\n\n```\n(.*?)\n```").FindStringSubmatch(string(b))
	if m == nil {
		t.Fatal("docs/control.md has no \"Example, `restart cam0` (N bytes):\" block")
	}
	var doc []byte
	for _, tok := range regexp.MustCompile(`"[^"]*"|\S+`).FindAllString(m[2], -1) {
		if strings.HasPrefix(tok, `"`) {
			doc = append(doc, strings.Trim(tok, `"`)...)
			continue
		}
		x, err := hex.DecodeString(tok)
		if err != nil {
			t.Fatalf("docs/control.md example: %q is neither hex nor a quoted string", tok)
		}
		doc = append(doc, x...)
	}
	req := Request{ID: 7, Cmd: "restart", Args: []string{"cam0"}, Reply: "edgeipc.reply.1234.effffffc0a1b2c3d", PID: 1234, MaxParts: 1024}
	enc, err := req.MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(doc, enc) {
		t.Errorf("docs/control.md's example request:\n%s\nthe encoder writes for %+v:\n%s", hex.Dump(doc), req, hex.Dump(enc))
	}
	if n, _ := strconv.Atoi(m[1]); n != len(enc) {
		t.Errorf("docs/control.md says the example is %s bytes; it is %d", m[1], len(enc))
	}
}
