package release

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeipc/edgeipc/internal/testenv"
)

// unitService returns the [Service] settings of packaging/edgeipc.service:
// each key with its values in order (a key may repeat).
func unitService(t *testing.T) map[string][]string {
	t.Helper()
	return unitSection(t, "[Service]")
}

// unitSection returns the settings of one section of
// packaging/edgeipc.service, like unitService.
func unitSection(t *testing.T, want string) map[string][]string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(root, "packaging", "edgeipc.service"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "" || l[0] == '#' || l[0] == ';':
		case l[0] == '[':
			section = l
		case section == want:
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				t.Fatalf("edgeipc.service: %q is not KEY=VALUE", l)
			}
			out[strings.TrimSpace(k)] = append(out[strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestUnitNoNetworkWait: the runtime moves frames between local processes
// and opens no network connection, so the unit must not wait for (or pull
// in) network-online.target: on a device booting without a network, that
// target waits for systemd-networkd-wait-online or NetworkManager-wait-online
// to time out (2 minutes by default) and every ring, with the readers in
// other services waiting for it, came up that much later. An exec source
// whose program needs the network at start is restarted with backoff
// until it has it; docs/install.md shows the override for one that must wait.
func TestUnitNoNetworkWait(t *testing.T) {
	u := unitSection(t, "[Unit]")
	for _, k := range []string{"After", "Wants", "Requires", "BindsTo"} {
		for _, v := range u[k] {
			for _, dep := range strings.Fields(v) {
				if dep == "network-online.target" || dep == "network.target" {
					t.Errorf("[Unit] %s=%s: the runtime needs no network; a boot without one would wait for the wait-online service's timeout before any ring exists", k, v)
				}
			}
		}
	}
	if len(u["Description"]) == 0 {
		t.Errorf("[Unit] not parsed: no Description=")
	}
}

// TestUnitHardening checks the packaged unit against what docs/install.md
// and docs/operations.md promise: an unprivileged user, no privilege gain,
// a read-only system with /dev/shm writable, private /tmp, no home
// directories, IPC objects kept when the service stops (RemoveIPC=no: the
// rings' readers are other services) and shared with other processes (no
// PrivateIPC, no DynamicUser), and nothing it creates by default open to
// other users: its umask and the modes of the directories systemd makes
// for it leave out group and others (StateDirectory defaulted to 0755,
// listing the recorder files to every user; the umask 0007 gave the
// files of exec children to the edgeipc group, its readers).
func TestUnitHardening(t *testing.T) {
	u := unitService(t)
	last := func(k string) string {
		if v := u[k]; len(v) > 0 {
			return v[len(v)-1]
		}
		return ""
	}
	for k, want := range map[string]string{
		"User": "edgeipc", "Group": "edgeipc", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
		"ProtectHome": "yes", "PrivateTmp": "yes", "RemoveIPC": "no", "NotifyAccess": "main",
		"RestrictSUIDSGID": "yes",
	} {
		if got := last(k); got != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
	for _, k := range []string{"CapabilityBoundingSet", "AmbientCapabilities"} {
		if v, ok := u[k]; !ok || last(k) != "" {
			t.Errorf("%s=%v: the runtime needs no capability; set it empty", k, v)
		}
	}
	for _, k := range []string{"PrivateIPC", "DynamicUser"} {
		if v := last(k); v != "" && v != "no" {
			t.Errorf("%s=%s: other processes could no longer reach the rings and queue (docs/operations.md, systemd)", k, v)
		}
	}
	if v := last("ExecStart"); strings.HasPrefix(v, "+") || strings.HasPrefix(v, "!") {
		t.Errorf("ExecStart=%s runs with privileges the unit takes away", v)
	}
	rw := strings.Fields(strings.Join(u["ReadWritePaths"], " "))
	found := false
	for _, p := range rw {
		found = found || strings.TrimLeft(p, "-") == "/dev/shm"
	}
	if !found {
		t.Errorf("ReadWritePaths=%v lacks /dev/shm, where the rings are", rw)
	}
	for _, k := range []string{"UMask", "RuntimeDirectoryMode", "StateDirectoryMode"} {
		v := last(k)
		m, err := strconv.ParseUint(v, 8, 32)
		if err != nil {
			t.Errorf("%s=%q: set it, in octal", k, v)
			continue
		}
		switch {
		case k == "UMask" && m&0o077 != 0o077:
			t.Errorf("UMask=%s: what exec children create would be open to group or others; use 0077", v)
		case k != "UMask" && m&0o007 != 0:
			t.Errorf("%s=%s: open to every user; use 0750 or tighter", k, v)
		}
	}
}

// TestPackagingModes: nothing the package installs or its maintainer
// scripts chmod is writable by others.
func TestPackagingModes(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "packaging", "nfpm.yaml.in"))
	if err != nil {
		t.Fatal(err)
	}
	modes := regexp.MustCompile(`(?m)^\s*mode:\s*(0[0-7]+)\s*$`).FindAllStringSubmatch(string(b), -1)
	if len(modes) == 0 {
		t.Fatal("nfpm.yaml.in sets no file modes")
	}
	for _, m := range modes {
		if v, _ := strconv.ParseUint(m[1], 8, 32); v&0o022 != 0 {
			t.Errorf("nfpm.yaml.in installs a file or directory with mode %s, writable by group or others", m[1])
		}
	}
	scripts, _ := filepath.Glob(filepath.Join(root, "packaging", "scripts", "*"))
	chmod := regexp.MustCompile(`chmod\s+(-\S+\s+)*([0-7]{3,4}|\S*[+=-]\S*)\s`)
	symbolic := regexp.MustCompile(`([ugoa]*)([+=-])([rwxXst]*)`)
	for _, s := range scripts {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range chmod.FindAllStringSubmatch(string(b), -1) {
			mode := m[2]
			if v, err := strconv.ParseUint(mode, 8, 32); err == nil {
				if v&0o022 != 0 {
					t.Errorf("%s: chmod %s makes a file writable by group or others", filepath.Base(s), mode)
				}
			} else {
				for _, c := range symbolic.FindAllStringSubmatch(mode, -1) {
					if c[2] != "-" && (c[1] == "" || strings.ContainsAny(c[1], "goa")) && strings.Contains(c[3], "w") {
						t.Errorf("%s: chmod %s makes a file writable by group or others", filepath.Base(s), mode)
					}
				}
			}
		}
	}
}

// TestUnitDeviceAccess: exec sources open sensor devices (/dev/video0, a
// GPS on /dev/ttyUSB0, /dev/i2c-1, /dev/gpiochip0) through the groups of
// the edgeipc user (docs/install.md, "systemd"), so the unit must not put
// the service under a device allow-list. DeviceAllow=, a DevicePolicy=
// other than auto and PrivateDevices=yes do; so does ProtectClock=yes,
// which implies DeviceAllow=char-rtc r and, on systemd before 253 (Debian
// 11, Raspberry Pi OS bullseye, Ubuntu 22.04), thereby denies every other
// device with EPERM, whatever the file's group and mode.
func TestUnitDeviceAccess(t *testing.T) {
	u := unitService(t)
	last := func(k string) string {
		if v := u[k]; len(v) > 0 {
			return v[len(v)-1]
		}
		return ""
	}
	yes := func(v string) bool {
		switch strings.ToLower(v) {
		case "1", "yes", "y", "true", "t", "on":
			return true
		}
		return false
	}
	if v := last("ProtectClock"); yes(v) {
		t.Errorf("ProtectClock=%s implies DeviceAllow=char-rtc r: before systemd 253 exec sources then get EPERM on every device but the RTC and the pseudo devices; drop it (the empty CapabilityBoundingSet= already denies CAP_SYS_TIME)", v)
	}
	if v := last("PrivateDevices"); yes(v) {
		t.Errorf("PrivateDevices=%s hides the sensor devices exec sources read", v)
	}
	if v := u["DeviceAllow"]; len(v) > 0 && last("DeviceAllow") != "" {
		t.Errorf("DeviceAllow=%v makes the device policy an allow-list: exec sources could open no other device", v)
	}
	if v := last("DevicePolicy"); v != "" && v != "auto" {
		t.Errorf("DevicePolicy=%s denies the sensor devices exec sources read", v)
	}
}

// TestUnitCommandsEssential: the package depends on nothing, so every
// program the unit runs must be the package's own binary or come from an
// Essential package, there on every Debian system. ExecReload=/bin/kill
// was not: /bin/kill is procps's (priority important, not Essential), and
// on a minimal system (debootstrap --variant=minbase, many container and
// SD-card images) `systemctl reload edgeipc` failed to exec it. The
// reload now uses the kill built into /bin/sh (dash, Essential).
func TestUnitCommandsEssential(t *testing.T) {
	testenv.Tool(t, "dpkg-query", "the test asks dpkg which package owns each program the unit runs")
	for k, vs := range unitService(t) {
		if !strings.HasPrefix(k, "Exec") {
			continue
		}
		for _, v := range vs {
			argv := systemdArgv(t, strings.TrimLeft(v, "@-:+!|"), nil)
			if len(argv) == 0 || argv[0] == "/usr/bin/edgeipc" {
				continue
			}
			out, err := exec.Command("dpkg-query", "-S", argv[0]).Output()
			if err != nil {
				t.Errorf("%s=%s: no package owns %s here (%v)", k, v, argv[0], err)
				continue
			}
			var owners []string
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				pkgs, path, ok := strings.Cut(l, ": ")
				if !ok || strings.HasPrefix(pkgs, "diversion by ") || path != argv[0] {
					continue
				}
				owners = append(owners, strings.Split(pkgs, ", ")...)
			}
			if len(owners) == 0 {
				t.Errorf("%s=%s: dpkg names no owner of %s:\n%s", k, v, argv[0], out)
			}
			for _, p := range owners {
				ess, err := exec.Command("dpkg-query", "-W", "-f=${Essential}", p).Output()
				if err != nil || strings.TrimSpace(string(ess)) != "yes" {
					t.Errorf("%s=%s: %s comes from %s, which is not Essential (%q, %v): a system without it cannot run this command, and the package depends on nothing", k, v, argv[0], p, ess, err)
				}
			}
		}
	}
}

// TestUnitReloadSendsHUP runs the unit's ExecReload= as systemd would —
// its quoting and $VAR expansion, MAINPID in the environment — with a
// PATH that holds no program, against a real process: it must get SIGHUP.
func TestUnitReloadSendsHUP(t *testing.T) {
	u := unitService(t)
	if len(u["ExecReload"]) != 1 {
		t.Fatalf("ExecReload=%q, want one command", u["ExecReload"])
	}
	main := exec.Command("sleep", "60")
	if err := main.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- main.Wait() }()
	defer func() {
		if main.ProcessState == nil {
			main.Process.Kill()
			<-done
		}
	}()
	env := map[string]string{"MAINPID": strconv.Itoa(main.Process.Pid)}
	argv := systemdArgv(t, strings.TrimLeft(u["ExecReload"][0], "@-:+!|"), env)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = []string{"MAINPID=" + env["MAINPID"], "PATH=" + t.TempDir()}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ExecReload %q: %v\n%s", argv, err, out)
	}
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGHUP {
			t.Errorf("the main process ended with %v, want killed by SIGHUP", err)
		}
	case <-time.After(10 * time.Second): // a hang guard, not a speed check
		t.Errorf("ExecReload %q did not signal the main process", argv)
	}
}

// systemdArgv splits a unit's command line as systemd does: words, with
// '…' and "…" quoting, "$$" for a literal "$", and $NAME (a whole word)
// and ${NAME} replaced from env.
func systemdArgv(t *testing.T, line string, env map[string]string) []string {
	t.Helper()
	var argv []string
	for len(line) > 0 {
		line = strings.TrimLeft(line, " \t")
		if line == "" {
			break
		}
		var w strings.Builder
		quoted := false
		if line[0] == '\'' || line[0] == '"' {
			end := strings.IndexByte(line[1:], line[0])
			if end < 0 {
				t.Fatalf("unterminated quote in %q", line)
			}
			w.WriteString(line[1 : 1+end])
			line = line[2+end:]
			quoted = true
		} else {
			end := strings.IndexAny(line, " \t")
			if end < 0 {
				end = len(line)
			}
			w.WriteString(line[:end])
			line = line[end:]
		}
		word := w.String()
		if !quoted && strings.HasPrefix(word, "$") && !strings.HasPrefix(word, "$$") && !strings.HasPrefix(word, "${") {
			if v, ok := env[word[1:]]; ok {
				argv = append(argv, v)
				continue
			}
		}
		word = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}`).ReplaceAllStringFunc(word, func(m string) string {
			if m == "$$" {
				return "$"
			}
			return env[m[2:len(m)-1]]
		})
		argv = append(argv, word)
	}
	return argv
}
