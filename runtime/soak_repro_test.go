//go:build linux && soakrepro

package runtime

import (
	"fmt"
	"strings"
	"testing"
)

// Reproduction (build tag soakrepro; it fails until the behaviour is
// decided and fixed) of what TestRuntimeSoak found on a lines-framed exec
// source: when the child's stdout ends in the middle of a line (the child
// was killed, or died, while writing it), the cut-short line is written to
// the ring as a frame. docs/config.md promises "one frame per
// \n-terminated line", and runExec's pump means to drop and count a record
// cut short by the end of stdout (TestExecPartialRecordAtEOF checks that
// for len32), but framing's lines decoder returns a final line without a
// newline as a record at EOF (framing.TestLines expects "last"), so the
// pump never sees the partial bytes. The soak's readers saw it as frames
// that fail their checksum: 12 of them in a 3-minute run, one per child
// that ended with a partial line.
//
//	go test -tags soakrepro -run SoakRepro ./runtime
func TestSoakReproExecLinesPartialAtEOF(t *testing.T) {
	e := newEnv(t)
	// One complete line, then a line cut short, then exit 0 (as if the
	// child died in the middle of its write).
	script := writeScript(t, e.dir, "partial.sh", "printf 'one\\ntw'\nexit 0\n")
	rt, _, _ := inproc(t, fmt.Sprintf(`
[control]
enabled = false
[runtime]
stats_interval = "0s"
[rings.r]
slots = 16
slot_payload = 64
[[sources]]
name = "partial"
kind = "exec"
ring = "r"
framing = "lines"
restart = "never"
command = [%q]
`, script))
	eventually(t, "the child to finish", func() bool { return rt.sourceStat(t, "partial").State == StateStopped })
	st := rt.sourceStat(t, "partial")
	var got []string
	for _, f := range readFrames(t, e, "r", int(st.Frames)) {
		got = append(got, string(f.Data))
	}
	if st.Frames != 1 || st.Bad != 1 || !strings.Contains(st.LastError, "middle of a record") {
		t.Fatalf("frames %q, stat %+v; want the frame \"one\" only and the cut-short line \"tw\" dropped and counted as bad", got, st)
	}
}
