package runtime

import (
	"errors"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/internal/sys"
)

// watchLinks watches the inode that path names (not followed) for losing
// a link (removed, renamed over), moving or going, on the process's
// inotify instance (sys.WatchInode). With an error (ENOENT: path is gone;
// out of inotify instances or watches: inotifyHint) there is no watch,
// and the caller's periodic check is all there is; w.C() of the nil
// Watch never receives.
func watchLinks(path string) (*sys.Watch, error) {
	if inotifyOff.Load() {
		return nil, errInotifyOff
	}
	return sys.WatchInode(path, sys.WatchLinks, "")
}

// inotifyOff, if set (by tests), makes watchLinks fail with
// errInotifyOff, as it does when inotify cannot watch: the periodic
// checks alone are left.
var (
	inotifyOff    atomic.Bool
	errInotifyOff = errors.New("inotify turned off by a test")
)

// inotifyHint says which limit a watchLinks error means was reached.
func inotifyHint(err error) string {
	switch {
	case errors.Is(err, unix.EMFILE):
		return ": the user's inotify instances (sysctl fs.inotify.max_user_instances) or this process's open files (its RLIMIT_NOFILE) are used up"
	case errors.Is(err, unix.ENOSPC):
		return ": the user's inotify watches are used up (sysctl fs.inotify.max_user_watches)"
	}
	return ""
}
