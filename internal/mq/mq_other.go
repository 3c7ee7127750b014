//go:build !linux

package mq

import (
	"context"
	"os"
)

// PrioMax is one more than the highest message priority.
const PrioMax = 32768

// MountDir is where Linux mounts the mqueue file system.
const MountDir = "/dev/mqueue"

// Options control Create (see the Linux documentation).
type Options struct {
	MaxMsg    int
	MsgSize   int
	Mode      os.FileMode
	Group     int
	Owner     int
	Exclusive bool
}

// Attr is a snapshot of a queue's attributes.
type Attr struct{ MaxMsg, MsgSize, CurMsgs int }

// Info describes one queue found by List.
type Info struct {
	Name                     string
	Mode                     os.FileMode
	UID, GID                 int
	MaxMsg, MsgSize, CurMsgs int
	Err                      error
}

// Queue is an open POSIX message queue; it cannot exist on this system.
type Queue struct{}

func unsupported(op, name string) error { return &OpError{Op: op, Name: name, Err: ErrNotSupported} }

// Create returns an error wrapping ErrNotSupported.
func Create(name string, opts Options) (*Queue, error) { return nil, unsupported("create", name) }

// Open returns an error wrapping ErrNotSupported.
func Open(name string, flags int) (*Queue, error) { return nil, unsupported("open", name) }

// Unlink returns an error wrapping ErrNotSupported.
func Unlink(name string) error { return unsupported("unlink", name) }

// List returns an error wrapping ErrNotSupported.
func List() ([]Info, error) { return nil, unsupported("list", "") }

// ListDir returns an error wrapping ErrNotSupported.
func ListDir(dir string) ([]Info, error) { return nil, unsupported("list", "") }

func (q *Queue) Name() string               { return "" }
func (q *Queue) Stat() (os.FileInfo, error) { return nil, unsupported("stat", "") }

// Ino returns an error wrapping ErrNotSupported.
func Ino(name string) (uint64, error)                { return 0, unsupported("stat", name) }
func (q *Queue) MsgSize() int                        { return 0 }
func (q *Queue) MaxMsg() int                         { return 0 }
func (q *Queue) Attr() (Attr, error)                 { return Attr{}, unsupported("attr", "") }
func (q *Queue) TrySend(msg []byte, prio uint) error { return unsupported("send", "") }
func (q *Queue) Send(ctx context.Context, msg []byte, prio uint) error {
	return unsupported("send", "")
}
func (q *Queue) TryReceive(buf []byte) (int, uint, error) { return 0, 0, unsupported("receive", "") }
func (q *Queue) Receive(ctx context.Context, buf []byte) (int, uint, error) {
	return 0, 0, unsupported("receive", "")
}
func (q *Queue) Close() error { return unsupported("close", "") }

// TryLock returns an error wrapping ErrNotSupported.
func (q *Queue) TryLock() (bool, error) { return false, unsupported("lock", "") }

// Locked returns an error wrapping ErrNotSupported.
func Locked(name string) (bool, error) { return false, unsupported("lock", name) }
