package shm

import (
	"bytes"
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// All the waits of OpenContext in a process share one inotify instance
// (fs.inotify.max_user_instances is 128 per user by default: an instance
// per wait let a process waiting for many rings starve the user's other
// programs, and fall back to polling past the limit). The instance holds
// one watch per directory inode, shared by the waits in that directory;
// one goroutine reads its events, in the netpoller, and wakes the waits
// concerned. The instance exists while a wait does: the last wait to end
// closes it and waits for its goroutine to return, so that a process that
// waits only at its start (the usual consumer started before its
// producer) holds no descriptor and no goroutine afterwards, as it did
// with an instance per wait, and pays one inotify_init1 per episode of
// waiting, not per wait.
var inw struct {
	mu sync.Mutex
	in *inotifyInstance // nil while no wait is watching
}

// inotifyReaders counts the goroutines reading an inotify instance (for
// the tests: 0 once every wait has ended).
var inotifyReaders atomic.Int32

// inotifyInstance is the shared inotify instance and its watches, each
// keyed by its watch descriptor: the kernel has one watch per inode, so
// two path strings naming one directory (a symbolic link, "d" and "d/.")
// get the same descriptor, and share its entry. Its fields are guarded by
// inw.mu.
type inotifyInstance struct {
	f     *os.File // non-blocking: reads park in the netpoller
	dirs  map[int32]*watchedDir
	waits int           // registered waits, in all directories
	err   error         // a read error that ended the instance
	done  chan struct{} // closed once its reading goroutine returned
}

// watchedDir is a watch on one directory inode and the waits registered
// on it. The watch is removed when its last wait ends, unless the kernel
// removed it first (IN_IGNORED: the directory is gone or unmounted), which
// gone records.
type watchedDir struct {
	wd    int32
	waits map[*dirWatch]struct{}
	gone  bool
}

// dirWatch is one wait's registration: file is the name it waits for in
// its directory; wake gets a token when file may have appeared there (or
// the watch can no longer tell).
type dirWatch struct {
	in   *inotifyInstance
	dir  *watchedDir
	file string
	wake chan struct{}
}

// watchMask: a name appearing (created, linked or renamed in), and the
// directory itself going or moving. IN_ONLYDIR refuses a path that is not
// a directory.
const watchMask = unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR

// watchCreate starts watching dir for file, on the process's inotify
// instance (created if no wait has it yet). Its error matches
// os.ErrNotExist if dir does not exist; with any error, the wait has no
// watch (out of inotify instances: every directory of the process; out of
// watches: this one directory) and looks every 250 ms instead.
func watchCreate(dir, file string) (*dirWatch, error) {
	inw.mu.Lock()
	defer inw.mu.Unlock()
	in := inw.in
	if in == nil {
		fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
		if err != nil {
			return nil, os.NewSyscallError("inotify_init1", err)
		}
		in = &inotifyInstance{f: os.NewFile(uintptr(fd), "inotify"), dirs: map[int32]*watchedDir{}, done: make(chan struct{})}
	}
	// The watch is added under inw.mu, and the reading goroutine takes
	// it to deliver what it read: an event that follows the add is
	// delivered after the wait below is registered, so none is lost.
	var wd int
	var aerr error
	if err := controlFd(in.f, func(fd int) { wd, aerr = unix.InotifyAddWatch(fd, dir, watchMask) }); err != nil {
		aerr = err
	}
	if aerr != nil {
		if in.waits == 0 { // new, and no other wait needs it
			in.f.Close()
		}
		return nil, &os.PathError{Op: "inotify_add_watch", Path: dir, Err: aerr}
	}
	if inw.in == nil {
		inw.in = in
		inotifyReaders.Add(1)
		go in.read()
	}
	d := in.dirs[int32(wd)]
	if d == nil {
		d = &watchedDir{wd: int32(wd), waits: map[*dirWatch]struct{}{}}
		in.dirs[int32(wd)] = d
	}
	w := &dirWatch{in: in, dir: d, file: file, wake: make(chan struct{}, 1)}
	d.waits[w] = struct{}{}
	in.waits++
	return w, nil
}

// controlFd runs f with f's descriptor, without making it blocking as Fd
// would.
func controlFd(file *os.File, f func(fd int)) error {
	rc, err := file.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Control(func(fd uintptr) { f(int(fd)) })
}

// close ends w's registration: the last wait on a directory removes its
// watch, the last wait of the process closes the instance and returns
// once its goroutine has.
func (w *dirWatch) close() {
	if w == nil {
		return
	}
	in := w.in
	inw.mu.Lock()
	delete(w.dir.waits, w)
	if len(w.dir.waits) == 0 && !w.dir.gone {
		w.dir.gone = true
		delete(in.dirs, w.dir.wd)
		// EINVAL if the kernel removed the watch meanwhile (its
		// IN_IGNORED not read yet): nothing left to remove.
		controlFd(in.f, func(fd int) { unix.InotifyRmWatch(fd, uint32(w.dir.wd)) })
	}
	in.waits--
	last := in.waits == 0
	if last {
		if inw.in == in {
			inw.in = nil
		}
		// Under inw.mu, so that the process never holds two instances;
		// a Read in progress returns at once (the goroutine does not
		// hold inw.mu while it reads).
		in.f.Close()
	}
	inw.mu.Unlock()
	if last {
		<-in.done
	}
}

// read reads in's events until in is closed, and wakes the waits they
// concern.
func (in *inotifyInstance) read() {
	// (Deferred in this order, the count is down before done closes:
	// the last wait, which waits for done, then finds no reader left.)
	defer close(in.done)
	defer inotifyReaders.Add(-1)
	buf := make([]byte, 16<<10) // room for at least one event with a NAME_MAX name
	for {
		n, err := in.f.Read(buf)
		inw.mu.Lock()
		if err != nil {
			// Closed by the last wait; or broken: every wait ends
			// with the error, and the next gets a new instance.
			if !errors.Is(err, os.ErrClosed) {
				in.err = err
			}
			for _, d := range in.dirs {
				d.wakeAll()
			}
			if inw.in == in {
				inw.in = nil
			}
			inw.mu.Unlock()
			return
		}
		in.dispatch(buf[:n])
		inw.mu.Unlock()
	}
}

// dispatch wakes the waits that the events in buf concern (under inw.mu).
func (in *inotifyInstance) dispatch(buf []byte) {
	for off := 0; off < len(buf); {
		if len(buf)-off < unix.SizeofInotifyEvent {
			in.wakeAll() // not a whole event: look again rather than trust it
			return
		}
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		end := off + unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(buf) || end < off {
			in.wakeAll()
			return
		}
		name, _, _ := bytes.Cut(buf[off+unix.SizeofInotifyEvent:end], []byte{0})
		off = end
		if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
			in.wakeAll() // events were lost: every wait looks again
			continue
		}
		d := in.dirs[ev.Wd]
		if d == nil {
			continue // a watch removed since (its IN_IGNORED, late events)
		}
		if ev.Mask&(unix.IN_IGNORED|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_UNMOUNT) != 0 {
			// The directory went, moved or was unmounted: its waits
			// look again, and watch what the path names now.
			d.wakeAll()
			if ev.Mask&unix.IN_IGNORED != 0 {
				// The kernel removed the watch: the descriptor may
				// be reused, and is no longer this directory's.
				d.gone = true
				delete(in.dirs, d.wd)
			}
			continue
		}
		for w := range d.waits {
			if w.file == string(name) {
				w.signal()
			}
		}
	}
}

func (in *inotifyInstance) wakeAll() {
	for _, d := range in.dirs {
		d.wakeAll()
	}
}

func (d *watchedDir) wakeAll() {
	for w := range d.waits {
		w.signal()
	}
}

func (w *dirWatch) signal() {
	select {
	case w.wake <- struct{}{}:
	default: // a wake is pending already
	}
}

// wait returns nil once w's file may have appeared (or the watch can no
// longer tell: the directory moved or went, the event queue overflowed),
// or after maxSleep without an event, and an error matching ctx.Err()
// once ctx is done. A nil w waits poll.
func (w *dirWatch) wait(ctx context.Context, poll time.Duration) error {
	if w == nil {
		return sleepCtx(ctx, poll)
	}
	// Look again after maxSleep without an event too, as every sleep of
	// this package does: a watch can miss the ring (a segment directory
	// named through a symbolic link that was pointed elsewhere during the
	// wait, a file system that reports no events).
	t := time.NewTimer(maxSleep())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	case <-w.wake:
		inw.mu.Lock()
		defer inw.mu.Unlock()
		return w.in.err // a broken instance ends its waits
	}
}
