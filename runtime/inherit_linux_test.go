package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeipc/edgeipc/shm"
)

// An exec child gets stdin, stdout and stderr and no other descriptor of
// the runtime, also none that the runtime's process holds without
// close-on-exec (inherited from the shell or service manager that started
// it, or opened by a program embedding the runtime): such a descriptor went
// on to every child, which could read or write the file behind it.
func TestExecChildInheritsOnlyStdio(t *testing.T) {
	e := newEnv(t)
	secret := filepath.Join(e.dir, "inherited-secret")
	if err := os.WriteFile(secret, []byte("not for children\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// syscall.Open, unlike os.Open, does not add O_CLOEXEC: this is a
	// descriptor as a parent process hands it down.
	fd, err := syscall.Open(secret, syscall.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	script := writeScript(t, e.dir, "fds.sh", `
find /proc/$$/fd -mindepth 1 -printf '%f %l\n'
echo end
exec sleep 1000
`)
	inproc(t, fmt.Sprintf(`
[control]
enabled = false
[runtime]
stats_interval = "0s"
[rings.r]
slots = 64
slot_payload = 4096
[[sources]]
name = "fds"
kind = "exec"
ring = "r"
command = [%q]
`, script))
	rd, err := shm.OpenReader("r", e.sopts(), &shm.ReaderOptions{From: shm.Oldest})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var fds []string
	buf := make([]byte, rd.Ring().SlotPayload())
	deadline := time.Now().Add(wait)
	for {
		f, err := rd.ReadIntoDeadline(deadline, buf)
		if err != nil {
			t.Fatalf("reading the child's list of descriptors (%q so far): %v", fds, err)
		}
		if string(f.Data) == "end" {
			break
		}
		fds = append(fds, string(f.Data))
	}
	var leaked []string
	for _, l := range fds {
		n, target, _ := strings.Cut(l, " ")
		switch {
		case target == secret:
			leaked = append(leaked, l)
		case n == "0" || n == "1" || n == "2":
		case strings.HasSuffix(target, "fds.sh"): // the shell reading its script
		default:
			leaked = append(leaked, l)
		}
	}
	if len(leaked) > 0 {
		t.Fatalf("the child holds descriptors besides stdin, stdout, stderr (and its script): %s (the runtime's fd %d is %s)",
			strings.Join(leaked, ", "), fd, secret)
	}
	if len(fds) < 3 {
		t.Fatalf("the child listed %d descriptors (%q): is /proc mounted?", len(fds), fds)
	}
}
