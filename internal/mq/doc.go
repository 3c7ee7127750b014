// Package mq is edgeipc's Go interface to POSIX message queues, the
// transport of the control plane: `edgeipc ctl` sends a request to the
// runtime's queue ("edgeipc.ctl") and reads the reply from a queue of its
// own. It is internal: the runtime and the CLI use it; library users of
// shm/ never need it.
//
// # Concepts
//
//   - A queue is a kernel object named by a string without slashes, e.g.
//     "edgeipc.ctl". It lives in the IPC namespace until Unlink (or reboot),
//     not in any process: a crashed runtime leaves it behind, and List and
//     Unlink exist so the CLI can find and remove it.
//   - A queue holds at most MaxMsg messages of at most MsgSize bytes each,
//     both fixed at creation. Messages keep their boundaries; each carries a
//     priority (0..PrioMax-1) and Receive returns the oldest message of the
//     highest priority.
//   - Waits come in two forms: TrySend/TryReceive return ErrWouldBlock at
//     once; Send/Receive wait until the context is done (the error wraps
//     ctx.Err()) or the Queue is closed (ErrClosed). A context with a
//     deadline is the third, deadline form.
//
// # Use
//
//	q, err := mq.Create("edgeipc.ctl", mq.Options{MaxMsg: 16, MsgSize: 4096, Mode: 0o660, Group: gid})
//	var lim *mq.LimitError
//	if errors.As(err, &lim) { log.Fatal(lim) } // names the sysctl/rlimit and how to raise it
//	defer q.Close()
//	buf := make([]byte, q.MsgSize())
//	n, prio, err := q.Receive(ctx, buf)
//
// and in the other process:
//
//	q, err := mq.Open("edgeipc.ctl", os.O_WRONLY)
//	err = q.Send(ctx, req, 0)
//
// # Kernel and privileges
//
// Linux only (elsewhere every call fails with an error wrapping
// ErrNotSupported). The queue fd is opened O_NONBLOCK|O_CLOEXEC and
// wrapped in an *os.File, so a waiting goroutine is parked in the Go
// netpoller (queue fds support poll) and holds no OS thread; contexts
// cancel it through fd deadlines.
//
// A new queue gets exactly Options.Mode (0600 by default, 0620 or 0660), set
// with fchmod after creation so the umask neither widens nor narrows it,
// and optionally Options.Group and (with CAP_CHOWN) Options.Owner. Opening
// needs read (receive) or write (send) permission on the queue.
//
// Sizes are capped per IPC namespace by /proc/sys/fs/mqueue/msg_max,
// msgsize_max and queues_max, and per user by RLIMIT_MSGQUEUE (bytes of
// all of the user's queues). Create reports a *LimitError that names the
// limit, its value and the sysctl or rlimit to raise. A process with
// CAP_SYS_RESOURCE is held to the kernel's hard caps instead of msg_max
// and msgsize_max.
//
// List reads /dev/mqueue, which must be mounted (`mount -t mqueue mqueue
// /dev/mqueue`; systemd does it by default, containers often do not).
// Containers see the queues of their own IPC namespace (`--ipc=host` to
// share the host's).
package mq
