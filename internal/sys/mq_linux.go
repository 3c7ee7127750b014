package sys

import (
	"errors"
	"os"
	"runtime"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MqNameMax is the longest POSIX message queue name the kernel accepts
// (NAME_MAX), not counting the leading slash that libc adds and strips.
const MqNameMax = 255

// MqPrioMax is the kernel's MQ_PRIO_MAX: priorities are 0..MqPrioMax-1.
const MqPrioMax = 32768

// MqueueMagic is the f_type statfs reports for an mqueue file system
// (MQUEUE_MAGIC in linux/magic.h; x/sys has no constant for it).
const MqueueMagic = 0x19800202

// MqAttr is the kernel's struct mq_attr:
//
//	struct mq_attr { long mq_flags, mq_maxmsg, mq_msgsize, mq_curmsgs; long __reserved[4]; };
//
// long is the width of Go's int on every Linux port Go supports (32 bits on
// arm and 386, 64 bits on arm64 and amd64), so int fields give the right
// layout on each of them: 32 bytes on arm, 64 bytes on arm64/amd64.
type MqAttr struct {
	Flags   int // 0 or O_NONBLOCK; the only field mq_getsetattr changes
	Maxmsg  int // queue depth
	Msgsize int // largest message in bytes
	Curmsgs int // messages currently queued
	_       [4]int
}

// ErrBadMqName is wrapped by the error returned for an invalid queue name.
var ErrBadMqName = errors.New("invalid POSIX message queue name")

// ValidateMqName checks a queue name as the kernel sees it: 1..255 bytes,
// no '/' anywhere (the syscall takes the name without libc's leading
// slash: "x" works, "/x" fails with EACCES), no NUL, and not "." or "..".
func ValidateMqName(name string) error {
	bad := func(why string) error {
		return &os.PathError{Op: "mq_open", Path: name, Err: errors.Join(ErrBadMqName, errors.New(why))}
	}
	switch {
	case name == "":
		return bad("name is empty")
	case len(name) > MqNameMax:
		return bad("name is longer than 255 bytes")
	case name == "." || name == "..":
		return bad(`name may not be "." or ".."`)
	case strings.IndexByte(name, '/') >= 0:
		return bad(`name may not contain '/' (give it without the leading slash, e.g. "edgeipc.ctl")`)
	case strings.IndexByte(name, 0) >= 0:
		return bad("name contains a NUL byte")
	}
	return nil
}

// mqName returns a NUL-terminated copy of name for the syscall, preceded
// by a '/' that is not part of it: the pointer is to the byte after the
// slash, exactly what glibc passes. The kernel never looks at the slash, but
// qemu-user reads the name from pointer-1 and hands it to the host's libc
// mq_open/mq_unlink, which strip a leading slash; without it every queue
// call fails with EINVAL under qemu-arm/qemu-aarch64.
func mqName(name string) (buf []byte, p *byte, err error) {
	if strings.IndexByte(name, 0) >= 0 {
		return nil, nil, unix.EINVAL
	}
	buf = make([]byte, len(name)+2)
	buf[0] = '/'
	copy(buf[1:], name)
	return buf, &buf[1], nil
}

func mqOpen(name *byte, flags int, mode uint32, attr *MqAttr) (int, unix.Errno) {
	r, _, e := unix.Syscall6(unix.SYS_MQ_OPEN, uintptr(unsafe.Pointer(name)), uintptr(flags), uintptr(mode),
		uintptr(unsafe.Pointer(attr)), 0, 0)
	return int(r), e
}

// MqOpen opens (and with O_CREAT creates) the queue name, which has no
// leading slash. mode is used only with O_CREAT and is reduced by the umask
// like open(2); attr (nil for the kernel defaults) only with O_CREAT.
// The returned fd is a plain file descriptor: the caller owns and closes it.
// EINTR is retried.
func MqOpen(name string, flags int, mode uint32, attr *MqAttr) (int, error) {
	if err := ValidateMqName(name); err != nil {
		return -1, err
	}
	buf, p, err := mqName(name)
	if err != nil {
		return -1, os.NewSyscallError("mq_open", err)
	}
	for {
		fd, e := mqOpen(p, flags, mode, attr)
		runtime.KeepAlive(buf)
		runtime.KeepAlive(attr)
		switch e {
		case 0:
			return fd, nil
		case unix.EINTR:
			continue
		default:
			return -1, os.NewSyscallError("mq_open", e)
		}
	}
}

// MqUnlink removes the queue name (no leading slash). Processes that have it
// open keep using it; the name is free at once.
func MqUnlink(name string) error {
	if err := ValidateMqName(name); err != nil {
		return err
	}
	buf, p, err := mqName(name)
	if err != nil {
		return os.NewSyscallError("mq_unlink", err)
	}
	for {
		_, _, e := unix.Syscall(unix.SYS_MQ_UNLINK, uintptr(unsafe.Pointer(p)), 0, 0)
		runtime.KeepAlive(buf)
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		default:
			return os.NewSyscallError("mq_unlink", e)
		}
	}
}

// timespec64 is the kernel's struct __kernel_timespec: two 64-bit fields on
// every architecture. The mq syscalls of 64-bit ports and the *_time64
// ones of 32-bit ports take it.
type timespec64 struct{ Sec, Nsec int64 }

// absTimespec64 fills ts with deadline and returns it; nil for the zero
// time (no limit). A deadline before 1970 is 0: long past, it times out
// at once.
func absTimespec64(deadline time.Time, ts *timespec64) *timespec64 {
	if deadline.IsZero() {
		return nil
	}
	ts.Sec, ts.Nsec = deadline.Unix(), int64(deadline.Nanosecond())
	if ts.Sec < 0 {
		ts.Sec, ts.Nsec = 0, 0
	}
	return ts
}

// MqTimedSend queues msg with priority prio (0..MqPrioMax-1, higher is
// received first). deadline is an absolute CLOCK_REALTIME time, or the zero
// time to wait without limit; it is ignored when fd is non-blocking.
//
// EAGAIN (non-blocking fd, queue full) and ETIMEDOUT are returned as bare
// unix.Errno values so polling loops do not allocate; every other errno is
// wrapped with os.NewSyscallError. EINTR is retried (the deadline is
// absolute, so a retry does not extend it).
func MqTimedSend(fd int, msg []byte, prio uint, deadline time.Time) error {
	if prio >= MqPrioMax {
		return os.NewSyscallError("mq_timedsend", unix.EINVAL)
	}
	var ts timespec64
	abstime := absTimespec64(deadline, &ts)
	p := unsafe.Pointer(unsafe.SliceData(msg))
	for {
		_, e := mqTimedSend(uintptr(fd), p, len(msg), uintptr(prio), abstime)
		runtime.KeepAlive(msg)
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		case unix.EAGAIN, unix.ETIMEDOUT:
			return e
		default:
			return os.NewSyscallError("mq_timedsend", e)
		}
	}
}

// MqTimedReceive removes the oldest message of the highest priority into
// buf and returns its length and priority. buf must be at least the queue's
// Msgsize long (else EMSGSIZE). read(2) on a queue fd returns attribute
// text, never a message: this is the only way to receive.
//
// Errors are reported as for MqTimedSend.
func MqTimedReceive(fd int, buf []byte, deadline time.Time) (int, uint, error) {
	var prio uint32 // the kernel writes an unsigned int
	var ts timespec64
	abstime := absTimespec64(deadline, &ts)
	p := unsafe.Pointer(unsafe.SliceData(buf))
	for {
		r, e := mqTimedReceive(uintptr(fd), p, len(buf), &prio, abstime)
		runtime.KeepAlive(buf)
		switch e {
		case 0:
			return int(r), uint(prio), nil
		case unix.EINTR:
			continue
		case unix.EAGAIN, unix.ETIMEDOUT:
			return 0, 0, e
		default:
			return 0, 0, os.NewSyscallError("mq_timedreceive", e)
		}
	}
}

// MqGetSetAttr reads the attributes of queue fd into oldattr (if not nil)
// and, if newattr is not nil, sets its Flags (only O_NONBLOCK may change).
func MqGetSetAttr(fd int, newattr, oldattr *MqAttr) error {
	_, _, e := unix.Syscall(unix.SYS_MQ_GETSETATTR, uintptr(fd), uintptr(unsafe.Pointer(newattr)),
		uintptr(unsafe.Pointer(oldattr)))
	runtime.KeepAlive(newattr)
	runtime.KeepAlive(oldattr)
	if e != 0 {
		return os.NewSyscallError("mq_getsetattr", e)
	}
	return nil
}
