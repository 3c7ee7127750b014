package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/runtime/framing"
	"github.com/edgeipc/edgeipc/shm"
)

// removeFIFO removes the FIFO id at path: only if path still names that
// FIFO and no other runtime holds its lock (one may have taken it over
// since this runtime's source stopped reading it). It returns why it left
// the path alone ("" if it removed it, or nothing was there).
func removeFIFO(path string, id fifoID) string {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NOCTTY, 0)
	if errors.Is(err, unix.ENOENT) {
		return ""
	}
	if err != nil {
		return fmt.Sprintf("open: %v", err)
	}
	defer func() {
		if fd >= 0 {
			unix.Close(fd)
		}
	}()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Sprintf("fstat: %v", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFIFO || (fifoID{uint64(st.Dev), uint64(st.Ino)}) != id {
		return "the path names another file now"
	}
	if ok, err := tryLock(fd); err != nil {
		return err.Error()
	} else if !ok {
		// A writer may hold it (see unreadLock): another runtime that
		// holds it also reads the FIFO.
		unix.Close(fd)
		fd = -1
		if fifoHasReader(path) {
			return "another process holds its lock and reads it (another edgeipc runtime reads it now)"
		}
	}
	if fd >= 0 && !sameFile(path, fd) || fd < 0 && fifoAt(path, id) != "" {
		return "the path names another file now"
	}
	if err := unix.Unlink(path); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Sprintf("unlink: %v", err)
	}
	return ""
}

// errFIFOReplaced is wrapped by the error that fails a fifo source whose
// path no longer names the FIFO it reads.
var errFIFOReplaced = errors.New("FIFO removed or replaced")

// testHookFIFOChecked, if set, runs after the FIFO path was created or
// found and checked, before it is opened: tests swap the path there.
var testHookFIFOChecked func(path string)

// openFIFO creates the FIFO at path (mode 0600, or 0620 with a group) or
// reuses an existing FIFO there that the runtime's user owns (restart
// safety), opens it and takes its lock (ownlock_linux.go). Anything else at
// the path (a regular file, a directory, a symlink, a FIFO of another user)
// is refused, and so is a FIFO another runtime reads (holds the lock of).
//
// The read end is opened O_NONBLOCK|O_NOFOLLOW (read through the
// netpoller); the mode and group are set on that descriptor (fchmod,
// fchown), never by path, so a symlink or file swapped in after the check
// is never touched. A second, write-only descriptor, dummy, is what the
// runtime keeps open so that writers coming and going never produce EOF (a
// reader with no writers would otherwise see EOF at once, over and over).
func openFIFO(path string, mode os.FileMode, group string) (r *os.File, dummy int, id fifoID, err error) {
	if mode == 0 {
		mode = 0o600
		if group != "" {
			mode = 0o620 // writers need no read access
		}
	}
	gid := -1
	if group != "" {
		if gid, err = shm.LookupGroup(group); err != nil {
			return nil, -1, id, fmt.Errorf("fifo %s: group %q: %w", path, group, err)
		}
	}
	if err := checkFIFOPath(path); err != nil {
		return nil, -1, id, err
	}
	// Created owner-only: it starts in the runtime's own group, so it is
	// opened to a group only after the fchown below.
	if err := unix.Mkfifo(path, 0o600); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, -1, id, &os.PathError{Op: "mkfifo", Path: path, Err: err}
	}
	if testHookFIFOChecked != nil {
		testHookFIFOChecked(path)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NOCTTY, 0)
	if errors.Is(err, unix.ELOOP) {
		return nil, -1, id, fmt.Errorf("%s is a symlink; refusing to use it as a FIFO (remove it or choose another path)", path)
	}
	if err != nil {
		return nil, -1, id, &os.PathError{Op: "open", Path: path, Err: err}
	}
	fail := func(err error) (*os.File, int, fifoID, error) {
		unix.Close(fd)
		return nil, -1, fifoID{}, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fail(&os.PathError{Op: "fstat", Path: path, Err: err})
	}
	if st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return fail(fmt.Errorf("%s exists and is not a FIFO; refusing to replace it", path))
	}
	if err := checkFIFOOwner(path, int(st.Uid)); err != nil {
		return fail(err)
	}
	if ok, err := tryLock(fd); err != nil {
		return fail(&os.PathError{Op: "lock", Path: path, Err: err})
	} else if !ok {
		unix.Close(fd)
		if fd, err = unreadLock(path, &st); err != nil {
			return nil, -1, id, err
		}
	}
	// Set the group, then the exact mode (a reused FIFO may have another),
	// on the descriptor. A reused FIFO is narrowed to its owner first, so
	// that neither its old group nor the new one has the other's access
	// between the two calls.
	if gid >= 0 {
		if uint32(st.Mode)&0o077 != 0 {
			if err := unix.Fchmod(fd, 0o600); err != nil {
				return fail(&os.PathError{Op: "chmod", Path: path, Err: err})
			}
		}
		if err := unix.Fchown(fd, -1, gid); err != nil {
			return fail(&os.PathError{Op: "chown", Path: path, Err: err})
		}
	}
	if err := unix.Fchmod(fd, uint32(mode)); err != nil {
		return fail(&os.PathError{Op: "chmod", Path: path, Err: err})
	}
	id = fifoID{uint64(st.Dev), uint64(st.Ino)}
	if dummy, err = openDummy(path, id); err != nil {
		return fail(err)
	}
	return os.NewFile(uintptr(fd), path), dummy, id, nil
}

// unreadLock is what openFIFO does when another open file description
// holds the lock of the FIFO st at path (its own descriptor closed). Another
// runtime that holds it has the FIFO open for reading; but flock needs no
// read access, so a writer can take it too, even on a write-only
// descriptor it was given. If no process reads the FIFO, the holder is not
// a runtime: unreadLock opens the FIFO again (the same one) and returns the
// descriptor, which reads it without the lock until the lock is free
// (watchFIFO takes it then). A FIFO that another process reads is refused.
func unreadLock(path string, st *unix.Stat_t) (int, error) {
	if fifoHasReader(path) {
		return -1, &readElsewhereError{path}
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NOCTTY, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var again unix.Stat_t
	if err := unix.Fstat(fd, &again); err != nil || again.Dev != st.Dev || again.Ino != st.Ino {
		unix.Close(fd)
		return -1, fmt.Errorf("%s was replaced while the runtime opened it; refusing it", path)
	}
	return fd, nil
}

// readElsewhereError refuses a FIFO whose lock another process holds
// while a process reads it: another runtime, as far as the runtime can tell.
type readElsewhereError struct{ path string }

func (e *readElsewhereError) Error() string {
	return fmt.Sprintf("%s is read by another edgeipc runtime (it holds the FIFO's lock and has it open for reading); two readers would split its records between them: stop that runtime or choose another path", e.path)
}

// fifoHasReader reports whether a process has the FIFO at path open for
// reading: without one, an O_WRONLY|O_NONBLOCK open fails with ENXIO (the
// open writes nothing). It reports true when it cannot tell.
func fifoHasReader(path string) bool {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NOCTTY, 0)
	if err == nil {
		unix.Close(fd)
		return true
	}
	return !errors.Is(err, unix.ENXIO)
}

// fileTryLock is tryLock on f's descriptor (false if f is closed).
func fileTryLock(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	if rc.Control(func(fd uintptr) { ok, _ = tryLock(int(fd)) }) != nil {
		return false
	}
	return ok
}

// errFIFORemoved is wrapped by the error that ends a run of a fifo source
// whose path no longer exists: the source creates the FIFO again.
var errFIFORemoved = errors.New("FIFO removed")

// fifoGone is the error for a path that no longer names the FIFO the
// source reads (what: what is there now): errFIFORemoved if nothing is,
// else errFIFOReplaced.
func fifoGone(path, what string) error {
	if what == fifoMissing {
		return fmt.Errorf("%w: %s %s", errFIFORemoved, path, what)
	}
	return fmt.Errorf("%w: %s %s; restore the FIFO (remove what is there now) and restart the source with 'edgeipc ctl restart NAME'", errFIFOReplaced, path, what)
}

// fifoMissing is what fifoAt says of a path that no longer exists.
const fifoMissing = "no longer exists"

// fifoAt says what path (not followed) names now if it is not the FIFO
// id: fifoMissing, or what replaced it. It returns "" if path names id,
// or if it cannot tell (an error other than a missing path).
func fifoAt(path string, id fifoID) string {
	var st unix.Stat_t
	err := unix.Lstat(path, &st)
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return fifoMissing
	case err != nil:
		return ""
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return "is now a symlink"
	case st.Mode&unix.S_IFMT != unix.S_IFIFO:
		return "is no longer a FIFO"
	case (fifoID{uint64(st.Dev), uint64(st.Ino)}) != id:
		return "is now another FIFO"
	}
	return ""
}

// fifoCheckInterval is how often a running fifo source checks that its
// path still names the FIFO it reads (watchFIFO). (A variable for tests.)
var fifoCheckInterval = time.Second

// watchFIFO checks every fifoCheckInterval, and at once when inotify says
// the FIFO's inode lost a link or moved, until ctx ends, that path still
// names the FIFO id; if not, it cancels ctx with the reason (fifoGone). A
// FIFO unlinked while the source reads it is otherwise unnoticed: the
// source reads a FIFO that no writer can open any more. While another
// process (a writer, unreadLock) holds the FIFO's lock, it tries to take
// it for f, and calls locked once it has. If inotify cannot watch the
// FIFO, it calls noWatch with the reason.
func watchFIFO(ctx context.Context, fail context.CancelCauseFunc, path string, id fifoID, f *os.File, locked func(), noWatch func(error)) {
	t := time.NewTicker(fifoCheckInterval)
	defer t.Stop()
	w, err := watchLinks(path)
	defer w.Close()
	if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) { // (gone, as fifoAt sees it: the first check says so)
		noWatch(err)
	}
	if ctx.Err() != nil {
		return
	}
	for {
		// The first check is at once: the watch is on whatever the path
		// named when it was added.
		if what := fifoAt(path, id); what != "" {
			fail(fifoGone(path, what))
			return
		}
		if locked != nil && fileTryLock(f) {
			locked()
			locked = nil
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.C():
		}
	}
}

// openDummy opens the keep-alive write end of the FIFO id by its path and
// checks that the path still names that FIFO: if it was removed the error
// wraps errFIFORemoved, if it was replaced (by a regular file, whose reads
// would return EOF at once, or by another FIFO) errFIFOReplaced.
func openDummy(path string, id fifoID) (int, error) {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NOCTTY, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return -1, fifoGone(path, fifoMissing)
	case errors.Is(err, unix.ELOOP):
		return -1, fifoGone(path, "is now a symlink")
	case errors.Is(err, unix.ENXIO):
		// O_WRONLY|O_NONBLOCK on a FIFO without a reader: not ours.
		return -1, fifoGone(path, "is now another FIFO")
	case err != nil:
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFIFO {
		unix.Close(fd)
		return -1, fifoGone(path, "is no longer a FIFO")
	}
	if (fifoID{uint64(st.Dev), uint64(st.Ino)}) != id {
		unix.Close(fd)
		return -1, fifoGone(path, "is now another FIFO")
	}
	return fd, nil
}

// reopenDummy is openDummy for a run that has read its FIFO to the end
// (EOF: no writer has it open). If the FIFO at the path is one that the
// source made again (remakeFIFO) after the one the run reads was removed,
// the error says removed (errFIFORemoved), not replaced: the watch may
// have made it in the moment before the run saw that its FIFO was gone
// (remaking: even before it recorded it, or opened its read end, which
// makes openDummy fail with ENXIO).
func (ss *sourceState) reopenDummy(path string, id fifoID) (int, error) {
	ss.remaking.Lock()
	defer ss.remaking.Unlock()
	fd, err := openDummy(path, id)
	if errors.Is(err, errFIFOReplaced) {
		if last, ok := ss.lastRemade(); ok && fifoAt(path, last) == "" {
			return -1, fifoGone(path, fifoMissing)
		}
	}
	return fd, err
}

// holdFIFO opens a read end of the FIFO id at path (nil if path does not
// name that FIFO). apply holds one over a reload that restarts the FIFO's
// source: while a process has a FIFO open for reading, its writers'
// write(2) does not fail with EPIPE (and kill them with SIGPIPE). Nothing
// is read from it: what is written meanwhile is read by the new source.
func holdFIFO(path string, id fifoID) *os.File {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NOCTTY, 0)
	if err != nil {
		return nil
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO || (fifoID{uint64(st.Dev), uint64(st.Ino)}) != id {
		unix.Close(fd)
		return nil
	}
	return os.NewFile(uintptr(fd), path)
}

// remakeFIFO creates the source's FIFO again when watchFIFO has found the
// one it reads (or the last one it made again) removed, while the source
// still reads what is in that one, and keeps the new one's read end
// (ss.remade) for a next run (takeRemade). While a read end is open,
// writers that open the path are connected at once and what they write
// waits in the new pipe; the read end holds the FIFO's lock, so another
// runtime is refused it as one that this runtime reads. The FIFO is made
// as openFIFO makes it (mode, group, checks), and only where nothing is:
// if something is at the path again, or the FIFO cannot be made, the
// source is left as it was, and its next run's openFIFO finds what is
// there and says so. It reports whether it made the FIFO.
func (ss *sourceState) remakeFIFO() bool {
	ss.remaking.Lock()
	defer ss.remaking.Unlock()
	c := ss.cfg
	failed := func(err error) {
		ss.rt.log.Warn(fmt.Sprintf("source %s: FIFO %s was removed; could not create it again at once (%v); the source tries again once it has read what the removed one holds", c.Name, c.Path, err))
	}
	if err := checkFIFOPath(c.Path); err != nil {
		failed(err)
		return false
	}
	// Only a FIFO made here: never one that someone put at the path since.
	if err := unix.Mkfifo(c.Path, 0o600); err != nil {
		failed(&os.PathError{Op: "mkfifo", Path: c.Path, Err: err})
		return false
	}
	if afterRemakeMkfifo != nil {
		afterRemakeMkfifo()
	}
	var st unix.Stat_t
	if err := unix.Lstat(c.Path, &st); err != nil {
		failed(&os.PathError{Op: "lstat", Path: c.Path, Err: err})
		return false
	}
	f, dummy, id, err := openFIFO(c.Path, os.FileMode(c.Mode), c.Group)
	if err != nil {
		failed(err)
		return false
	}
	unix.Close(dummy) // the next run opens its own
	if (id != fifoID{uint64(st.Dev), uint64(st.Ino)}) {
		f.Close()
		failed(fmt.Errorf("%s was replaced while the runtime created it", c.Path))
		return false
	}
	ss.mu.Lock()
	ss.remade = append(ss.remade, remadeFIFO{f, id})
	ss.fifo = &id // the one at the path: remove_on_exit, holdFIFO
	ss.mu.Unlock()
	ss.rt.log.Info(fmt.Sprintf("source %s: FIFO %s was removed; created it again at once: what writers write into it is read once the source has read what the removed one holds", c.Name, c.Path))
	return true
}

// afterRemakeMkfifo, if set (by tests), runs when remakeFIFO has made the
// FIFO, before it opens and records it.
var afterRemakeMkfifo func()

// takeRemade returns the oldest FIFO that remakeFIFO created and its id,
// and leaves it to the caller (nil if there is none); more reports whether
// others are left.
func (ss *sourceState) takeRemade() (f *os.File, id fifoID, more bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.remade) == 0 {
		return nil, fifoID{}, false
	}
	r := ss.remade[0]
	ss.remade = ss.remade[1:]
	return r.f, r.id, len(ss.remade) > 0
}

// lastRemade returns the id of the newest FIFO that remakeFIFO created and
// no run has taken (ok false if there is none).
func (ss *sourceState) lastRemade() (id fifoID, ok bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.remade) == 0 {
		return fifoID{}, false
	}
	return ss.remade[len(ss.remade)-1].id, true
}

// runFIFO reads records from a named pipe into the ring. If the FIFO is
// removed while the source reads it, the source creates it again at once
// (remakeFIFO; and again if that one is removed too before the source
// gets to it) and holds it open, reads what is in the removed one
// (runFIFOOnce), then reads the new one (logged): writers that open the
// path from then on reach the runtime, and what they write while the source
// still reads the removed FIFO waits in the new one; those that still had
// the old one open get EPIPE and must reopen it.
func (ss *sourceState) runFIFO(ctx context.Context) error {
	defer ss.releaseHeld()
	note := ""
	for {
		err := ss.runFIFOOnce(ctx, note)
		if err != nil && ctx.Err() == nil && errors.Is(err, errRestRead) {
			continue // then the FIFO at the path
		}
		if err == nil || ctx.Err() != nil || !errors.Is(err, errFIFORemoved) {
			return err
		}
		note = fmt.Sprintf("FIFO %s was removed while the source read it; created it again (writers that had it open must reopen it)", ss.cfg.Path)
		ss.set(func(ss *sourceState) { ss.lastError = note })
		ss.rt.log.Warn(fmt.Sprintf("source %s: %s", ss.cfg.Name, note))
	}
}

// runFIFOOnce creates or reuses the FIFO and reads it until ctx ends
// (nil), the FIFO is removed or replaced (errFIFORemoved,
// errFIFOReplaced) or an error. Once it reads, the source's last error is
// note.
//
// A FIFO that is removed or replaced is let go of only once what its
// writers had written into it is read: the records in the pipe when
// watchFIFO notices are decoded and written to the ring (however long a
// block ring takes to take them); a record cut short there is counted as
// bad, and bytes written after that moment are counted in dropped_bytes.
// A removed FIFO is created again at once meanwhile (remakeFIFO), and the
// next run reads that one (takeRemade).
//
// Stopped meanwhile (a restart, or a reload that keeps the FIFO), the run
// hands the pipe of the FIFO that is gone to the source that replaces it
// (fifoPending.rest), with what it had read of a record: that source's
// first run reads the rest of the pipe (and returns errRestRead), its next
// one the FIFO at the path.
func (ss *sourceState) runFIFOOnce(ctx context.Context, note string) error {
	c := ss.cfg
	var (
		f       *os.File
		dummy   int
		id      fifoID
		err     error
		goneNow error // the FIFO this run reads was gone before it began
		more    bool  // FIFOs made again after this one wait (the last at the path)
	)
	ss.mu.Lock()
	rest := ss.carryRest
	ss.carryRest = nil
	ss.mu.Unlock()
	handed := rest != nil // this run reads the rest of a FIFO that was gone
	if handed {
		f, dummy, more = rest.f, -1, true
		goneNow = &restError{rest.cause}
	} else if f, id, more = ss.takeRemade(); f != nil {
		// A FIFO created again after the one a previous run read was
		// removed: what writers wrote into it since is in its pipe.
		// Removed or replaced since, it is read as any FIFO that is gone
		// (with more, it was removed: the next one was made after that).
		if more {
			dummy, goneNow = -1, fifoGone(c.Path, fifoMissing)
		} else if dummy, err = openDummy(c.Path, id); errors.Is(err, errFIFORemoved) || errors.Is(err, errFIFOReplaced) {
			dummy, goneNow, err = -1, err, nil
		}
		if err != nil {
			f.Close()
			return err
		}
	} else {
		f, dummy, id, err = openFIFO(c.Path, os.FileMode(c.Mode), c.Group)
		var elsewhere *readElsewhereError
		if errors.As(err, &elsewhere) && ss.holds() {
			// The reader that openFIFO found may be the read end held over
			// this restart, and the lock a writer's, taken in the gap
			// between the runs. Check again without it (writers that write
			// in the instant until the FIFO is open again get EPIPE).
			ss.releaseHeld()
			f, dummy, id, err = openFIFO(c.Path, os.FileMode(c.Mode), c.Group)
		}
		ss.releaseHeld() // the source has the FIFO open now (or failed)
		if err != nil {
			return err
		}
	}
	if !more {
		ss.set(func(ss *sourceState) { ss.fifo = &id })
	}
	defer func() {
		if dummy >= 0 {
			unix.Close(dummy)
		}
	}()
	// rctx ends with ctx or when watchFIFO finds the path no longer names
	// this FIFO (its cause says how); ended tells the two apart.
	rctx, fail := context.WithCancelCause(ctx)
	// A FIFO removed (nothing at its path) is created again at once, so
	// that writers are not refused, or, with a shell's "echo x > path",
	// do not create a regular file there, while the source reads what is
	// in the removed one (a block ring can take long).
	// (Unless a FIFO made again after this one is there already.)
	failGone := func(err error) {
		if _, made := ss.lastRemade(); !made && errors.Is(err, errFIFORemoved) && ctx.Err() == nil {
			ss.remakeFIFO()
		}
		fail(err)
	}
	switch {
	case handed:
		fail(goneNow) // (the FIFO at the path is the next run's)
	case goneNow != nil:
		failGone(goneNow)
	}
	watched := make(chan struct{})
	var locked func()
	if !fileTryLock(f) {
		ss.rt.log.Warn(fmt.Sprintf("source %s: FIFO %s: its lock is held by a process that does not read it (a writer: flock needs no read access); reading it without the lock until that process lets it go", c.Name, c.Path))
		locked = func() { ss.rt.log.Info(fmt.Sprintf("source %s: FIFO %s: took its lock", c.Name, c.Path)) }
	}
	noWatch := func(err error) {
		ss.rt.log.Warn(fmt.Sprintf("source %s: FIFO %s: cannot watch it with inotify (%v%s); checking every %v instead that the path still names it", c.Name, c.Path, err, inotifyHint(err), fifoCheckInterval))
	}
	// wctx ends when the run returns.
	wctx, wstop := context.WithCancel(ctx)
	go func() {
		defer close(watched)
		watchFIFO(rctx, failGone, c.Path, id, f, locked, noWatch)
		// While the run reads what is left in a removed FIFO, the FIFO
		// made again in its place is watched too: removed as well, it is
		// made again, and the next runs read them in turn.
		for ctx.Err() == nil && errors.Is(context.Cause(rctx), errFIFORemoved) {
			last, ok := ss.lastRemade()
			if !ok {
				return
			}
			removed := false
			watchFIFO(wctx, func(err error) {
				removed = errors.Is(err, errFIFORemoved) && ctx.Err() == nil && ss.remakeFIFO()
			}, c.Path, last, nil, nil, noWatch)
			if !removed {
				return
			}
		}
	}()
	defer func() { fail(nil); wstop(); <-watched }()
	ended := func() error {
		if ctx.Err() != nil {
			return nil
		}
		return context.Cause(rctx)
	}
	// The end of ctx closes f, which wakes a pending read. The FIFO's lock
	// goes with the last reference to the descriptor, which, when the
	// AfterFunc's Close races the read returning, is dropped on the
	// AfterFunc's goroutine, possibly after this function has returned:
	// wait for it, so that cleanup (remove_on_exit) and the next run find
	// the lock released.
	// Before it closes f, it keeps a duplicate (kept), for a stop that
	// finds the FIFO gone to hand its pipe on (the pending defer below);
	// settle waits until the AfterFunc has run (ran) or makes sure it
	// never will.
	var (
		kept               *os.File
		keep, settled, ran bool
		fClosed            = make(chan struct{})
	)
	stop := context.AfterFunc(ctx, func() { kept = dupFile(f); f.Close(); close(fClosed) })
	settle := func() {
		if !settled {
			settled = true
			if !stop() {
				<-fClosed
				ran = true
			}
		}
	}
	defer func() {
		settle()
		if kept != nil && !keep {
			kept.Close()
		}
	}()
	defer f.Close()
	// A FIFO gone (removed or replaced: the end of rctx before ctx's) sets
	// f's read deadline: tr then reads what is in the pipe at that moment,
	// and ends the stream. The rest of one handed on is what was in it
	// when the source it came from noticed.
	tr := &tailReader{f: f}
	if handed {
		tr.ended, tr.tail = true, rest.tail
	}
	stopGone := context.AfterFunc(rctx, func() {
		cause := context.Cause(rctx)
		if handed || ctx.Err() != nil || !isGone(cause) {
			return
		}
		f.SetReadDeadline(time.Now())
		ss.rt.log.Info(fmt.Sprintf("source %s: FIFO %s was %s while the source read it; reading what its writers had written into it before letting it go", c.Name, c.Path, gone(rctx)))
	})
	defer stopGone()
	// What the source this one replaced had read and not written to the
	// ring comes first (once): a whole record it was waiting to write (a
	// block ring held up by a slow reader), then the start of a record
	// whose rest is still in the FIFO.
	ss.mu.Lock()
	inHand, carry, carryCut := ss.carryRec, ss.carry, ss.carryCut
	ss.carryRec, ss.carry, ss.carryCut = nil, nil, false
	ss.mu.Unlock()
	// Stopped (a reload or restart that replaces the source): keep the
	// record not yet in the ring and what was read of the next one, for
	// the source that replaces this one. Until the decoder reads, that is
	// what this run was handed.
	k, _ := framing.ParseKind(c.Framing)
	var d *framing.Decoder
	decoding, draining := false, false
	// If the FIFO was gone (rctx ended first), its pipe is handed on too
	// (rest), unless the source was dropping a broken stream: then what is
	// left in it is dropped as the drain would have, and what was read of
	// it is handed on as cut (the rest of its last record is not in the
	// FIFO that the next source reads).
	defer func() {
		if ctx.Err() != nil {
			p := fifoPending{framing: k, data: carry, ok: true, rec: inHand, cut: carryCut}
			if decoding {
				p.data, p.ok = d.Pending()
			}
			if cause := context.Cause(rctx); isGone(cause) {
				settle()
				if !ran {
					kept = dupFile(f) // f is still open: the AfterFunc never ran
				}
				switch {
				case kept != nil && !draining:
					r := &fifoRest{f: kept, tail: pipeBuffered(kept), cause: goneCause(cause)}
					if tr.ended {
						r.tail = tr.tail
					}
					p.rest, p.cut, keep = r, false, true
				case kept != nil:
					ss.dropped.Add(uint64(pipeBuffered(kept)))
					p.cut = true
				default:
					p.cut = true
				}
			}
			ss.set(func(ss *sourceState) { ss.pending = p })
		}
	}()
	lease := rctx
	if handed {
		lease = ctx // rctx has ended: the run reads a FIFO that is gone
	}
	w, err := ss.writer(lease)
	if err != nil {
		if rctx.Err() != nil {
			if ctx.Err() == nil {
				// Gone before the source could write to its ring: what
				// it holds and what is in the pipe cannot go anywhere.
				n := pipeBuffered(f) + len(carry)
				if inHand != nil {
					n += len(inHand.Data)
				}
				ss.dropFIFORest(n, "before the source could write to its ring")
			}
			return ended()
		}
		return err
	}
	defer w.Close()
	if d, err = ss.decoder(); err != nil {
		return err
	}
	ss.set(func(ss *sourceState) { ss.state, ss.lastError = StateRunning, note })
	if handed {
		ss.rt.log.Info(fmt.Sprintf("source %s: reading the %d bytes left in FIFO %s, which was %s while the source this one replaced read it; then the FIFO at the path", c.Name, rest.tail, c.Path, goneWord(rest.cause)))
	} else {
		ss.rt.log.Info(fmt.Sprintf("source %s: reading FIFO %s (%s framing)", c.Name, c.Path, c.Framing))
	}
	if inHand != nil {
		if n := ss.ring.ring.SlotPayload(); len(inHand.Data) > n {
			// (a reload gave the source a ring of smaller slots)
			ss.badRecord(fmt.Errorf("a record of %d bytes that the source this one replaced had read is longer than the ring's slot payload (%d bytes)", len(inHand.Data), n))
		} else if err := ss.put(ctx, w, *inHand); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		inHand = nil
	}
	// The decoder reads f through in. Before a read that would wait while
	// the decoder holds the start of a record, in closes the keep-alive
	// write end (dummy): if the writer of that record has closed the FIFO
	// and no other writer has it open, the read then ends the stream
	// (EOF), and the loop counts the cut record, opens the write end again
	// and reads on. Otherwise the record's writer may still finish it (and
	// the write end stays closed until the writers have all closed the
	// FIFO: EOF at a record's end counts nothing).
	in := readerFunc(func(p []byte) (int, error) {
		if dummy >= 0 && d.InRecord() && pipeBuffered(f) == 0 {
			unix.Close(dummy)
			dummy = -1
		}
		return tr.Read(p)
	})
	switch {
	case len(carry) > 0 && carryCut:
		// Decoded as a stream of its own (it ends with carry): see
		// carryCut in the loop.
		d.Reset(bytes.NewReader(carry))
	case len(carry) > 0:
		carryCut = false
		d.Reset(io.MultiReader(bytes.NewReader(carry), in))
	default:
		carryCut = false
		d.Reset(in)
	}
	decoding = true
	var drain []byte
	for {
		rec, err := d.Next()
		if err == nil {
			if err := ss.put(ctx, w, rec); err != nil {
				if ctx.Err() != nil {
					// Read whole, not written: the source that replaces
					// this one writes it (rec aliases the decoder's
					// buffer).
					inHand = &framing.Record{Data: bytes.Clone(rec.Data), Type: rec.Type, Flags: rec.Flags, HasMeta: rec.HasMeta}
					return nil
				}
				return err
			}
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		var bad *framing.BadRecordError
		if errors.As(err, &bad) {
			ss.badRecord(err)
			continue
		}
		if carryCut && (err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF)) {
			// The end of what the source this one replaced had read of
			// a FIFO that was gone: a record it ends in is cut short.
			if d.InRecord() {
				ss.badRecord(fmt.Errorf("the source this one replaced stopped while it read FIFO %s, which was removed or replaced, in the middle of a record whose rest was in that FIFO (%s); the partial record is dropped", c.Path, cutShort(d, err)))
			}
			carryCut = false
			d.Reset(in)
			continue
		}
		if rctx.Err() != nil && (errors.Is(err, os.ErrDeadlineExceeded) || err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF)) {
			// The FIFO is gone, and what was in it has been read (EOF: its
			// writers had all closed it, and the source had no write end
			// of it: one created again was removed before it was read).
			if d.InRecord() {
				ss.badRecord(fmt.Errorf("FIFO %s is gone (%s) and its writers sent no more of the record being read (%s); the partial record is dropped", c.Path, gone(rctx), cutShort(d, err)))
			}
			ss.dropFIFORest(pipeBuffered(f), "after what was in it had been read")
			return ended()
		}
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
			// Every writer has closed the FIFO (in closed the write end
			// when the decoder waited inside a record).
			if d.InRecord() {
				ss.badRecord(fmt.Errorf("the FIFO's last writer closed it in the middle of a record (%s); the partial record is dropped", cutShort(d, err)))
			}
			if dummy, err = ss.reopenDummy(c.Path, id); err != nil {
				return err
			}
			d.Reset(in)
			continue
		}
		if errors.Is(err, framing.ErrBroken) {
			ss.badRecord(fmt.Errorf("stream broken (%v); dropping everything read from the FIFO until all its writers have closed it", err))
			// Drop our own write end so that EOF arrives once the current
			// writers have closed, discard what is read until then (from
			// every writer: the stream cannot be resynchronised), and start
			// afresh.
			if dummy >= 0 {
				unix.Close(dummy)
				dummy = -1
			}
			if drain == nil {
				drain = make([]byte, 64<<10)
			}
			began := time.Now()
			// Counted as they go, so that dropped_bytes shows a drain
			// that a writer holding the FIFO open keeps going.
			draining = true
			dropped := uint64(d.Buffered())
			ss.dropped.Add(dropped)
			// They are dropped: a stop during the drain (a restart, a
			// reload) must not hand them to the next source as the
			// start of a record (Pending), which would break its stream
			// at once and count them again.
			d.Reset(in)
			for {
				n, rerr := tr.Read(drain)
				dropped += uint64(n)
				ss.dropped.Add(uint64(n))
				if rerr == io.EOF {
					break
				}
				if rerr != nil {
					if ctx.Err() != nil {
						return nil
					}
					if rctx.Err() != nil && errors.Is(rerr, os.ErrDeadlineExceeded) {
						// Gone while draining: what it held was
						// dropped as the drain drops it.
						ss.dropped.Add(uint64(pipeBuffered(f)))
						return ended()
					}
					return rerr
				}
			}
			draining = false
			took := time.Since(began).Round(time.Millisecond)
			if dummy, err = ss.reopenDummy(c.Path, id); err != nil {
				return err
			}
			d.Reset(in)
			msg := fmt.Sprintf("the FIFO's writers closed after a broken stream; dropped %d bytes over %v", dropped, took)
			ss.set(func(ss *sourceState) { ss.lastError = msg })
			if ok, n := ss.fifoLog.allow(time.Second); ok {
				more := ""
				if n > 0 {
					more = fmt.Sprintf(" (%d more not logged)", n)
				}
				ss.rt.log.Info(fmt.Sprintf("source %s: %s; reading new records%s", c.Name, msg, more))
			}
			continue
		}
		return err
	}
}

// gone says why rctx of runFIFOOnce ended: what is at the FIFO's path now.
func gone(rctx context.Context) string { return goneWord(context.Cause(rctx)) }

// goneWord says what happened to a FIFO that is gone (err: why, see
// isGone).
func goneWord(err error) string {
	if errors.Is(err, errFIFORemoved) {
		return "removed"
	}
	return "replaced"
}

// isGone reports whether err says that a FIFO was removed or replaced.
func isGone(err error) bool {
	return errors.Is(err, errFIFORemoved) || errors.Is(err, errFIFOReplaced)
}

// errRestRead ends a run that read the rest of a FIFO that was gone when
// the source the run's source replaced stopped (fifoRest): runFIFO goes on
// with the FIFO at the path.
var errRestRead = errors.New("read what was left in a FIFO that was gone")

// restError is the cause that ends such a run: errRestRead, and why the
// FIFO was gone.
type restError struct{ cause error }

func (e *restError) Error() string   { return e.cause.Error() }
func (e *restError) Unwrap() []error { return []error{errRestRead, e.cause} }

// goneCause is why a FIFO is gone, without a restError around it.
func goneCause(err error) error {
	if r, ok := err.(*restError); ok {
		return r.cause
	}
	return err
}

// dupFile returns a second *os.File for the open file description of f
// (nil if f is closed or the descriptor cannot be duplicated): the pipe
// and its lock stay open until both are closed.
func dupFile(f *os.File) *os.File {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil
	}
	nfd := -1
	if rc.Control(func(fd uintptr) {
		if n, err := unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0); err == nil {
			nfd = n
		}
	}) != nil || nfd < 0 {
		return nil
	}
	return os.NewFile(uintptr(nfd), f.Name())
}

// dropRest closes r (nothing if nil), and counts and logs the bytes its
// pipe still holds (dropFIFORest).
func (ss *sourceState) dropRest(r *fifoRest, when string) {
	if r == nil {
		return
	}
	n := pipeBuffered(r.f)
	r.f.Close()
	ss.dropFIFORest(n, when)
}

// dropFIFORest counts and logs n bytes that were in a FIFO that is gone
// (removed or replaced) and that the source could not read (when: at
// what point).
func (ss *sourceState) dropFIFORest(n int, when string) {
	if n <= 0 {
		return
	}
	ss.dropped.Add(uint64(n))
	ss.rt.log.Warn(fmt.Sprintf("source %s: FIFO %s is gone; dropped %d bytes that were in it %s (counted in dropped_bytes)", ss.cfg.Name, ss.cfg.Path, n, when))
}

// readerFunc is an io.Reader made of a function.
type readerFunc func(p []byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
