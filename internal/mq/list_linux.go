package mq

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/internal/sys"
)

// MountDir is where the mqueue file system is conventionally mounted.
const MountDir = "/dev/mqueue"

// Info describes one queue found by List.
type Info struct {
	Name string      // queue name (pass to Open or Unlink)
	Mode os.FileMode // permission bits
	UID  int
	GID  int
	// MaxMsg, MsgSize and CurMsgs are -1 when the queue could not be
	// opened to read them (Err says why, usually no read permission).
	MaxMsg  int
	MsgSize int
	CurMsgs int
	Err     error
}

// List lists the queues of this IPC namespace through /dev/mqueue, sorted
// by name. Queues exist whether or not the file system is mounted; listing
// needs the mount, and the error wraps ErrNotMounted when it is missing.
func List() ([]Info, error) { return ListDir(MountDir) }

// ListDir is List for an mqueue file system mounted at dir.
func ListDir(dir string) ([]Info, error) {
	notMounted := func(why string) error {
		return &OpError{Op: "list", Err: fmt.Errorf("%w: %s %s; mount it with `mkdir -p %s && mount -t mqueue mqueue %s` (queues exist without the mount; it is only needed to list them)",
			ErrNotMounted, dir, why, dir, dir)}
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, notMounted("does not exist")
		}
		return nil, &OpError{Op: "list", Err: &os.PathError{Op: "statfs", Path: dir, Err: err}}
	}
	if int64(st.Type) != sys.MqueueMagic {
		return nil, notMounted(fmt.Sprintf("is not an mqueue mount (file system type %#x)", st.Type))
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, &OpError{Op: "list", Err: err}
	}
	out := make([]Info, 0, len(ents))
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		fi, err := os.Lstat(p)
		if err != nil {
			continue // removed while listing
		}
		in := Info{Name: e.Name(), Mode: fi.Mode().Perm(), MaxMsg: -1, MsgSize: -1, CurMsgs: -1}
		if s, ok := fi.Sys().(*syscall.Stat_t); ok {
			in.UID, in.GID = int(s.Uid), int(s.Gid)
		}
		in.Err = statQueue(p, &in)
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// statQueue opens a queue by path (open(2) on the mqueue file system gives
// a queue fd) to read its attributes. Nothing is read from the fd: read(2)
// would return attribute text, and mq_getsetattr is exact.
func statQueue(path string, in *Info) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var a sys.MqAttr
	if err := sys.MqGetSetAttr(fd, nil, &a); err != nil {
		return err
	}
	in.MaxMsg, in.MsgSize, in.CurMsgs = a.Maxmsg, a.Msgsize, a.Curmsgs
	return nil
}
