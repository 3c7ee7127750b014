package shm

import (
	"bytes"
	"context"
	"errors"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// dirWatch is an inotify watch on a segment directory for one file name
// to appear in it (created, linked or renamed there). Its descriptor is
// non-blocking, so a wait parks in the netpoller.
type dirWatch struct {
	f    *os.File
	file string
}

// watchCreate starts watching dir for file. Its error matches
// os.ErrNotExist if dir does not exist.
func watchCreate(dir, file string) (*dirWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("inotify_init1", err)
	}
	const mask = unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "inotify_add_watch", Path: dir, Err: err}
	}
	return &dirWatch{f: os.NewFile(uintptr(fd), "inotify"), file: file}, nil
}

func (w *dirWatch) close() {
	if w != nil {
		w.f.Close()
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
	// wait, a file system that reports no events). Set before ctx's wake,
	// which it must not overwrite.
	w.f.SetReadDeadline(time.Now().Add(maxSleep()))
	stop := context.AfterFunc(ctx, func() { w.f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 4096) // room for at least one event with a NAME_MAX name
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := w.f.Read(buf)
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil // maxSleep passed: look again
			}
			return err
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			end := off + unix.SizeofInotifyEvent + int(ev.Len)
			if end > n || end < off {
				return nil // not a whole event: look again rather than trust it
			}
			name, _, _ := bytes.Cut(buf[off+unix.SizeofInotifyEvent:end], []byte{0})
			if ev.Mask&(unix.IN_Q_OVERFLOW|unix.IN_IGNORED|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_UNMOUNT) != 0 ||
				string(name) == w.file {
				return nil
			}
			off = end
		}
	}
}
