package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRemoveStale checks which segment directories a bench removes when it
// starts: one whose lock is free and whose owner file says its bench took
// it (a dead bench's: the kernel drops a dead process's locks, as closing
// the descriptor does here), and none of these: a live bench's (locked), a
// directory without the owner file (a bench between making it and locking
// it, or an older edgeipc's), another user's (as root), a symbolic link,
// and what is not named edgeipc-bench-*. TestBenchKilled in internal/cli does it with real
// processes.
func TestRemoveStale(t *testing.T) {
	base := t.TempDir()
	live, liveLock, err := makeSegDir(base, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer liveLock.Close()
	dead, deadLock, err := makeSegDir(base, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dead, "bench-1-1-rpp.ping"), []byte("ring"), 0o600); err != nil {
		t.Fatal(err)
	}
	deadLock.Close()
	young := filepath.Join(base, segDirPrefix+"young") // no owner file
	other := filepath.Join(base, "other")
	target := t.TempDir() // a dead bench's, but reached through a link
	for _, d := range []string{young, other} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{other, target} {
		if err := os.WriteFile(filepath.Join(d, ownerFile), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A dead bench's directory of another user: left, even by root.
	foreign := filepath.Join(base, segDirPrefix+"foreign")
	if os.Geteuid() == 0 {
		if err := os.Mkdir(foreign, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(foreign, ownerFile), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(foreign, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	} else {
		foreign = target
		t.Log("not root: another user's directory is not tried (a non-root bench cannot open it anyway)")
	}
	link := filepath.Join(base, segDirPrefix+"link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}

	var msg bytes.Buffer
	removeStale(base, &msg)
	if _, err := os.Lstat(dead); !os.IsNotExist(err) {
		t.Errorf("the dead bench's directory is still there (%v)", err)
	}
	if want := "bench: removed " + dead + ", left by a bench that died\n"; msg.String() != want {
		t.Errorf("removeStale said %q, want %q", msg.String(), want)
	}
	for _, d := range []string{live, young, other, link, target, foreign} {
		if _, err := os.Lstat(d); err != nil {
			t.Errorf("%s removed: %v", strings.TrimPrefix(d, base), err)
		}
	}
	if _, err := os.Stat(filepath.Join(live, ownerFile)); err != nil {
		t.Errorf("the live bench's owner file: %v", err)
	}
}
