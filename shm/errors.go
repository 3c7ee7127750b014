package shm

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/edgeipc/edgeipc/internal/sys"
	"github.com/edgeipc/edgeipc/internal/units"
)

// Sentinel errors. Match them with errors.Is.
var (
	// ErrClosed is returned by the operations of a closed Ring, Writer,
	// Reader, Semaphore or Eventfd, and by waits that Close interrupted.
	// (Accessors that return no error, such as Ring.Head and Ring.Inspect,
	// return zero values after Close.)
	ErrClosed = errors.New("shm: closed")
	// ErrBusy means another live process holds the writer lease; the
	// *BusyError says which.
	ErrBusy = errors.New("shm: ring already has a live writer")
	// ErrWouldBlock is returned by Try forms when the operation would wait:
	// no frame to read, no free slot (block policy), semaphore at zero.
	ErrWouldBlock = errors.New("shm: operation would block")
	// ErrCorrupt means shared memory holds values that violate the ring ABI
	// (another process wrote garbage, or the segment is not a ring).
	ErrCorrupt = errors.New("shm: corrupt shared memory")
	// ErrVersion means the segment uses another ABI version or layout.
	ErrVersion = errors.New("shm: incompatible ring ABI")
	// ErrOverwritten is returned by Reader.Release when the writer reused
	// the slot while the frame was being read: the bytes seen may be torn
	// and must be discarded (overwrite policy: the writer lapped the
	// reader; block policy: the reader joined From Oldest as the writer
	// reused the slot it started at).
	ErrOverwritten = errors.New("shm: frame was overwritten while being read")
	// ErrTooLarge means a payload does not fit the ring's slot size.
	ErrTooLarge = errors.New("shm: payload larger than the slot")
	// ErrNoReaderSlot means all reader table entries are in use.
	ErrNoReaderSlot = errors.New("shm: reader table is full")
	// ErrEvicted means the writer evicted this reader (it was believed dead);
	// open a new Reader to rejoin.
	ErrEvicted = errors.New("shm: reader was evicted by the writer, which believed it dead; open a new Reader to rejoin")
	// ErrShortBuffer means ReadInto's buffer is smaller than the frame; the
	// frame is not consumed.
	ErrShortBuffer = errors.New("shm: buffer too small for frame")
	// ErrNotSupported is returned on operating systems other than Linux.
	// It is the same error as sched.ErrNotSupported: errors.Is matches
	// either.
	ErrNotSupported = sys.ErrNotSupported
	// ErrNoSpace means the filesystem behind the segment directory has too
	// little free space; the *NoSpaceError gives the sizes.
	ErrNoSpace = errors.New("shm: not enough free space for segment")
	// ErrOverflow means a Semaphore is at MaxSemaphoreValue and cannot be
	// posted.
	ErrOverflow = errors.New("shm: semaphore value at its maximum")
	// ErrInvalid means an argument is out of range.
	ErrInvalid = errors.New("shm: invalid argument")

	// ErrForeignOwner: an existing segment belongs to a user that
	// SegmentOptions.Owners does not list (see OwnerError).
	ErrForeignOwner = errors.New("shm: segment belongs to another user")
)

// OpError describes a failed operation on a named object.
type OpError struct {
	Op   string // "create", "open", "reserve", ...
	Name string // segment or ring name
	Err  error
}

// Error returns "shm OP \"NAME\": " followed by the cause.
func (e *OpError) Error() string {
	if e.Name == "" {
		return "shm " + e.Op + ": " + e.Err.Error()
	}
	return "shm " + e.Op + " " + strconv.Quote(e.Name) + ": " + e.Err.Error()
}

// Unwrap returns the cause, for errors.Is and errors.As.
func (e *OpError) Unwrap() error { return e.Err }

// BusyError names the process holding a writer lease.
type BusyError struct {
	PID int
}

// Error names the live writer's pid and what to do.
func (e *BusyError) Error() string {
	return fmt.Sprintf("ring already has a live writer (pid %d); stop it or open a reader instead", e.PID)
}

// Unwrap returns ErrBusy.
func (e *BusyError) Unwrap() error { return ErrBusy }

// NoSpaceError reports the space a segment needs and what is free.
type NoSpaceError struct {
	Dir        string
	Need, Free uint64
}

// Error gives both sizes and how to make room.
func (e *NoSpaceError) Error() string {
	return fmt.Sprintf("segment needs %s but %s has only %s free; enlarge it (e.g. docker --shm-size, or mount -o remount,size=... %s) or use fewer/smaller slots",
		units.Bytes(float64(e.Need)), e.Dir, units.Bytes(float64(e.Free)), e.Dir)
}

// Unwrap returns ErrNoSpace.
func (e *NoSpaceError) Unwrap() error { return ErrNoSpace }

// OwnerError names the owner of an existing segment that
// SegmentOptions.Owners does not trust. The segment was not mapped.
type OwnerError struct {
	Path    string
	UID     int   // the segment's owner
	Trusted []int // SegmentOptions.Owners
}

// Error names the owner, the trusted users and the command that removes
// the segment.
func (e *OwnerError) Error() string {
	return fmt.Sprintf("%s belongs to uid %d, not to %s: that user could read every frame written into it, forge frames and truncate it, so it is not used; remove it (as that user or root: %s) or use another name",
		e.Path, e.UID, uidList(e.Trusted), RemoveCommand(e.Path))
}

// RemoveCommand is the edgeipc command line that removes the segment at
// path, for error messages: with --dir when it is not in DefaultDir, so
// that it works pasted as it is (from a CLI error, or from the log of a
// runtime with its own shm_dir).
func RemoveCommand(path string) string {
	cmd := "edgeipc ring rm " + strings.TrimPrefix(filepath.Base(path), FilePrefix)
	if dir := pathDir(path); dir != DefaultDir {
		cmd += " --dir " + dir
	}
	return cmd
}

// Unwrap returns ErrForeignOwner.
func (e *OwnerError) Unwrap() error { return ErrForeignOwner }

func uidList(uids []int) string {
	s := make([]string, len(uids))
	for i, u := range uids {
		s[i] = strconv.Itoa(u)
	}
	if len(s) == 1 {
		return "uid " + s[0]
	}
	return "uids " + strings.Join(s, ", ")
}

// CorruptError says which field of shared memory failed validation.
type CorruptError struct {
	Field string
	Value uint64
	Want  string
}

// Error names the field, the value found and the value wanted.
func (e *CorruptError) Error() string {
	return fmt.Sprintf("corrupt shared memory: %s = %d, want %s", e.Field, e.Value, e.Want)
}

// Unwrap returns ErrCorrupt.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

func corrupt(field string, v uint64, want string) error {
	return &CorruptError{Field: field, Value: v, Want: want}
}
