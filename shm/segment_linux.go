package shm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/internal/units"
)

// DefaultDir is where named segments live unless SegmentOptions.Dir or the
// EDGEIPC_SHM_DIR environment variable says otherwise.
const DefaultDir = "/dev/shm"

// FilePrefix starts the file name of every named edgeipc segment, so that
// listing and removal never touch other programs' objects.
const FilePrefix = "edgeipc."

// SegmentOptions controls how named segments are created and found.
type SegmentOptions struct {
	// Dir is the directory holding segments; "" means $EDGEIPC_SHM_DIR or
	// /dev/shm. It is taken as written, not cleaned: a ".." after a
	// symlink is the kernel's parent, as for a C or Python program given
	// the same text.
	Dir string
	// Group, if set (a group name or numeric id), makes created objects
	// mode 0660 owned by that group; otherwise they are 0600.
	Group string
	// Mode overrides the permission bits (only 0600 and 0660 are accepted).
	Mode os.FileMode
	// Owners, if not empty, lists the users (uids) an existing segment may
	// belong to. Opening a segment that belongs to anyone else fails with
	// an *OwnerError (matching ErrForeignOwner) before it is mapped: in a
	// directory others may write (/dev/shm) anyone can make a file under
	// a ring's name, and its owner can read every frame written into it,
	// forge frames, and truncate it under the mapping (SIGBUS). Creating
	// is not affected (a new segment is the creator's). Empty: any owner
	// the file permissions let in.
	Owners []int
}

func (o *SegmentOptions) dir() string {
	if o != nil && o.Dir != "" {
		return o.Dir
	}
	if d := os.Getenv("EDGEIPC_SHM_DIR"); d != "" {
		return d
	}
	return DefaultDir
}

func (o *SegmentOptions) modeAndGID() (os.FileMode, int, error) {
	mode := os.FileMode(0o600)
	gid := -1
	if o == nil {
		return mode, gid, nil
	}
	if o.Group != "" {
		mode = 0o660
		g, err := lookupGroup(o.Group)
		if err != nil {
			return 0, 0, err
		}
		gid = g
	}
	if o.Mode != 0 {
		if o.Mode != 0o600 && o.Mode != 0o660 {
			return 0, 0, fmt.Errorf("%w: mode %#o: use 0600 (owner only) or 0660 (with a group)", ErrInvalid, o.Mode)
		}
		mode = o.Mode
	}
	return mode, gid, nil
}

// LookupGroup returns the id of the group g names, a group name or a
// numeric gid, and requires the group to exist: a typo in a gid would
// otherwise share a segment with nobody (or with a stranger group created
// later). SegmentOptions.Group itself accepts any numeric gid (containers
// may have groups no /etc/group lists); the CLI and the runtime's config
// use LookupGroup.
func LookupGroup(g string) (int, error) {
	const fix = "name an existing group or gid (see getent group)"
	if _, err := strconv.ParseUint(g, 10, 32); err == nil {
		if _, err := user.LookupGroupId(g); err != nil {
			var unknown user.UnknownGroupIdError
			if errors.As(err, &unknown) {
				return 0, fmt.Errorf("no group has id %s: %s", g, fix)
			}
			return 0, fmt.Errorf("cannot look up group id %s: %v", g, err)
		}
		return lookupGroup(g)
	}
	gr, err := user.LookupGroup(g)
	if err != nil {
		var unknown user.UnknownGroupError
		if errors.As(err, &unknown) {
			return 0, fmt.Errorf("no such group: %s", fix)
		}
		return 0, fmt.Errorf("cannot look up group: %v", err)
	}
	return strconv.Atoi(gr.Gid)
}

func lookupGroup(g string) (int, error) {
	if n, err := strconv.ParseUint(g, 10, 64); err == nil {
		if n >= math.MaxUint32 { // (uid_t)-1 means "unchanged" to fchown
			return 0, fmt.Errorf("%w: group ID %s is out of range (0 to %d)", ErrInvalid, g, uint32(math.MaxUint32-1))
		}
		return int(n), nil
	}
	gr, err := user.LookupGroup(g)
	if err != nil {
		return 0, fmt.Errorf("%w: group %q: %v", ErrInvalid, g, err)
	}
	return strconv.Atoi(gr.Gid)
}

// Segment is a mapped shared-memory object: a named file under the segment
// directory, or an anonymous sealed memfd.
type Segment struct {
	name string
	path string // "" for memfd segments
	fd   int
	mem  []byte
	// settled: the file last changed long enough ago (settleTime) that no
	// creator can still be filling it in: do not wait for one.
	settled bool
}

// settleTime is how long after its last change a segment file is taken
// to be complete (or abandoned, if it is still incomplete): a creator sizes
// and fills it within microseconds, and Open waits for one at most this
// long. (A variable for tests.)
var settleTime = time.Second

// Name returns the segment's name (without directory or prefix).
func (s *Segment) Name() string { return s.name }

// Path returns the file path, or "" for an anonymous memfd segment.
func (s *Segment) Path() string { return s.path }

// Bytes returns the mapping. It is valid until Close.
func (s *Segment) Bytes() []byte { return s.mem }

// Size returns the mapping's length in bytes.
func (s *Segment) Size() int { return len(s.mem) }

// File returns a duplicate of the segment's descriptor, for handing to
// another process (exec.Cmd.ExtraFiles or SCM_RIGHTS). The caller closes it.
func (s *Segment) File() (*os.File, error) {
	if s.mem == nil {
		return nil, ErrClosed
	}
	nfd, err := unix.FcntlInt(uintptr(s.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("fcntl(F_DUPFD_CLOEXEC)", err)
	}
	return os.NewFile(uintptr(nfd), "edgeipc-segment:"+s.name), nil
}

// Close unmaps the segment and closes its descriptor. The named file stays:
// use Remove or RemoveSegment to delete it.
func (s *Segment) Close() error {
	if s.mem == nil {
		return ErrClosed
	}
	err := unix.Munmap(s.mem)
	s.mem = nil
	if cerr := unix.Close(s.fd); err == nil {
		err = cerr
	}
	return err
}

// retire is Close for a segment that goroutines may still be reading: it
// replaces the shared mapping with private zero pages at the same address
// (one atomic mmap MAP_FIXED, so a concurrent access sees either the ring
// or zeros, never a hole) and closes the descriptor. It returns the
// placeholder, which the caller unmaps with unmapRetired once nothing can
// touch it any more. Zeros read as "no owner, nothing published", which
// every reader and writer path treats as closed or empty.
func (s *Segment) retire() ([]byte, error) {
	if s.mem == nil {
		return nil, ErrClosed
	}
	mem := s.mem
	s.mem = nil
	_, err := unix.MmapPtr(-1, 0, unsafe.Pointer(&mem[0]), uintptr(len(mem)), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_FIXED|unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		// Fall back to unmapping: only a goroutine racing Close can notice.
		err = unix.Munmap(mem)
		mem = nil
	}
	if cerr := unix.Close(s.fd); err == nil {
		err = cerr
	}
	return mem, err
}

// unmapRetired releases a placeholder left by retire.
func unmapRetired(mem []byte) {
	if mem != nil {
		unix.Munmap(mem) // x/sys still tracks the range from the original Mmap
	}
}

// Removed reports whether the segment's file has no name left: it was
// removed (edgeipc ring rm, RemoveSegment), or replaced, as a runtime
// replaces a ring whose geometry, policy, mode or group a reload changed
// (it removes the old file and creates a new one under the name). No
// writer can open a removed ring any more, so a reader waiting on it
// waits in vain unless a writer that still holds it writes: open the ring
// by name again to follow a new one. It is false for a memfd segment or
// one opened from a descriptor, which never had a name here. Like the
// other methods it must not race Close.
func (s *Segment) Removed() (bool, error) {
	if s.mem == nil {
		return false, ErrClosed
	}
	if s.path == "" {
		return false, nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(s.fd, &st); err != nil {
		return false, os.NewSyscallError("fstat", err)
	}
	return st.Nlink == 0, nil
}

// Remove unlinks the segment's file (processes that mapped it keep their
// mapping). It is a no-op for memfd segments.
func (s *Segment) Remove() error {
	if s.path == "" {
		return nil
	}
	return unix.Unlink(s.path)
}

// SegmentPath returns the file path that names name under opts.
func SegmentPath(name string, opts *SegmentOptions) string {
	return joinDir(opts.dir(), FilePrefix+name)
}

// SegmentDir returns the segment directory of opts: opts.Dir, else
// $EDGEIPC_SHM_DIR, else DefaultDir, as written.
func SegmentDir(opts *SegmentOptions) string { return opts.dir() }

// CreateSegment creates a new named segment of size bytes, mode 0600
// (0660 with a group), preallocates it (so later page faults cannot SIGBUS
// for lack of space), and maps it. Where the filesystem allows (O_TMPFILE:
// tmpfs and the usual disk filesystems) the file is made unnamed and gets
// its name only once it is sized, with a link that never replaces a name;
// elsewhere it is created by name with O_CREAT|O_EXCL|O_NOFOLLOW. It fails
// with *NoSpaceError if the filesystem lacks room and with an error
// wrapping os.ErrExist if the name is taken.
func CreateSegment(name string, size int, opts *SegmentOptions) (*Segment, error) {
	return createSegment(name, size, opts, nil)
}

// createSegment is CreateSegment that fills the mapping with init (if not
// nil) before the segment gets its name, where the filesystem can make a
// file without one (O_TMPFILE, linked under its name once filled: tmpfs
// and the usual disk filesystems can). An opener then never finds the
// segment incomplete, however long init takes (seconds, for a ring of
// millions of slots), and a creator that dies half-way leaves nothing
// behind. Elsewhere the file is created under its name, empty, and filled
// there (openers wait for it, see openSegment and validateHeader).
func createSegment(name string, size int, opts *SegmentOptions, init func([]byte)) (*Segment, error) {
	if err := ValidName(name); err != nil {
		return nil, &OpError{"create", name, err}
	}
	if size <= 0 {
		return nil, &OpError{"create", name, fmt.Errorf("%w: size %d", ErrInvalid, size)}
	}
	mode, gid, err := opts.modeAndGID()
	if err != nil {
		return nil, &OpError{"create", name, err}
	}
	dir := opts.dir()
	if err := missingDir(dir); err != nil {
		return nil, &OpError{"create", name, err}
	}
	if err := CheckDir(dir); err != nil {
		return nil, &OpError{"create", name, err}
	}
	if err := checkSpace(dir, uint64(size)); err != nil {
		return nil, &OpError{"create", name, err}
	}
	path := joinDir(dir, FilePrefix+name)
	var st unix.Stat_t
	if unix.Lstat(path, &st) == nil {
		// Taken: say so before allocating and filling a segment that
		// could not be linked under the name anyway.
		return nil, existsError(name, path)
	}
	if fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600); err == nil {
		if seg, err, done := createUnnamed(fd, name, path, dir, size, mode, gid, init); done {
			return seg, err
		}
		// It cannot be given a name here (no /proc, and an older kernel
		// without CAP_DAC_READ_SEARCH for AT_EMPTY_PATH): create it by name.
	}
	// Created owner-only: the file starts in the creator's group, which is
	// not the configured one, so it is opened to a group only after the
	// fchown below.
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		if errors.Is(err, unix.EEXIST) {
			return nil, existsError(name, path)
		}
		return nil, &OpError{"create", name, &os.PathError{Op: "open", Path: path, Err: err}}
	}
	seg := &Segment{name: name, path: path, fd: fd}
	fail := func(err error) (*Segment, error) {
		unix.Unlink(path)
		unix.Close(fd)
		return nil, &OpError{"create", name, err}
	}
	mem, err := sizeAndMap(fd, dir, size, mode, gid)
	if err != nil {
		return fail(err)
	}
	if init != nil {
		init(mem)
	}
	seg.mem = mem
	return seg, nil
}

// createUnnamed sizes, maps and fills the unnamed file fd (O_TMPFILE),
// then links it under path. done is false, with fd closed, if the link
// cannot be made here for a reason other than the name being taken.
func createUnnamed(fd int, name, path, dir string, size int, mode os.FileMode, gid int, init func([]byte)) (seg *Segment, err error, done bool) {
	mem, err := sizeAndMap(fd, dir, size, mode, gid)
	if err != nil {
		unix.Close(fd)
		return nil, &OpError{"create", name, err}, true
	}
	if init != nil {
		init(mem)
	}
	// AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH on older kernels (ENOENT
	// without it); the descriptor's /proc link needs /proc.
	err = unix.Linkat(fd, "", unix.AT_FDCWD, path, unix.AT_EMPTY_PATH)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		err = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
	}
	if err == nil {
		return &Segment{name: name, path: path, fd: fd, mem: mem}, nil, true
	}
	unix.Munmap(mem)
	unix.Close(fd)
	if errors.Is(err, unix.EEXIST) {
		return nil, existsError(name, path), true
	}
	return nil, nil, false
}

// sizeAndMap gives the new file fd its group and mode, preallocates it
// and maps it.
func sizeAndMap(fd int, dir string, size int, mode os.FileMode, gid int) ([]byte, error) {
	// Group first, then the exact mode (the umask may have removed bits).
	if gid >= 0 {
		if err := unix.Fchown(fd, -1, gid); err != nil {
			return nil, fmt.Errorf("fchown to group %d: %w (are you a member of it?)", gid, err)
		}
	}
	if err := unix.Fchmod(fd, uint32(mode)); err != nil {
		return nil, os.NewSyscallError("fchmod", err)
	}
	if err := preallocate(fd, dir, int64(size)); err != nil {
		return nil, err
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, os.NewSyscallError("mmap", err)
	}
	return mem, nil
}

// existsError reports that the segment name at path is taken.
func existsError(name, path string) error {
	var st unix.Stat_t
	if unix.Lstat(path, &st) == nil && int(st.Uid) != os.Geteuid() {
		return &OpError{"create", name, fmt.Errorf("%s already exists and belongs to uid %d (remove it as that user or root with '%s' if it is stale): %w", path, st.Uid, RemoveCommand(path), os.ErrExist)}
	}
	return &OpError{"create", name, fmt.Errorf("%s already exists (remove it with '%s' if it is stale): %w", path, RemoveCommand(path), os.ErrExist)}
}

func preallocate(fd int, dir string, size int64) error {
	err := unix.Fallocate(fd, 0, 0, size)
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.ENOSPC) {
		free, _ := freeSpace(dir)
		return &NoSpaceError{Dir: dir, Need: uint64(size), Free: free}
	}
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) {
		return os.NewSyscallError("fallocate", err)
	}
	// Filesystem without fallocate: size the file and touch every page.
	if err := unix.Ftruncate(fd, size); err != nil {
		return os.NewSyscallError("ftruncate", err)
	}
	zero := make([]byte, 64<<10)
	for off := int64(0); off < size; off += int64(len(zero)) {
		n := int64(len(zero))
		if size-off < n {
			n = size - off
		}
		if _, err := unix.Pwrite(fd, zero[:n], off); err != nil {
			if errors.Is(err, unix.ENOSPC) {
				free, _ := freeSpace(dir)
				return &NoSpaceError{Dir: dir, Need: uint64(size), Free: free}
			}
			return os.NewSyscallError("pwrite", err)
		}
	}
	return nil
}

func freeSpace(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, &os.PathError{Op: "statfs", Path: dir, Err: err}
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}

// CheckDir refuses, with an error that says how to fix it, a segment
// directory that every user may write and that is not sticky: any of them
// could remove or rename a segment there and put a file of their own in
// its place for readers to open. /dev/shm is sticky (mode 1777). A
// directory that cannot be examined is left to the create to report.
func CheckDir(dir string) error {
	var st unix.Stat_t
	if unix.Stat(dir, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil
	}
	if st.Mode&0o002 != 0 && st.Mode&unix.S_ISVTX == 0 {
		return fmt.Errorf("segment directory %s is writable by every user (mode %#o) and not sticky: any of them could remove the rings' segments and put their own in their place for readers to open; make it sticky like /dev/shm (chmod +t %s) or writable by its owner only",
			dir, st.Mode&0o777, dir)
	}
	return nil
}

// missingDir returns an error wrapping os.ErrNotExist that names the
// segment directory dir if it does not exist, else nil.
func missingDir(dir string) error {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("segment directory %s does not exist (%w): create it, or check the directory given (SegmentOptions.Dir, EDGEIPC_SHM_DIR, --dir, shm_dir)", dir, &os.PathError{Op: "stat", Path: dir, Err: err})
	}
	return nil
}

// CheckSpace reports whether the filesystem of dir has need bytes free for
// new segments: nil, or a *NoSpaceError (matching ErrNoSpace) that names
// both sizes. A filesystem without a size limit (tmpfs with size=0, ramfs)
// always has room. CreateSegment makes the same check; CheckSpace lets a
// caller check several segments at once before it changes anything.
func CheckSpace(dir string, need uint64) error { return checkSpace(dir, need) }

func checkSpace(dir string, need uint64) error {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) == nil && st.Blocks == 0 {
		return nil // no size limit (tmpfs size=0, ramfs): fallocate reports a real shortage
	}
	free, err := freeSpace(dir)
	if err != nil {
		return err
	}
	if need > free {
		return &NoSpaceError{Dir: dir, Need: need, Free: free}
	}
	return nil
}

// OpenSegment maps an existing named segment. It refuses symlinks and
// anything that is not a regular file.
func OpenSegment(name string, opts *SegmentOptions) (*Segment, error) {
	return openSegment(name, opts, 0)
}

// openSegment is OpenSegment for a segment that must hold at least min
// bytes: a smaller file may be one whose creator has not sized it yet
// (CreateSegment makes it empty with O_EXCL, then allocates it), so it
// waits up to readyPolls times 10 ms for it to grow before mapping it.
func openSegment(name string, opts *SegmentOptions, min int64) (*Segment, error) {
	if err := ValidName(name); err != nil {
		return nil, &OpError{"open", name, err}
	}
	path := joinDir(opts.dir(), FilePrefix+name)
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			if err := missingDir(opts.dir()); err != nil {
				return nil, &OpError{"open", name, err}
			}
			return nil, &OpError{"open", name, fmt.Errorf("%s does not exist (create it with 'edgeipc ring create %s' or start the runtime): %w", path, name, os.ErrNotExist)}
		}
		if errors.Is(err, unix.ELOOP) {
			return nil, &OpError{"open", name, fmt.Errorf("%s is a symbolic link; refusing to follow it", path)}
		}
		return nil, &OpError{"open", name, &os.PathError{Op: "open", Path: path, Err: err}}
	}
	var st unix.Stat_t
	if err := checkOwner(fd, path, opts); err != nil {
		unix.Close(fd)
		return nil, &OpError{"open", name, err}
	}
	for i := 0; ; i++ {
		// Only a regular file can be a segment being sized: anything else
		// (a FIFO, which O_RDWR opens) is refused by mapFd at once.
		if unix.Fstat(fd, &st) != nil || st.Size >= min || i >= int(readyPolls.Load()) || settled(&st) ||
			st.Mode&unix.S_IFMT != unix.S_IFREG || isSemaphore(fd, &st) {
			break // mapFd reports a failed fstat
		}
		time.Sleep(10 * time.Millisecond)
	}
	seg, err := mapFd(fd, name)
	if err != nil {
		unix.Close(fd)
		return nil, &OpError{"open", name, err}
	}
	seg.path = path
	seg.settled = settled(&st)
	return seg, nil
}

// isSemaphore reports whether the file fd (described by st) is a complete
// named semaphore: one smaller than a ring's header is not a ring still
// being sized, and the caller (opening a ring) need not wait for it to grow.
func isSemaphore(fd int, st *unix.Stat_t) bool {
	if st.Size != semSegmentSize {
		return false
	}
	var b [4]byte
	n, err := unix.Pread(fd, b[:], 0)
	return err == nil && n == 4 && binary.NativeEndian.Uint32(b[:]) == semMagic
}

// checkOwner refuses the file open as fd if opts lists the users it may
// belong to and its owner is not one of them.
func checkOwner(fd int, path string, opts *SegmentOptions) error {
	if opts == nil || len(opts.Owners) == 0 {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return os.NewSyscallError("fstat", err)
	}
	if slices.Contains(opts.Owners, int(st.Uid)) {
		return nil
	}
	return &OwnerError{Path: path, UID: int(st.Uid), Trusted: slices.Clone(opts.Owners)}
}

// settled reports whether the file st describes last changed (content or
// inode) more than settleTime ago.
func settled(st *unix.Stat_t) bool {
	ch := time.Unix(int64(st.Ctim.Sec), int64(st.Ctim.Nsec)) // int32 fields on 32-bit ARM
	if m := time.Unix(int64(st.Mtim.Sec), int64(st.Mtim.Nsec)); m.After(ch) {
		ch = m
	}
	return time.Since(ch) > settleTime
}

func mapFd(fd int, name string) (*Segment, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, os.NewSyscallError("fstat", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%w: not a regular file", ErrInvalid)
	}
	if st.Size <= 0 || st.Size > 1<<40 || int64(int(st.Size)) != st.Size {
		return nil, corrupt("file size", uint64(st.Size), "a positive size that fits in memory")
	}
	mem, err := unix.Mmap(fd, 0, int(st.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, os.NewSyscallError("mmap", err)
	}
	return &Segment{name: name, fd: fd, mem: mem}, nil
}

// RemoveSegment unlinks the named segment's file. Whatever the file is, it
// is unlinked, never followed: a symbolic link is removed, not its target. A
// directory is refused.
func RemoveSegment(name string, opts *SegmentOptions) error {
	if err := ValidName(name); err != nil {
		return &OpError{"remove", name, err}
	}
	path := joinDir(opts.dir(), FilePrefix+name)
	if err := unix.Unlink(path); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return &OpError{"remove", name, fmt.Errorf("%s does not exist: %w", path, os.ErrNotExist)}
		}
		if errors.Is(err, unix.EISDIR) {
			return &OpError{"remove", name, fmt.Errorf("%s is a directory, not a segment: remove it yourself if it is not needed", path)}
		}
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			// In a sticky directory (/dev/shm) only the owner of a file,
			// the directory's owner or root may remove it.
			var st unix.Stat_t
			if unix.Lstat(path, &st) == nil && int(st.Uid) != os.Geteuid() {
				return &OpError{"remove", name, fmt.Errorf("%w: %s belongs to uid %d: remove it as that user or root", &os.PathError{Op: "unlink", Path: path, Err: err}, path, st.Uid)}
			}
		}
		return &OpError{"remove", name, &os.PathError{Op: "unlink", Path: path, Err: err}}
	}
	return nil
}

// SegmentInfo describes one named segment found by ListSegments.
type SegmentInfo struct {
	Name string `json:"name"`
	Path string `json:"path"`
	// Kind is "ring", "semaphore" or "unknown" for a regular file (read
	// from its first bytes), and for anything else that holds a segment's
	// name: "symlink", "directory", "fifo" or "other" (sockets, devices).
	Kind string      `json:"kind"`
	Size int64       `json:"size"`
	Mode os.FileMode `json:"mode"`
	UID  int         `json:"uid"`
	GID  int         `json:"gid"`
}

// ListSegments lists the edgeipc segments in the segment directory. It reads
// only the first bytes of each regular file to tell rings from semaphores.
// Other entries that hold a segment's name (a symbolic link, a directory, a
// FIFO) are listed with their kind, so that they can be found and removed;
// they are never followed or opened.
func ListSegments(opts *SegmentOptions) ([]SegmentInfo, error) {
	dir := opts.dir()
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, &OpError{"list", "", fmt.Errorf("segment directory %s does not exist (%w): check the directory given (--dir, EDGEIPC_SHM_DIR, shm_dir)", dir, err)}
	}
	if err != nil {
		return nil, &OpError{"list", "", err}
	}
	var out []SegmentInfo
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, FilePrefix) || ValidName(n[len(FilePrefix):]) != nil {
			continue
		}
		path := joinDir(dir, n)
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			continue // removed meanwhile
		}
		var kind string
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			kind = segmentKind(path)
		case unix.S_IFLNK:
			kind = "symlink"
		case unix.S_IFDIR:
			kind = "directory"
		case unix.S_IFIFO:
			kind = "fifo"
		default:
			kind = "other"
		}
		out = append(out, SegmentInfo{
			Name: n[len(FilePrefix):], Path: path, Kind: kind,
			Size: st.Size, Mode: os.FileMode(st.Mode & 0o777), UID: int(st.Uid), GID: int(st.Gid),
		})
	}
	return out, nil
}

func segmentKind(path string) string {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return "unknown"
	}
	defer unix.Close(fd)
	var b [4]byte
	if n, err := unix.Pread(fd, b[:], 0); err != nil || n != 4 {
		return "unknown"
	}
	switch le32(b[:]) {
	case ringMagic:
		return "ring"
	case semMagic:
		return "semaphore"
	}
	return "unknown"
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// NewMemfd creates an anonymous segment with memfd_create, sized and sealed
// against shrinking and growing (F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_SEAL), so
// no process holding it can cause SIGBUS by truncating it. Hand it to
// another process with File.
func NewMemfd(name string, size int) (*Segment, error) {
	if err := ValidName(name); err != nil {
		return nil, &OpError{"memfd", name, err}
	}
	if size <= 0 {
		return nil, &OpError{"memfd", name, fmt.Errorf("%w: size %d", ErrInvalid, size)}
	}
	fd, err := unix.MemfdCreate("edgeipc:"+name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, &OpError{"memfd", name, os.NewSyscallError("memfd_create", err)}
	}
	fail := func(err error) (*Segment, error) {
		unix.Close(fd)
		return nil, &OpError{"memfd", name, err}
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		return fail(os.NewSyscallError("ftruncate", err))
	}
	if err := unix.Fallocate(fd, 0, 0, int64(size)); err != nil && !errors.Is(err, unix.EOPNOTSUPP) {
		if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.ENOMEM) {
			return fail(fmt.Errorf("%w: memfd of %s: %v", ErrNoSpace, units.Bytes(float64(size)), err))
		}
		return fail(os.NewSyscallError("fallocate", err))
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL); err != nil {
		return fail(os.NewSyscallError("fcntl(F_ADD_SEALS)", err))
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail(os.NewSyscallError("mmap", err))
	}
	return &Segment{name: name, fd: fd, mem: mem}, nil
}

// OpenFd maps a segment received as a descriptor (from NewMemfd in another
// process). It takes ownership of f. It requires a memfd on tmpfs sealed
// with F_SEAL_SHRINK, so that the sender cannot truncate the memory under
// the mapping (nor hand over huge pages that fault when the pool runs dry).
func OpenFd(f *os.File, name string) (*Segment, error) {
	if f == nil {
		return nil, &OpError{"open fd", name, ErrInvalid}
	}
	// Take our own descriptor so f's finalizer cannot close it.
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, &OpError{"open fd", name, err}
	}
	nfd := -1
	var derr error
	if cerr := rc.Control(func(fd uintptr) {
		nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); cerr != nil {
		derr = cerr
	}
	f.Close()
	if derr != nil {
		return nil, &OpError{"open fd", name, os.NewSyscallError("fcntl(F_DUPFD_CLOEXEC)", derr)}
	}
	seals, err := unix.FcntlInt(uintptr(nfd), unix.F_GET_SEALS, 0)
	if err != nil || seals&unix.F_SEAL_SHRINK == 0 {
		unix.Close(nfd)
		return nil, &OpError{"open fd", name, fmt.Errorf("%w: descriptor is not a memfd sealed with F_SEAL_SHRINK; a sender could truncate it and crash this process with SIGBUS", ErrInvalid)}
	}
	// Only memory on tmpfs (a plain memfd) is safe with that seal: a
	// hugetlbfs memfd can still fault with SIGBUS when the huge-page pool
	// runs dry, which its sender can arrange.
	var fs unix.Statfs_t
	if err := unix.Fstatfs(nfd, &fs); err != nil || uint32(fs.Type) != unix.TMPFS_MAGIC {
		unix.Close(nfd)
		return nil, &OpError{"open fd", name, fmt.Errorf("%w: descriptor is not a memfd on tmpfs (file system type %#x); hugetlbfs and other memory can fault with SIGBUS", ErrInvalid, uint32(fs.Type))}
	}
	seg, err := mapFd(nfd, name)
	if err != nil {
		unix.Close(nfd)
		return nil, &OpError{"open fd", name, err}
	}
	return seg, nil
}

var _ io.Closer = (*Segment)(nil)
