package shm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/edgeipc/edgeipc/internal/sys"
)

// OpenContext is Open for a ring that may not exist yet: while no segment
// has the name it waits, without polling, until one is created (on Linux
// it watches the segment directory with inotify, in the netpoller, and
// looks again every 10 s all the same, in case the watch missed it: a
// directory named through a symbolic link that is pointed elsewhere
// meanwhile, a file system without inotify events; out of inotify
// instances or watches, it looks every 250 ms), and
// returns an error matching ctx.Err() once ctx is done. All the waits of
// a process (and its other inotify watches, such as a runtime's) share one
// inotify instance, with one watch per directory, and one goroutine that
// reads it: a process waiting for hundreds of rings takes one of the
// user's instances (fs.inotify.max_user_instances, 128 by default), and
// gives it back once its last wait (or other watch) ends. Any other error of
// Open (a segment that is not a ring, a foreign owner, a corrupt header, a
// missing segment directory) is returned at once. The segment directory
// is the one named when it is called (opts.Dir, else $EDGEIPC_SHM_DIR,
// else /dev/shm): a later change of the environment does not move the
// wait. A consumer started before its producer uses it instead of polling
// Open:
//
//	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
//	defer cancel()
//	r, err := shm.OpenContext(ctx, "accel", nil) // returns once the producer has created it
func OpenContext(ctx context.Context, name string, opts *SegmentOptions) (*Ring, error) {
	path := SegmentPath(name, opts)
	// The directory is the one of the call: Open must look where the
	// watch looks, even if EDGEIPC_SHM_DIR changes during the wait. (A
	// name that would move path elsewhere is refused by Open at once.)
	var o SegmentOptions
	if opts != nil {
		o = *opts
	}
	o.Dir = pathDir(path)
	opts = &o
	for {
		// Watch first, then look: a ring created in between is seen
		// by Open, one created after it wakes the watch.
		w, werr := sys.WatchInode(o.Dir, sys.WatchEntries, FilePrefix+name)
		r, err := Open(name, opts)
		if err == nil || !errors.Is(err, os.ErrNotExist) || errors.Is(werr, os.ErrNotExist) {
			// Found, or an error waiting cannot mend (the directory
			// itself missing is one: Open's error names it).
			w.Close()
			return r, err
		}
		// Without a watch (out of inotify instances or watches), wait
		// looks again every 250 ms instead.
		err = waitWatch(ctx, w, 250*time.Millisecond)
		w.Close()
		if err != nil {
			return nil, &OpError{"open", name, fmt.Errorf("waiting for %s to be created: %w", path, err)}
		}
	}
}

// waitWatch returns nil once w's file may have appeared (or the watch can
// no longer tell: the directory moved or went, the event queue
// overflowed), or after maxSleep without an event, and an error matching
// ctx.Err() once ctx is done. Without a watch (w nil) it waits poll.
func waitWatch(ctx context.Context, w *sys.Watch, poll time.Duration) error {
	// With a watch, look again after maxSleep without an event too, as
	// every sleep of this package does: a watch can miss the ring (a
	// segment directory named through a symbolic link that was pointed
	// elsewhere during the wait, a file system that reports no events).
	d := maxSleep()
	if w == nil {
		d = poll // and w.C() is nil: it never receives
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	case <-w.C():
		return w.Err() // a broken instance ends its waits
	}
}

// OpenReaderContext is OpenReader for a ring that may not exist yet: it
// waits for the ring as OpenContext does, then joins it as a reader. The
// Reader's Close closes the ring too.
func OpenReaderContext(ctx context.Context, name string, sopts *SegmentOptions, opts *ReaderOptions) (*Reader, error) {
	r, err := OpenContext(ctx, name, sopts)
	return ownReader(r, err, opts)
}
