package sys

import (
	"bytes"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// All the watches of a process (shm's waits for a ring to be created, the
// runtime's watches on its FIFOs and recordings) share one inotify
// instance: fs.inotify.max_user_instances is 128 per user by default, and
// an instance per watch let a process that watches many paths starve the
// user's other programs, and fall back to polling past the limit. The
// instance holds one kernel watch per inode, shared by the Watches on it;
// one goroutine reads its events, in the netpoller, and wakes the Watches
// concerned. The instance exists while a Watch does: the last to close
// closes it and waits for its goroutine to return, so that a process that
// watches only for a while (a consumer started before its producer waits
// for the ring) holds no descriptor and no goroutine afterwards.
var inw struct {
	mu sync.Mutex
	in *inotifyInstance // nil while nothing is watched
}

// inotifyReaders counts the goroutines reading an inotify instance.
var inotifyReaders atomic.Int32

// inotifyInstance is the shared inotify instance and its watched inodes,
// each keyed by its watch descriptor: the kernel has one watch per inode,
// so two paths naming one inode get the same descriptor, and share its
// entry. Its fields are guarded by inw.mu.
type inotifyInstance struct {
	f       *os.File // non-blocking: reads park in the netpoller
	inodes  map[int32]*watchedInode
	watches int           // open Watches, on all inodes
	err     error         // a read error that ended the instance
	done    chan struct{} // closed once its reading goroutine returned
}

// watchedInode is the kernel's watch on one inode and the Watches on it.
// The kernel's watch is removed when the last Watch closes, unless the
// kernel removed it first (IN_IGNORED: the inode is gone or its file
// system unmounted), which gone records.
type watchedInode struct {
	wd      int32
	watches map[*Watch]struct{}
	gone    bool
}

// Watch is one registration on the process's inotify instance, made by
// WatchInode. C receives when an event it asked for arrives.
type Watch struct {
	in   *inotifyInstance
	node *watchedInode
	mask uint32 // the event bits asked for
	name string // "": every event asked for; else only those naming name, and the inode's own
	c    chan struct{}
}

// The masks of edgeipc's watches, for WatchInode.
const (
	// WatchEntries: an entry appearing in a directory (created, linked
	// or renamed in), and the directory itself going or moving; a path
	// that is not a directory is refused (ENOTDIR).
	WatchEntries = unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR
	// WatchLinks: the inode that the path names (not followed) losing a
	// link (unlinked, renamed over: IN_ATTRIB, which a chmod also sends),
	// moved or deleted.
	WatchLinks = unix.IN_ATTRIB | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_DONT_FOLLOW
)

// selfEvents are the events about the watched inode itself (it went,
// moved, was unmounted, or lost its kernel watch): they wake every Watch
// on it, whatever it asked for, so that it looks again at what the path
// names now.
const selfEvents = unix.IN_IGNORED | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_UNMOUNT

// WatchInode watches the inode that path names for the events in mask
// (IN_* event bits, with IN_ONLYDIR or IN_DONT_FOLLOW as inotify_add_watch
// takes them), on the process's inotify instance, made if nothing is
// watched yet. Watches on one inode share the kernel's watch, whose mask
// is the union of theirs (IN_MASK_ADD); each is woken only for the events
// it asked for. With a name, a directory's Watch is woken only by the
// events naming that entry, and by those of the directory itself. C
// holds one pending wake: it says "look again", not what happened.
//
// The error is a *os.PathError (or an inotify_init1 *os.SyscallError):
// ENOENT if path does not exist, EMFILE out of instances (the sysctl
// fs.inotify.max_user_instances, or the process's RLIMIT_NOFILE), ENOSPC
// out of watches (fs.inotify.max_user_watches); the caller then has no
// watch, and looks periodically instead. A nil *Watch may be closed.
func WatchInode(path string, mask uint32, name string) (*Watch, error) {
	inw.mu.Lock()
	defer inw.mu.Unlock()
	in := inw.in
	if in == nil {
		fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
		if err != nil {
			return nil, os.NewSyscallError("inotify_init1", err)
		}
		in = &inotifyInstance{f: os.NewFile(uintptr(fd), "inotify"), inodes: map[int32]*watchedInode{}, done: make(chan struct{})}
	}
	// The watch is added under inw.mu, and the reading goroutine takes
	// it to deliver what it read: an event that follows the add is
	// delivered after the Watch below is registered, so none is lost.
	var wd int
	var aerr error
	if err := controlFd(in.f, func(fd int) { wd, aerr = unix.InotifyAddWatch(fd, path, mask|unix.IN_MASK_ADD) }); err != nil {
		aerr = err
	}
	if aerr != nil {
		if in.watches == 0 { // new, and no other Watch needs it
			in.f.Close()
		}
		return nil, &os.PathError{Op: "inotify_add_watch", Path: path, Err: aerr}
	}
	if inw.in == nil {
		inw.in = in
		inotifyReaders.Add(1)
		go in.read()
	}
	node := in.inodes[int32(wd)]
	if node == nil {
		node = &watchedInode{wd: int32(wd), watches: map[*Watch]struct{}{}}
		in.inodes[int32(wd)] = node
	}
	w := &Watch{in: in, node: node, mask: mask &^ (unix.IN_ONLYDIR | unix.IN_DONT_FOLLOW | unix.IN_EXCL_UNLINK), name: name, c: make(chan struct{}, 1)}
	node.watches[w] = struct{}{}
	in.watches++
	return w, nil
}

// controlFd runs f with file's descriptor, without making it blocking as
// Fd would.
func controlFd(file *os.File, f func(fd int)) error {
	rc, err := file.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Control(func(fd uintptr) { f(int(fd)) })
}

// C is the channel that receives w's wakes (nil, which never receives,
// for a nil w).
func (w *Watch) C() <-chan struct{} {
	if w == nil {
		return nil
	}
	return w.c
}

// Err is the error that broke the instance w watches on (nil if none):
// w was woken, and will not be again. Check it after a wake.
func (w *Watch) Err() error {
	inw.mu.Lock()
	defer inw.mu.Unlock()
	return w.in.err
}

// Close ends w (again: nothing): the last Watch on an inode removes the
// kernel's watch, the last Watch of the process closes the instance and
// returns once its goroutine has.
func (w *Watch) Close() {
	if w == nil {
		return
	}
	in := w.in
	inw.mu.Lock()
	if _, ok := w.node.watches[w]; !ok {
		inw.mu.Unlock()
		return
	}
	delete(w.node.watches, w)
	if len(w.node.watches) == 0 && !w.node.gone {
		w.node.gone = true
		delete(in.inodes, w.node.wd)
		// EINVAL if the kernel removed the watch meanwhile (its
		// IN_IGNORED not read yet): nothing left to remove.
		controlFd(in.f, func(fd int) { unix.InotifyRmWatch(fd, uint32(w.node.wd)) })
	}
	in.watches--
	last := in.watches == 0
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

// read reads in's events until in is closed, and wakes the Watches they
// concern.
func (in *inotifyInstance) read() {
	// (Deferred in this order, the count is down before done closes:
	// the last Close, which waits for done, then finds no reader left.)
	defer close(in.done)
	defer inotifyReaders.Add(-1)
	buf := make([]byte, 16<<10) // room for at least one event with a NAME_MAX name
	for {
		n, err := in.f.Read(buf)
		inw.mu.Lock()
		if err != nil {
			// Closed by the last Watch; or broken: every Watch is
			// woken to find the error, and the next gets a new
			// instance.
			if !errors.Is(err, os.ErrClosed) {
				in.err = err
			}
			in.wakeAll()
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

// dispatch wakes the Watches that the events in buf concern (under inw.mu).
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
			in.wakeAll() // events were lost: every Watch looks again
			continue
		}
		node := in.inodes[ev.Wd]
		if node == nil {
			continue // a watch removed since (its IN_IGNORED, late events)
		}
		if ev.Mask&selfEvents != 0 {
			node.wakeAll()
			if ev.Mask&unix.IN_IGNORED != 0 {
				// The kernel removed the watch: the descriptor may
				// be reused, and is no longer this inode's.
				node.gone = true
				delete(in.inodes, node.wd)
			}
			continue
		}
		// An event with no name is about the inode itself: it
		// concerns a Watch with a name too.
		for w := range node.watches {
			if ev.Mask&w.mask != 0 && (w.name == "" || len(name) == 0 || w.name == string(name)) {
				w.signal()
			}
		}
	}
}

func (in *inotifyInstance) wakeAll() {
	for _, node := range in.inodes {
		node.wakeAll()
	}
}

func (node *watchedInode) wakeAll() {
	for w := range node.watches {
		w.signal()
	}
}

func (w *Watch) signal() {
	select {
	case w.c <- struct{}{}:
	default: // a wake is pending already
	}
}

// InotifyWatches is the number of open Watches on the process's inotify
// instance, and InotifyReaders the number of goroutines reading an
// instance (0 once every Watch has closed). For tests.
func InotifyWatches() int {
	inw.mu.Lock()
	defer inw.mu.Unlock()
	if inw.in == nil {
		return 0
	}
	return inw.in.watches
}

// InotifyReaders: see InotifyWatches.
func InotifyReaders() int { return int(inotifyReaders.Load()) }

// HoldInotifyEvents keeps the instance's goroutine from passing events
// on until the function it returns is called: the kernel queues them
// meanwhile (a test overflows the queue so). For tests.
func HoldInotifyEvents() (release func()) {
	inw.mu.Lock()
	var once sync.Once
	return func() { once.Do(inw.mu.Unlock) }
}
