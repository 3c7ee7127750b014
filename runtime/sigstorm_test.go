//go:build linux

package runtime

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// busyReload starts a child runtime whose source's child ignores SIGTERM,
// and a reload that stops it: the reload is busy for the source's 3 s
// stop_timeout when it returns. write writes the config with the child's
// tag ("three"), and trapped says whether the child of that tag runs (and
// ignores SIGTERM).
func busyReload(t *testing.T) (c *child, cfg string, write func(tag string), trapped func(tag string) bool) {
	t.Helper()
	e := newEnv(t)
	text, trapped := stubbornSource(t, e)
	cfg = e.writeConfig(t, "c.toml", text("one"))
	c = startChild(t, cfg)
	c.log.waitFor(t, "source stubborn: started", 1)
	eventually(t, "child one to ignore SIGTERM", func() bool { return trapped("one") })
	write = func(tag string) { e.writeConfig(t, "c.toml", text(tag)) }
	write("two") // the reload stops child one: 3 s
	c.cmd.Process.Signal(syscall.SIGHUP)
	c.log.waitFor(t, "SIGHUP: reloading", 1)
	return c, cfg, write, trapped
}

// A SIGTERM that follows a storm of SIGHUPs sent while a reload is busy
// (stopping a child that ignores SIGTERM) must still end the runtime: the
// HUPs must not crowd it out of the signal channel.
func TestSIGTERMAfterSIGHUPStorm(t *testing.T) {
	c, _, _, _ := busyReload(t)
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

// SIGHUPs sent while a reload runs (here it waits 3 s for a child that
// ignores SIGTERM) make one more reload once it is done, which reads the
// file as it is then: not one reload each. Before, a storm queued up to 8
// (the signal channel's buffer) back-to-back reloads, which held up ctl
// reload and SIGUSR1 behind them.
func TestSIGHUPStormFoldsIntoOneReload(t *testing.T) {
	c, cfg, write, trapped := busyReload(t)
	write("three") // what the storm's reload must read
	for range 30 {
		c.cmd.Process.Signal(syscall.SIGHUP)
		time.Sleep(10 * time.Millisecond)
	}
	if strings.Contains(c.log.String(), "reloaded "+cfg) {
		t.Skip("the first reload ended before the storm did: nothing to fold")
	}
	c.log.waitFor(t, "reloaded "+cfg, 2)
	eventually(t, "child three to run", func() bool { return trapped("three") })
	// A SIGUSR1 now is handled after any reloads still queued: its
	// snapshot line marks the end of them.
	c.cmd.Process.Signal(syscall.SIGUSR1)
	c.log.waitFor(t, "source stubborn exec", 1)
	if n := strings.Count(c.log.String(), "reloaded "+cfg); n != 2 {
		t.Fatalf("%d reloads for a SIGHUP and a storm of 30 during its reload, want 2; log:\n%s", n, c.log.String())
	}
	c.log.waitFor(t, "during the reload): reloading the configuration once more", 1)
	c.cmd.Process.Signal(syscall.SIGTERM)
	if code := c.exit(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// A SIGHUP sent after a storm of SIGUSR1s, while a reload is busy, is not
// lost: the USR1s (one snapshot is as good as many) must not crowd it out
// of the signal channel, or the configuration it asks for is never read.
func TestSIGHUPAfterSIGUSR1Storm(t *testing.T) {
	c, cfg, write, trapped := busyReload(t)
	for range 30 {
		c.cmd.Process.Signal(syscall.SIGUSR1)
		time.Sleep(10 * time.Millisecond)
	}
	write("three")
	c.cmd.Process.Signal(syscall.SIGHUP)
	if strings.Contains(c.log.String(), "reloaded "+cfg) {
		t.Skip("the first reload ended before the storm did")
	}
	c.log.waitFor(t, "reloaded "+cfg, 1)
	eventually(t, "child three to run (the SIGHUP after the storm reloaded)", func() bool { return trapped("three") })
	c.cmd.Process.Signal(syscall.SIGTERM)
	if code := c.exit(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}
