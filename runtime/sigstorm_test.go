//go:build linux

package runtime

import (
	"strings"
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

// SIGHUPs sent while a reload runs (here it waits 3 s for a child that
// ignores SIGTERM) make one more reload once it is done, which reads the
// file as it is then: not one reload each. Before, a storm queued up to 8
// (the signal channel's buffer) back-to-back reloads, which held up ctl
// reload and SIGUSR1 behind them.
func TestSIGHUPStormFoldsIntoOneReload(t *testing.T) {
	e := newEnv(t)
	text, trapped := stubbornSource(t, e)
	cfg := e.writeConfig(t, "c.toml", text("one"))
	c := startChild(t, cfg)
	c.log.waitFor(t, "source stubborn: started", 1)
	eventually(t, "child one to ignore SIGTERM", func() bool { return trapped("one") })

	e.writeConfig(t, "c.toml", text("two")) // the reload stops child one: 3 s
	c.cmd.Process.Signal(syscall.SIGHUP)
	c.log.waitFor(t, "SIGHUP: reloading", 1)
	e.writeConfig(t, "c.toml", text("three")) // what the storm's reload must read
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
	e := newEnv(t)
	text, trapped := stubbornSource(t, e)
	cfg := e.writeConfig(t, "c.toml", text("one"))
	c := startChild(t, cfg)
	c.log.waitFor(t, "source stubborn: started", 1)
	eventually(t, "child one to ignore SIGTERM", func() bool { return trapped("one") })

	e.writeConfig(t, "c.toml", text("two")) // the reload stops child one: 3 s
	c.cmd.Process.Signal(syscall.SIGHUP)
	c.log.waitFor(t, "SIGHUP: reloading", 1)
	for range 30 {
		c.cmd.Process.Signal(syscall.SIGUSR1)
		time.Sleep(10 * time.Millisecond)
	}
	e.writeConfig(t, "c.toml", text("three"))
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
