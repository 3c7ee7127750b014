package runtime

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A configuration file that someone other than root and the runtime's
// user could change is refused, at start (Load, edgeipc run -c, --check)
// and in a reload: it names the programs the runtime runs as its own user
// (exec sources) and the files it creates, so whoever may write it, or
// replace it in its directory, may act as the runtime. The runtime read
// any file it could open.
func TestConfigTrust(t *testing.T) {
	const text = "[control]\nenabled = false\n[rings.r]\nslots = 8\nslot_payload = 64\n"
	root := os.Geteuid() == 0
	for _, tc := range []struct {
		name     string
		mode     os.FileMode // of the file
		dirMode  os.FileMode // of its directory
		uid      int         // of the file, -1: ours
		dirUID   int         // of the directory, -1: ours
		needRoot bool
		group    bool   // only its group may write: fine for a user private group
		want     string // "" = accepted
	}{
		{name: "ours", mode: 0o644, dirMode: 0o755, uid: -1, dirUID: -1},
		{name: "owner only", mode: 0o600, dirMode: 0o700, uid: -1, dirUID: -1},
		{name: "world-writable", mode: 0o646, dirMode: 0o755, uid: -1, dirUID: -1, want: "writable by every user"},
		{name: "group-writable", mode: 0o664, dirMode: 0o755, uid: -1, dirUID: -1, group: true, want: "writable by its group"},
		{name: "dir world-writable", mode: 0o644, dirMode: 0o777, uid: -1, dirUID: -1, want: "chmod go-w"},
		{name: "dir group-writable", mode: 0o644, dirMode: 0o775, uid: -1, dirUID: -1, group: true, want: "may write"},
		{name: "sticky dir", mode: 0o644, dirMode: 0o777 | os.ModeSticky, uid: -1, dirUID: -1},
		{name: "another user's", mode: 0o644, dirMode: 0o755, uid: 65534, dirUID: -1, needRoot: true, want: "belongs to uid 65534"},
		{name: "another user's dir", mode: 0o644, dirMode: 0o755, uid: -1, dirUID: 65534, needRoot: true, want: "which belongs to uid 65534"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.needRoot && !root {
				t.Skip("giving a file to another user needs root")
			}
			dir := filepath.Join(t.TempDir(), "conf")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, "rt.toml")
			if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			set := func(p string, mode os.FileMode, uid int) {
				t.Helper()
				if uid >= 0 {
					if err := os.Chown(p, uid, -1); err != nil {
						t.Fatal(err)
					}
				}
				if err := os.Chmod(p, mode); err != nil {
					t.Fatal(err)
				}
			}
			set(file, tc.mode, tc.uid)
			set(dir, tc.dirMode, tc.dirUID)
			want := tc.want
			if tc.group && privateGroup(uint32(os.Geteuid()), uint32(os.Getegid())) {
				want = "" // our files are in our private group (umask 002 systems)
			}
			for _, load := range []struct {
				name string
				f    func(string) (*Config, error)
			}{{"Load", Load}, {"reload", loadForReload}} {
				_, err := load.f(file)
				switch {
				case want == "" && err != nil:
					t.Errorf("%s: %v, want it accepted", load.name, err)
				case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
					t.Errorf("%s: %v, want a refusal saying %q", load.name, err, want)
				}
			}
		})
	}
}

// A reload of a configuration file that became writable by others is
// refused, and the runtime keeps running the configuration it has.
func TestReloadRefusesUntrustedConfig(t *testing.T) {
	e := newEnv(t)
	file := e.writeConfig(t, "rt.toml", "[control]\nenabled = false\n[rings.a]\nslots = 8\nslot_payload = 64\n")
	cfg, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	rt, _, _ := inprocConfig(t, cfg)
	if err := os.WriteFile(file, []byte("[control]\nenabled = false\n[rings.a]\nslots = 8\nslot_payload = 64\n[rings.b]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(file, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := rt.Reload(); err == nil || !strings.Contains(err.Error(), "writable by every user") {
		t.Fatalf("reload of a world-writable config: %v, want a refusal", err)
	}
	if n := len(rt.Rings()); n != 1 {
		t.Fatalf("%d rings after the refused reload, want 1", n)
	}
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := rt.Reload(); err != nil {
		t.Fatalf("reload once the file is the owner's alone again: %v", err)
	}
	if n := len(rt.Rings()); n != 2 {
		t.Fatalf("%d rings after the reload, want 2", n)
	}
}

// privateGroup recognises a user private group (the user's primary group,
// named as the user): group write on a configuration file of that group
// gives nobody else access, and is accepted where the umask is 002. Group
// root never counts.
func TestPrivateGroup(t *testing.T) {
	if privateGroup(0, 0) {
		t.Error("group root taken for root's private group")
	}
	for _, name := range []string{"daemon", "bin", "sys", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		g, err := user.LookupGroupId(u.Gid)
		if err != nil || g.Name != u.Username {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if !privateGroup(uint32(uid), uint32(gid)) {
			t.Errorf("%s's primary group %s (gid %d) not taken for its private group", name, g.Name, gid)
		}
		if privateGroup(uint32(uid), uint32(gid)+1) {
			t.Errorf("gid %d taken for %s's private group", gid+1, name)
		}
		return
	}
	t.Skip("no user whose primary group has its name")
}
