package control

import (
	"reflect"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to what the control plane decodes from
// other processes: a request as the server reads it (and salvage, which
// digs the id and reply queue out of one that did not decode), and a
// reply part as the client reads it. Nothing may panic; a request that
// decodes must survive a re-encode unchanged; salvage may only name a
// reply queue that matches the reply-queue pattern.
func FuzzDecode(f *testing.F) {
	seed := func(v interface{ MarshalMsg([]byte) ([]byte, error) }) {
		b, err := v.MarshalMsg(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(&Request{ID: 7, Cmd: "status", Reply: "edgeipc.reply.42.00ff", PID: 42})
	seed(&Request{ID: 1, Cmd: "start", Args: []string{"imu"}, Reply: "edgeipc.reply.1.ab"})
	seed(&Reply{ID: 7, OK: true, Status: &StatusInfo{}, Rings: []RingStat{{}}, Sources: []SourceStat{{}}})
	seed(&Reply{ID: 8, OK: true, Sinks: []SinkStat{{Name: "stats:r", Implicit: true}, {Kind: "recorder", Path: "/x"}}, More: true})
	seed(&Reply{ID: 3, Code: CodeBadRequest, Error: "no", More: true})
	f.Add([]byte("\x82\xa2id\x05\xa5reply\xb5edgeipc.reply.9.0a0a\xc1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var req Request
		if left, err := req.UnmarshalMsg(b); err == nil && len(left) == 0 {
			enc, err := req.MarshalMsg(nil)
			if err != nil {
				t.Fatalf("decoded request %+v does not encode: %v", req, err)
			}
			var again Request
			if _, err := again.UnmarshalMsg(enc); err != nil || !reflect.DeepEqual(norm(req), norm(again)) {
				t.Fatalf("request %+v re-decoded as %+v (%v)", req, again, err)
			}
		}
		if _, reply := salvage(b); reply != "" && !replyPattern.MatchString(reply) {
			t.Fatalf("salvage named reply queue %q, which does not match %v", reply, replyPattern)
		}
		var rep Reply
		rep.UnmarshalMsg(b)
	})
}

// norm treats an empty Args like a missing one (msgp decodes both as
// equal-length slices, but nil and empty differ for DeepEqual).
func norm(r Request) Request {
	if len(r.Args) == 0 {
		r.Args = nil
	}
	return r
}
