package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/runtime/framing"
)

// makeFIFO creates the FIFO at path (mode 0600, or 0660 with a group) or
// reuses an existing FIFO there (restart safety). Anything else at the path
// (a regular file, a directory, a symlink) is refused.
func makeFIFO(path string, mode os.FileMode, group string) error {
	if mode == 0 {
		mode = 0o600
		if group != "" {
			mode = 0o660
		}
	}
	if err := checkFIFOPath(path); err != nil {
		return err
	}
	err := unix.Mkfifo(path, uint32(mode))
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return &os.PathError{Op: "mkfifo", Path: path, Err: err}
	}
	if err := checkFIFOPath(path); err != nil { // raced with someone else
		return err
	}
	gid := -1
	if group != "" {
		g, err := lookupGroup(group)
		if err != nil {
			return err
		}
		gid = g
	}
	// Set the exact mode (the umask narrowed mkfifo's) and group, without
	// following a symlink swapped in meanwhile.
	if err := unix.Fchmodat(unix.AT_FDCWD, path, uint32(mode), 0); err != nil {
		return &os.PathError{Op: "chmod", Path: path, Err: err}
	}
	if gid >= 0 {
		if err := unix.Fchownat(unix.AT_FDCWD, path, -1, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &os.PathError{Op: "chown", Path: path, Err: err}
		}
	}
	return nil
}

func lookupGroup(g string) (int, error) {
	if n, err := strconv.Atoi(g); err == nil {
		return n, nil
	}
	gr, err := user.LookupGroup(g)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(gr.Gid)
}

func removeFIFO(path string) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeNamedPipe != 0 {
		os.Remove(path)
	}
}

// fifoID identifies the FIFO a source reads: its device and inode.
type fifoID struct{ dev, ino uint64 }

// errFIFOReplaced is wrapped by the error that fails a fifo source whose
// path no longer names the FIFO it reads.
var errFIFOReplaced = errors.New("FIFO removed or replaced")

// openFIFO opens the FIFO O_NONBLOCK|O_NOFOLLOW for reading (through the
// netpoller) and a second, write-only descriptor that the runtime keeps
// open so that writers coming and going never produce EOF (a reader with
// no writers would otherwise see EOF at once, over and over).
func openFIFO(path string) (r *os.File, dummy int, id fifoID, err error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, -1, id, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		unix.Close(fd)
		return nil, -1, id, fmt.Errorf("%s is not a FIFO", path)
	}
	id = fifoID{uint64(st.Dev), uint64(st.Ino)}
	dummy, err = openDummy(path, id)
	if err != nil {
		unix.Close(fd)
		return nil, -1, id, err
	}
	return os.NewFile(uintptr(fd), path), dummy, id, nil
}

// openDummy opens the keep-alive write end of the FIFO id by its path and
// checks that the path still names that FIFO: if it was removed or
// replaced (by a regular file, whose reads would return EOF at once, or by
// another FIFO) the error wraps errFIFOReplaced.
func openDummy(path string, id fifoID) (int, error) {
	replaced := func(what string) error {
		return fmt.Errorf("%w: %s %s; restore the FIFO (remove what is there now) and restart the source with 'edgeipc ctl restart NAME'", errFIFOReplaced, path, what)
	}
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NOCTTY, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return -1, replaced("no longer exists")
	case errors.Is(err, unix.ELOOP):
		return -1, replaced("is now a symlink")
	case errors.Is(err, unix.ENXIO):
		// O_WRONLY|O_NONBLOCK on a FIFO without a reader: not ours.
		return -1, replaced("is now another FIFO")
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
		return -1, replaced("is no longer a FIFO")
	}
	if (fifoID{uint64(st.Dev), uint64(st.Ino)}) != id {
		unix.Close(fd)
		return -1, replaced("is now another FIFO")
	}
	return fd, nil
}

// runFIFO reads records from a named pipe into the ring.
func (ss *sourceState) runFIFO(ctx context.Context) error {
	c := ss.cfg
	if err := makeFIFO(c.Path, os.FileMode(c.Mode), c.Group); err != nil {
		return err
	}
	w, err := ss.writer(ctx)
	if err != nil {
		return err
	}
	defer w.Close()
	f, dummy, id, err := openFIFO(c.Path)
	if err != nil {
		return err
	}
	defer func() {
		if dummy >= 0 {
			unix.Close(dummy)
		}
	}()
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer stop()
	defer f.Close()
	d, err := ss.decoder()
	if err != nil {
		return err
	}
	d.Reset(f)
	ss.set(func(ss *sourceState) { ss.state, ss.lastError = StateRunning, "" })
	ss.rt.log.Info(fmt.Sprintf("source %s: reading FIFO %s (%s framing)", c.Name, c.Path, c.Framing))
	var drain []byte
	for {
		rec, err := d.Next()
		if err == nil {
			if err := ss.put(ctx, w, rec); err != nil {
				if ctx.Err() != nil {
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
		if errors.Is(err, framing.ErrBroken) || errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF {
			if err != io.EOF {
				ss.badRecord(fmt.Errorf("stream broken (%v); dropping the current writers' data until they close the FIFO", err))
			}
			// Drop our own write end so that EOF arrives once the current
			// writers have closed, discard their data until then, and start
			// afresh.
			unix.Close(dummy)
			dummy = -1
			if drain == nil {
				drain = make([]byte, 64<<10)
			}
			for {
				_, rerr := f.Read(drain)
				if rerr == io.EOF {
					break
				}
				if rerr != nil {
					if ctx.Err() != nil {
						return nil
					}
					return rerr
				}
			}
			if dummy, err = openDummy(c.Path, id); err != nil {
				return err
			}
			d.Reset(f)
			if ok, n := ss.fifoLog.allow(time.Second); ok {
				more := ""
				if n > 0 {
					more = fmt.Sprintf(" (%d more not logged)", n)
				}
				ss.rt.log.Info(fmt.Sprintf("source %s: the FIFO's writers closed; reading new records%s", c.Name, more))
			}
			continue
		}
		return err
	}
}
