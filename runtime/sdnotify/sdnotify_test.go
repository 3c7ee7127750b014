package sdnotify

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 256)
	n, err := c.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(b[:n])
}

func TestNotifyPath(t *testing.T) {
	p := filepath.Join(t.TempDir(), "notify")
	c := listen(t, p)
	n := New(p)
	if err := n.Notify(Reloading, "MONOTONIC_USEC=5"); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, c); got != "RELOADING=1\nMONOTONIC_USEC=5" {
		t.Fatalf("got %q", got)
	}
}

func TestNotifyAbstract(t *testing.T) {
	name := "edgeipc-sdnotify-test-" + strconv.Itoa(os.Getpid())
	c := listen(t, "\x00"+name)
	if err := New("@" + name).Notify(Ready); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, c); got != Ready {
		t.Fatalf("got %q", got)
	}
}

func TestDisabled(t *testing.T) {
	var n *Notifier
	if n.Enabled() || n.Notify(Ready) != nil || New("").Notify(Ready) != nil {
		t.Fatal("disabled notifier should be a no-op")
	}
}

func TestWatchdogInterval(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "4000000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	if d := WatchdogInterval(); d != 4*time.Second {
		t.Fatalf("got %v", d)
	}
	t.Setenv("WATCHDOG_PID", "1")
	if d := WatchdogInterval(); d != 0 {
		t.Fatalf("other pid: got %v", d)
	}
	t.Setenv("WATCHDOG_USEC", "")
	if d := WatchdogInterval(); d != 0 {
		t.Fatalf("unset: got %v", d)
	}
}

// Status keeps the text on one line (a newline would start another
// assignment) and bounded.
func TestStatus(t *testing.T) {
	if got := Status("running: 1 ring"); got != "STATUS=running: 1 ring" {
		t.Errorf("Status = %q", got)
	}
	if got := Status("reload failed: c.toml:3: bad\nREADY=1\r\x7f"); got != "STATUS=reload failed: c.toml:3: bad READY=1  " {
		t.Errorf("Status = %q", got)
	}
	long := Status(strings.Repeat("é", 300))
	if len(long) > len("STATUS=")+MaxStatus || !strings.HasSuffix(long, "é…") || !utf8.ValidString(long) {
		t.Errorf("Status of 600 bytes = %q (%d bytes)", long, len(long))
	}
}
