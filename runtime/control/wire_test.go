package control

import (
	"encoding/hex"
	"fmt"
	"reflect"
	"testing"

	"github.com/tinylib/msgp/msgp"
)

// subsumes returns "" if now holds everything was holds (maps may have
// more keys), else where it differs.
func subsumes(now, was any, at string) string {
	switch w := was.(type) {
	case map[string]any:
		n, ok := now.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: %T, was a map", at, now)
		}
		for k, v := range w {
			nv, ok := n[k]
			if !ok {
				return fmt.Sprintf("%s.%s: missing", at, k)
			}
			if why := subsumes(nv, v, at+"."+k); why != "" {
				return why
			}
		}
		return ""
	case []any:
		n, ok := now.([]any)
		if !ok || len(n) != len(w) {
			return fmt.Sprintf("%s: %v, was %v", at, now, was)
		}
		for i := range w {
			if why := subsumes(n[i], w[i], fmt.Sprintf("%s[%d]", at, i)); why != "" {
				return why
			}
		}
		return ""
	}
	if !reflect.DeepEqual(now, was) {
		return fmt.Sprintf("%s: %v (%T), was %v (%T)", at, now, now, was, was)
	}
	return ""
}

// TestReplyWireCompatible: the protocol grows by additions only. Every key
// of the golden encodings (made by the encoder generated before the sinks
// command and the rings' state and last_error existed) is still encoded,
// in a map at the same place, with the same value, so clients written
// before them read newer replies (msgp skips keys it does not know); and a
// newer client reads the older replies. Reply.Sinks is omitted when nil.
func TestReplyWireCompatible(t *testing.T) {
	for _, tc := range []struct {
		r      Reply
		golden string
	}{
		{Reply{ID: 7, OK: true, Rings: []RingStat{{Name: "r", Slots: 4}}, Sources: []SourceStat{{Name: "s", State: "running"}}},
			"88a2696407a26f6bc3a56572726f72a0a4636f6465a0a6737461747573c0a572696e6773918ca46e616d65a172a5736c6f747304ac736c6f745f7061796c6f616400a6706f6c696379a0a66672616d657300a5627974657300a7726174655f687acb0000000000000000ab62797465735f7065725f73cb0000000000000000a77265616465727300a76d61785f6c616700a46c6f737400a4746f726e00a7736f7572636573918ca46e616d65a173a46b696e64a0a472696e67a0a57374617465a772756e6e696e67a370696400a8726573746172747300a96c6173745f65786974a0a66672616d657300a5627974657300a362616400ad64726f707065645f627974657300aa6c6173745f6572726f72a0a46d6f7265c2"},
		{Reply{ID: 9, Code: CodeNotFound, Error: "x", More: true},
			"88a2696409a26f6bc2a56572726f72a178a4636f6465a96e6f745f666f756e64a6737461747573c0a572696e677390a7736f757263657390a46d6f7265c3"},
	} {
		b, err := tc.r.MarshalMsg(nil)
		if err != nil {
			t.Fatal(err)
		}
		old, _ := hex.DecodeString(tc.golden)
		was, _, err := msgp.ReadIntfBytes(old)
		if err != nil {
			t.Fatal(err)
		}
		now, _, err := msgp.ReadIntfBytes(b)
		if err != nil {
			t.Fatal(err)
		}
		if why := subsumes(now, was, "reply"); why != "" {
			t.Errorf("Reply %+v encodes as\n%s\nwhich is not the older\n%s\nwith keys added: %s", tc.r, hex.EncodeToString(b), tc.golden, why)
		}
		var back Reply
		if left, err := back.UnmarshalMsg(old); err != nil || len(left) > 0 || back.Sinks != nil || back.ID != tc.r.ID || back.More != tc.r.More {
			t.Errorf("the old encoding decodes as %+v (%d bytes left, %v)", back, len(left), err)
		}
	}
	// A sinks reply round-trips. (Clients written before the command never
	// get one: an older runtime answers "sinks" with unknown_command.)
	r := Reply{ID: 3, OK: true, Sinks: []SinkStat{{Name: "rec", Kind: "recorder", Ring: "r", State: "backoff", Path: "/x", Frames: 1, Bytes: 2, Lost: 3, Skipped: 4, Restarts: 5, LastError: "e"}, {Name: "stats:r", Implicit: true}}}
	b, err := r.MarshalMsg(nil)
	if err != nil {
		t.Fatal(err)
	}
	var back Reply
	if _, err := back.UnmarshalMsg(b); err != nil || !reflect.DeepEqual(back.Sinks, r.Sinks) {
		t.Fatalf("sinks reply round trip: %+v, %v", back.Sinks, err)
	}
}
