//go:build linux

package runtime

import (
	"fmt"
	"strings"
	"testing"
)

// TestExecLinesPartialAtEOF: a lines-framed exec child whose stdout ends in
// the middle of a line (it was killed, or died, while writing it) does not
// get the cut-short line into the ring: it is dropped and counted as bad,
// as a cut-short len32 record is (TestRuntimeSoak found such lines as
// frames that failed their checksum).
func TestExecLinesPartialAtEOF(t *testing.T) {
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
