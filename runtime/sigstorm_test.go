package runtime

import (
	"syscall"
	"testing"
	"time"
)

// A SIGTERM that follows a storm of SIGHUPs sent while a reload is busy
// (stopping a child that ignores SIGTERM) must still end the runtime: the
// HUPs must not crowd it out of the signal channel.
func TestSIGTERMAfterSIGHUPStorm(t *testing.T) {
	e := newEnv(t)
	text, trapped := stubbornSource(t, e)
	cfg := e.writeConfig(t, "c.toml", text("one"))
	c := startChild(t, cfg)
	c.log.waitFor(t, "source stubborn: started", 1)
	eventually(t, "the child to ignore SIGTERM", func() bool { return trapped("one") })

	e.writeConfig(t, "c.toml", text("two")) // the reload stops the child: 3s
	c.cmd.Process.Signal(syscall.SIGHUP)
	c.log.waitFor(t, "SIGHUP: reloading", 1)
	for i := 0; i < 30; i++ {
		c.cmd.Process.Signal(syscall.SIGHUP)
		time.Sleep(10 * time.Millisecond)
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		c.done <- nil
		if code := c.cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("exit code %d", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the runtime did not exit within 30s of a SIGTERM sent after a SIGHUP storm; log:\n%s", c.log.String())
	}
}
