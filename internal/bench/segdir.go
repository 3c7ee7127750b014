package bench

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// A bench keeps everything it creates (rings, go-spin exchanges, sockets,
// FIFOs, the C build) in one directory, base/edgeipc-bench-*, which it
// removes when it returns. A bench that is SIGKILLed or crashes cannot:
// its directory stayed in /dev/shm for ever, memory that tmpfs never gives
// back. So each bench holds an exclusive flock(2) on its directory for as
// long as it runs (the kernel drops it when the process dies, however it
// dies), and every bench, when it starts, removes the directories whose
// lock it can take: their benches are gone. A lock rather than a PID in
// the name: a PID can be reused, and benches in different PID namespaces
// sharing one /dev/shm see different PIDs, but they see the same locks.
//
// The lock is taken just after the directory is made; ownerFile, written
// once it is held, tells a sweeper that the lock it can take is a dead
// bench's, not one not taken yet. A directory without it (a bench that
// died in between, or one made by an edgeipc older than this) is left.

const (
	segDirPrefix = "edgeipc-bench-"
	ownerFile    = "owner" // the PID of the bench, for people; its presence is what counts
)

// makeSegDir creates and locks this run's segment directory under base.
// The returned file holds the lock: close it after removing the directory.
// On a file system without flock (some NFS) the directory is made unlocked
// and without ownerFile, which no sweep removes, and w is told so.
func makeSegDir(base string, w io.Writer) (dir string, lock *os.File, err error) {
	dir, err = os.MkdirTemp(base, segDirPrefix)
	if err != nil {
		return "", nil, err
	}
	lock, err = os.Open(dir)
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	// Blocking: a sweeper may hold the lock for a moment, until it finds
	// no ownerFile.
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		lock.Close()
		fmt.Fprintf(w, "bench: note: cannot lock %s (%v): if this bench is killed, remove it by hand\n", dir, err)
		return dir, nil, nil
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		lock.Close()
		os.RemoveAll(dir)
		return "", nil, err
	}
	return dir, lock, nil
}

// removeStale removes the segment directories under base whose bench has
// died (see makeSegDir), naming each on w.
func removeStale(base string, w io.Writer) {
	ents, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), segDirPrefix) {
			continue // a symbolic link is not followed
		}
		dir := filepath.Join(base, e.Name())
		if removeIfStale(dir) {
			fmt.Fprintf(w, "bench: removed %s, left by a bench that died\n", dir)
		}
	}
}

// removeIfStale removes dir if it is this user's, no live bench holds its
// lock, and its bench got as far as taking it. os.RemoveAll does not
// follow symbolic links, at any depth.
func removeIfStale(dir string) bool {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false // gone meanwhile, or another user's
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || int(st.Uid) != os.Geteuid() {
		return false // another user's: not ours to remove, even as root
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return false // its bench runs (or another one is removing it)
	}
	if _, err := os.Lstat(filepath.Join(dir, ownerFile)); err != nil {
		return false
	}
	// Removed holding the lock, so that no other bench sweeps it at once.
	return os.RemoveAll(dir) == nil
}
