package mq

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/internal/sys"
)

// PrioMax is one more than the highest message priority (MQ_PRIO_MAX).
const PrioMax = sys.MqPrioMax

// Options control Create.
type Options struct {
	// MaxMsg is the queue depth and MsgSize the largest message in bytes.
	// Zero takes the kernel default (/proc/sys/fs/mqueue/msg_default and
	// msgsize_default). Both are capped by /proc/sys/fs/mqueue/msg_max and
	// msgsize_max; Create returns a *LimitError when they are exceeded.
	MaxMsg  int
	MsgSize int

	// Mode is the permission of a newly created queue: 0600 (owner only,
	// the default when zero), 0620 (the group may send, not receive: its
	// members cannot take each other's messages) or 0660 (owner and
	// group). Other modes are refused. The mode is applied exactly,
	// whatever the umask.
	Mode os.FileMode

	// Group, if > 0, is the gid a newly created queue is given (fchown).
	// -1 (or 0, the zero value) keeps the creating process's effective
	// group; gid 0 cannot be requested this way.
	Group int

	// Owner, if > 0, is the uid a newly created queue is given (fchown,
	// which needs CAP_CHOWN): root's client hands its reply queue to the
	// runtime's user, so that the runtime may write to it and no one else
	// may read it. 0 keeps the creator.
	Owner int

	// Exclusive fails with an error wrapping unix.EEXIST (errors.Is(err,
	// os.ErrExist)) when the name exists. Without it an existing queue is
	// opened as it is: its depth, message size, mode and owner are left
	// alone (check Attr).
	Exclusive bool
}

// Attr is a snapshot of a queue's attributes.
type Attr struct {
	MaxMsg  int // queue depth
	MsgSize int // largest message in bytes
	CurMsgs int // messages queued now
}

// Queue is an open POSIX message queue. Its methods are safe for concurrent
// use. Blocking Sends (and blocking Receives) are served one at a time in
// the order the netpoller wakes them; Try forms never wait.
type Queue struct {
	name    string
	f       *os.File
	rc      syscall.RawConn
	maxMsg  int
	msgSize int

	sendSem chan struct{} // one blocking Send owns the write deadline
	recvSem chan struct{} // one blocking Receive owns the read deadline
	closed  chan struct{}
	once    sync.Once
}

// aLongTimeAgo is a deadline in the past: setting it wakes a waiter now.
var aLongTimeAgo = time.Unix(1, 0)

func (o Options) mode() (os.FileMode, error) {
	switch o.Mode {
	case 0:
		return 0o600, nil
	case 0o600, 0o620, 0o660:
		return o.Mode, nil
	}
	return 0, fmt.Errorf("mode %#o not allowed: use 0600 (owner only), 0620 (the group may send) or 0660 (the group may send and receive)", uint32(o.Mode))
}

// Create creates the queue name (the part after /dev/mqueue/, e.g.
// "edgeipc.ctl", no slash) and opens it for sending and receiving. If the
// name exists and opts.Exclusive is false, the existing queue is opened.
func Create(name string, opts Options) (*Queue, error) {
	if err := sys.ValidateMqName(name); err != nil {
		return nil, &OpError{Op: "create", Name: name, Err: err}
	}
	mode, err := opts.mode()
	if err != nil {
		return nil, &OpError{Op: "create", Name: name, Err: err}
	}
	if opts.MaxMsg < 0 || opts.MsgSize < 0 {
		return nil, &OpError{Op: "create", Name: name, Err: fmt.Errorf("negative MaxMsg %d or MsgSize %d", opts.MaxMsg, opts.MsgSize)}
	}
	var attr *sys.MqAttr
	if opts.MaxMsg > 0 || opts.MsgSize > 0 {
		// The kernel takes both or neither: fill the missing one.
		attr = &sys.MqAttr{Maxmsg: opts.MaxMsg, Msgsize: opts.MsgSize}
		if attr.Maxmsg == 0 {
			attr.Maxmsg = procInt("msg_default", 10)
		}
		if attr.Msgsize == 0 {
			attr.Msgsize = procInt("msgsize_default", 8192)
		}
	}

	const access = unix.O_RDWR | unix.O_NONBLOCK | unix.O_CLOEXEC
	var fd int
	created := false
	for attempt := 0; ; attempt++ {
		// Created owner-only: the queue starts in the creator's group,
		// not the configured one, so setOwnerMode opens it to a group only
		// after the fchown.
		fd, err = sys.MqOpen(name, access|unix.O_CREAT|unix.O_EXCL, 0o600, attr)
		if err == nil {
			created = true
			break
		}
		if !errors.Is(err, unix.EEXIST) || opts.Exclusive {
			return nil, createError(name, attr, err)
		}
		fd, err = sys.MqOpen(name, access, 0, nil)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.ENOENT) || attempt >= 3 {
			return nil, &OpError{Op: "create", Name: name, Err: err}
		}
		// Unlinked between the two calls: try to create it again.
	}

	if created {
		// Set the group first, then the exact mode (the umask may also
		// have removed bits).
		if err := setOwnerMode(fd, mode, opts.Owner, opts.Group); err != nil {
			unix.Close(fd)
			sys.MqUnlink(name)
			return nil, &OpError{Op: "create", Name: name, Err: err}
		}
	}
	q, err := newQueue(name, fd)
	if err != nil {
		if created {
			sys.MqUnlink(name)
		}
		return nil, &OpError{Op: "create", Name: name, Err: err}
	}
	return q, nil
}

func setOwnerMode(fd int, mode os.FileMode, owner, group int) error {
	if owner > 0 {
		if err := unix.Fchown(fd, owner, -1); err != nil {
			return fmt.Errorf("set owner %d: %w", owner, os.NewSyscallError("fchown", err))
		}
	}
	if group > 0 {
		if err := unix.Fchown(fd, -1, group); err != nil {
			return fmt.Errorf("set group %d: %w", group, os.NewSyscallError("fchown", err))
		}
	}
	if err := unix.Fchmod(fd, uint32(mode.Perm())); err != nil {
		return os.NewSyscallError("fchmod", err)
	}
	return nil
}

// Open opens an existing queue. flags is os.O_RDONLY (receive only),
// os.O_WRONLY (send only) or os.O_RDWR; nothing else is accepted.
func Open(name string, flags int) (*Queue, error) {
	switch flags {
	case os.O_RDONLY, os.O_WRONLY, os.O_RDWR:
	default:
		return nil, &OpError{Op: "open", Name: name, Err: fmt.Errorf("flags %#x: use os.O_RDONLY, os.O_WRONLY or os.O_RDWR", flags)}
	}
	fd, err := sys.MqOpen(name, flags|unix.O_NONBLOCK|unix.O_CLOEXEC, 0, nil)
	if err != nil {
		return nil, &OpError{Op: "open", Name: name, Err: err}
	}
	q, err := newQueue(name, fd)
	if err != nil {
		return nil, &OpError{Op: "open", Name: name, Err: err}
	}
	return q, nil
}

// Unlink removes the name. Processes that have the queue open keep using
// it until they close it.
func Unlink(name string) error {
	if err := sys.MqUnlink(name); err != nil {
		return &OpError{Op: "unlink", Name: name, Err: err}
	}
	return nil
}

func newQueue(name string, fd int) (*Queue, error) {
	var a sys.MqAttr
	if err := sys.MqGetSetAttr(fd, nil, &a); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// fd is O_NONBLOCK, so os.NewFile registers it with the netpoller
	// (mq fds support poll). Fd() is never called: it would make the fd
	// blocking again.
	f := os.NewFile(uintptr(fd), "/dev/mqueue/"+name)
	if err := f.SetDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, fmt.Errorf("queue fd is not pollable: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Queue{
		name:    name,
		f:       f,
		rc:      rc,
		maxMsg:  a.Maxmsg,
		msgSize: a.Msgsize,
		sendSem: make(chan struct{}, 1),
		recvSem: make(chan struct{}, 1),
		closed:  make(chan struct{}),
	}, nil
}

// Name returns the queue name (without a leading slash).
func (q *Queue) Name() string { return q.name }

// Stat returns fstat(2) of the queue's descriptor (owner, group, mode and
// inode), whether or not /dev/mqueue is mounted.
func (q *Queue) Stat() (os.FileInfo, error) {
	if q.isClosed() {
		return nil, q.closedErr("stat")
	}
	fi, err := q.f.Stat()
	if err != nil {
		return nil, &OpError{Op: "stat", Name: q.name, Err: err}
	}
	return fi, nil
}

// Ino returns the inode number of the queue that name refers to now, by
// opening it (never waiting) and fstat'ing the descriptor. It works
// without the /dev/mqueue mount. Opening needs read or write permission.
func Ino(name string) (uint64, error) {
	fd, err := openAny(name)
	if err != nil {
		return 0, &OpError{Op: "stat", Name: name, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, &OpError{Op: "stat", Name: name, Err: os.NewSyscallError("fstat", err)}
	}
	return uint64(st.Ino), nil
}

// openAny opens the queue name read-only, or write-only where only write
// permission is given (a member of the group of a 0620 queue), for what
// needs a descriptor and no message: fstat, flock. It never waits.
func openAny(name string) (int, error) {
	fd, err := sys.MqOpen(name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0, nil)
	if errors.Is(err, unix.EACCES) {
		fd, err = sys.MqOpen(name, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0, nil)
	}
	return fd, err
}

// TryLock takes flock(LOCK_EX|LOCK_NB) on the queue's descriptor, never
// waiting, and reports false if another open descriptor of the queue holds
// the lock. The lock lasts until the queue is closed or the process exits
// (however it exits), so it marks the queue as in use by a live process:
// see Locked.
func (q *Queue) TryLock() (bool, error) {
	var ok bool
	var lerr error
	if err := q.rc.Control(func(fd uintptr) { ok, lerr = tryFlock(int(fd)) }); err != nil || q.isClosed() {
		return false, q.closedErr("lock")
	}
	if lerr != nil {
		return false, &OpError{Op: "lock", Name: q.name, Err: lerr}
	}
	return ok, nil
}

// Locked reports whether a live process holds the TryLock lock of the
// queue that name refers to now. It opens the queue (never waiting; this
// needs read or write permission: flock needs neither), tests the lock and
// closes it: for that moment it holds the lock itself, and a TryLock by
// another process then fails (try again).
func Locked(name string) (bool, error) {
	fd, err := openAny(name)
	if err != nil {
		return false, &OpError{Op: "lock", Name: name, Err: err}
	}
	defer unix.Close(fd) // releases the lock if we took it
	ok, err := tryFlock(fd)
	if err != nil {
		return false, &OpError{Op: "lock", Name: name, Err: err}
	}
	return !ok, nil
}

func tryFlock(fd int) (bool, error) {
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		switch err {
		case nil:
			return true, nil
		case unix.EINTR:
			continue
		case unix.EWOULDBLOCK:
			return false, nil
		}
		return false, os.NewSyscallError("flock", err)
	}
}

// MsgSize returns the largest message the queue holds; Receive buffers
// must be at least this long.
func (q *Queue) MsgSize() int { return q.msgSize }

// MaxMsg returns the queue depth.
func (q *Queue) MaxMsg() int { return q.maxMsg }

func (q *Queue) isClosed() bool {
	select {
	case <-q.closed:
		return true
	default:
		return false
	}
}

func (q *Queue) closedErr(op string) error { return &OpError{Op: op, Name: q.name, Err: ErrClosed} }

// Attr returns the queue's current attributes.
func (q *Queue) Attr() (Attr, error) {
	var a sys.MqAttr
	var aerr error
	if err := q.rc.Control(func(fd uintptr) { aerr = sys.MqGetSetAttr(int(fd), nil, &a) }); err != nil || q.isClosed() {
		return Attr{}, q.closedErr("attr")
	}
	if aerr != nil {
		return Attr{}, &OpError{Op: "attr", Name: q.name, Err: aerr}
	}
	return Attr{MaxMsg: a.Maxmsg, MsgSize: a.Msgsize, CurMsgs: a.Curmsgs}, nil
}

func (q *Queue) checkSend(msg []byte, prio uint) error {
	if len(msg) > q.msgSize {
		return &OpError{Op: "send", Name: q.name, Err: fmt.Errorf("message of %d bytes exceeds the queue's message size %d: %w", len(msg), q.msgSize, unix.EMSGSIZE)}
	}
	if prio >= PrioMax {
		return &OpError{Op: "send", Name: q.name, Err: fmt.Errorf("priority %d out of range 0..%d: %w", prio, PrioMax-1, unix.EINVAL)}
	}
	return nil
}

func (q *Queue) checkRecv(buf []byte) error {
	if len(buf) < q.msgSize {
		return &OpError{Op: "receive", Name: q.name, Err: fmt.Errorf("buffer of %d bytes is shorter than the queue's message size %d: %w", len(buf), q.msgSize, unix.EMSGSIZE)}
	}
	return nil
}

// TrySend queues msg with priority prio (0..PrioMax-1; higher priorities
// are received first) if there is room, and returns ErrWouldBlock if the
// queue is full.
func (q *Queue) TrySend(msg []byte, prio uint) error {
	if err := q.checkSend(msg, prio); err != nil {
		return err
	}
	return q.trySend(msg, prio)
}

func (q *Queue) trySend(msg []byte, prio uint) error {
	var serr error
	if err := q.rc.Control(func(fd uintptr) { serr = sys.MqTimedSend(int(fd), msg, prio, time.Time{}) }); err != nil || q.isClosed() {
		return q.closedErr("send")
	}
	switch serr {
	case nil:
		return nil
	case unix.EAGAIN:
		return ErrWouldBlock
	}
	return &OpError{Op: "send", Name: q.name, Err: serr}
}

// TryReceive takes the oldest message of the highest priority into buf
// (at least MsgSize bytes) and returns its length and priority, or
// ErrWouldBlock if the queue is empty.
func (q *Queue) TryReceive(buf []byte) (n int, prio uint, err error) {
	if err := q.checkRecv(buf); err != nil {
		return 0, 0, err
	}
	return q.tryReceive(buf)
}

func (q *Queue) tryReceive(buf []byte) (n int, prio uint, err error) {
	var rerr error
	if err := q.rc.Control(func(fd uintptr) { n, prio, rerr = sys.MqTimedReceive(int(fd), buf, time.Time{}) }); err != nil || q.isClosed() {
		return 0, 0, q.closedErr("receive")
	}
	switch rerr {
	case nil:
		return n, prio, nil
	case unix.EAGAIN:
		return 0, 0, ErrWouldBlock
	}
	return 0, 0, &OpError{Op: "receive", Name: q.name, Err: rerr}
}

// Send queues msg with priority prio, waiting while the queue is full until
// ctx is done (the error then wraps ctx.Err()) or the queue is closed
// (ErrClosed). The waiting goroutine is parked in the netpoller and holds
// no OS thread.
func (q *Queue) Send(ctx context.Context, msg []byte, prio uint) error {
	if err := q.checkSend(msg, prio); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return &OpError{Op: "send", Name: q.name, Err: err}
	}
	if err := q.trySend(msg, prio); err != ErrWouldBlock {
		return err
	}
	if err := q.acquire(ctx, q.sendSem, "send"); err != nil {
		return err
	}
	defer func() { <-q.sendSem }()

	stop := q.armDeadline(ctx, q.f.SetWriteDeadline)
	var serr error
	err := q.rc.Write(func(fd uintptr) bool {
		serr = sys.MqTimedSend(int(fd), msg, prio, time.Time{})
		return serr != unix.EAGAIN // EAGAIN: full, wait for POLLOUT
	})
	stop()
	if err != nil {
		return q.waitError(ctx, "send", err)
	}
	if serr != nil {
		return &OpError{Op: "send", Name: q.name, Err: serr}
	}
	return nil
}

// Receive takes the oldest message of the highest priority into buf (at
// least MsgSize bytes), waiting while the queue is empty until ctx is done
// or the queue is closed. It returns the message length and priority.
func (q *Queue) Receive(ctx context.Context, buf []byte) (n int, prio uint, err error) {
	if err := q.checkRecv(buf); err != nil {
		return 0, 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, &OpError{Op: "receive", Name: q.name, Err: err}
	}
	if n, prio, err := q.tryReceive(buf); err != ErrWouldBlock {
		return n, prio, err
	}
	if err := q.acquire(ctx, q.recvSem, "receive"); err != nil {
		return 0, 0, err
	}
	defer func() { <-q.recvSem }()

	stop := q.armDeadline(ctx, q.f.SetReadDeadline)
	var rerr error
	werr := q.rc.Read(func(fd uintptr) bool {
		// Never read(2): on an mq fd it returns attribute text.
		n, prio, rerr = sys.MqTimedReceive(int(fd), buf, time.Time{})
		return rerr != unix.EAGAIN // EAGAIN: empty, wait for POLLIN
	})
	stop()
	if werr != nil {
		return 0, 0, q.waitError(ctx, "receive", werr)
	}
	if rerr != nil {
		return 0, 0, &OpError{Op: "receive", Name: q.name, Err: rerr}
	}
	return n, prio, nil
}

// acquire takes sem, giving up when ctx is done or the queue closes.
func (q *Queue) acquire(ctx context.Context, sem chan struct{}, op string) error {
	select {
	case sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return &OpError{Op: op, Name: q.name, Err: ctx.Err()}
	case <-q.closed:
		return q.closedErr(op)
	}
}

// armDeadline sets the fd deadline for one blocking call (the caller holds
// the matching semaphore) from ctx: its deadline, and a deadline in the
// past when ctx is cancelled. The returned stop must be called before the
// semaphore is released; it waits for a running cancellation so that it
// cannot leak into the next call.
func (q *Queue) armDeadline(ctx context.Context, set func(time.Time) error) (stop func()) {
	d, _ := ctx.Deadline() // zero time: no deadline
	set(d)
	if ctx.Done() == nil {
		return func() {}
	}
	done := make(chan struct{})
	cancel := context.AfterFunc(ctx, func() {
		set(aLongTimeAgo)
		close(done)
	})
	return func() {
		if !cancel() {
			<-done
		}
	}
}

// waitError turns an error from RawConn.Read/Write into the caller's error.
func (q *Queue) waitError(ctx context.Context, op string, err error) error {
	if q.isClosed() {
		return q.closedErr(op)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if cerr := ctx.Err(); cerr != nil {
			return &OpError{Op: op, Name: q.name, Err: cerr}
		}
		// The netpoller's timer can fire a moment before ctx's own.
		return &OpError{Op: op, Name: q.name, Err: context.DeadlineExceeded}
	}
	return &OpError{Op: op, Name: q.name, Err: err}
}

// Close closes the queue (the name stays; see Unlink). Send and Receive
// calls waiting on it return errors wrapping ErrClosed. Closing twice
// returns ErrClosed.
func (q *Queue) Close() error {
	err := q.closedErr("close")
	q.once.Do(func() {
		close(q.closed)
		err = q.f.Close()
		if err != nil {
			err = &OpError{Op: "close", Name: q.name, Err: err}
		}
	})
	return err
}
