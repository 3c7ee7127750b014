package release

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPreinstRefusesCPU runs packaging/scripts/preinst, as dpkg would,
// with DPKG_MAINTSCRIPT_ARCH set and a uname first in PATH that reports
// the CPU of the case: no ARM shell is at hand, and the script asks only
// uname. The armhf build (GOARM=7) must be refused on ARMv6 (a Pi Zero on
// Raspberry Pi OS, whose dpkg says armhf); the armel build (GOARM=6, VFP)
// on ARMv5 (Kirkwood boards on Debian armel), where the Go runtime
// refuses to start and the service would fail in a loop; every build on
// a CPU that can run it must install.
func TestPreinstRefusesCPU(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(root, "packaging", "scripts", "preinst")
	for _, c := range []struct {
		arch, cpu string
		refuse    string // "" to install
	}{
		{"armhf", "armv7l", ""},
		{"armhf", "aarch64", ""}, // a 32-bit userland on a 64-bit kernel
		{"armhf", "armv6l", "install the armel (ARMv6) package instead"},
		{"armel", "armv6l", ""},
		{"armel", "armv7l", ""},
		{"armel", "armv5tel", "this CPU is armv5tel, which cannot run it"},
		{"armel", "armv5tejl", "ARMv5 boards are not supported"},
		{"armel", "armv4tl", "this CPU is armv4tl"},
		{"arm64", "aarch64", ""},
		{"amd64", "x86_64", ""},
	} {
		t.Run(c.arch+"-"+c.cpu, func(t *testing.T) {
			bin := t.TempDir()
			if err := os.WriteFile(filepath.Join(bin, "uname"), []byte("#!/bin/sh\necho "+c.cpu+"\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("/bin/sh", script, "install")
			cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "DPKG_MAINTSCRIPT_ARCH="+c.arch)
			out, err := cmd.CombinedOutput()
			switch {
			case c.refuse == "" && err != nil:
				t.Errorf("preinst refused %s on %s: %v\n%s", c.arch, c.cpu, err, out)
			case c.refuse != "" && err == nil:
				t.Errorf("preinst installed %s on %s, which cannot run it\n%s", c.arch, c.cpu, out)
			case c.refuse != "" && !strings.Contains(string(out), c.refuse):
				t.Errorf("preinst refused %s on %s without saying %q:\n%s", c.arch, c.cpu, c.refuse, out)
			}
		})
	}
}
