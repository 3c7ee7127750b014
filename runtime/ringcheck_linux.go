package runtime

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/internal/units"
	"github.com/edgeipc/edgeipc/shm"
)

// checkRings checks, before apply changes anything, that the rings it is
// about to create can be created: added (rings new to the runtime) and
// changed (rings recreated with another geometry, policy, mode or group,
// whose old segment apply removes first). It checks what the kernel would
// refuse:
//
//   - the segment directory exists and the runtime may create files in it;
//   - a ring with a group can be given to it (the runtime is root, a
//     member of the group, or has CAP_CHOWN);
//   - nothing in the way: the path of a ring is free, names the segment
//     apply removes, or names a ring segment that apply would attach to or
//     replace (not a symlink, a directory, a FIFO, nor a ring of another
//     geometry that another runtime manages, nor another user's segment);
//   - space: the new segments, less what the segments they replace take
//     and what removed rings (the config no longer has them) with
//     remove_on_exit free, fit the free space of the directory's
//     filesystem. Added rings are created before anything is removed, so
//     they must fit on their own too.
//
// An error names every ring that cannot be created and why.
func (rt *Runtime) checkRings(nc *Config, added, changed, removed []string) error {
	if len(added)+len(changed) == 0 {
		return nil
	}
	dir := rt.shmDir
	var problems []string
	bad := func(ring, format string, a ...any) {
		problems = append(problems, fmt.Sprintf("ring %s: ", ring)+fmt.Sprintf(format, a...))
	}
	if err := checkSegmentDir(dir); err != nil {
		return err
	}
	page := int64(os.Getpagesize())
	alloc := func(n int64) int64 { return (n + page - 1) &^ (page - 1) }
	var addNeed, changeNeed int64
	var needers []string
	for _, n := range slices.Concat(added, changed) {
		isChanged := slices.Contains(changed, n)
		rc := nc.Rings[n]
		sc := rc.shmConfig(dir)
		size, err := sc.Size()
		if err != nil {
			bad(n, "%v", err)
			continue
		}
		if why := groupProblem(rc.Group); why != "" {
			bad(n, "%s", why)
			continue
		}
		var own *ringState
		if isChanged {
			rt.mu.Lock()
			own = rt.rings[n]
			rt.mu.Unlock()
			if own != nil && own.lock == nil {
				bad(n, "another edgeipc runtime manages it (it holds the segment's lock), so this runtime cannot recreate it with the new slots, slot_payload, policy, mode or group: stop that runtime first, or keep the ring's configuration")
				continue
			}
		}
		need := alloc(size)
		path := shm.SegmentPath(n, &sc.Segment)
		var st unix.Stat_t
		switch err := unix.Lstat(path, &st); {
		case errors.Is(err, unix.ENOENT):
		case err != nil:
			bad(n, "%v", &os.PathError{Op: "lstat", Path: path, Err: err})
			continue
		case st.Mode&unix.S_IFMT != unix.S_IFREG:
			bad(n, "%s is in the way: it is %s, not a ring segment; remove it (%s --force)", path, statType(st.Mode), shm.RemoveCommand(path))
			continue
		case own != nil && ownsPath(own, path):
			need -= st.Blocks * 512 // apply removes it first
		case int(st.Uid) != os.Geteuid():
			bad(n, "%s", foreignSegment(path, int(st.Uid)))
			continue
		default:
			// Another file: a stale segment (attached if it matches the
			// configuration, else removed and created again), or one that
			// another runtime manages.
			attach, why := probeSegment(rc, dir, path)
			if why != "" {
				bad(n, "%s", why)
				continue
			}
			if attach {
				need = 0
			} else {
				need -= st.Blocks * 512
			}
		}
		if isChanged {
			changeNeed += need
		} else {
			addNeed += need
		}
		if need > 0 {
			needers = append(needers, fmt.Sprintf("ring %s (%s more)", n, units.Bytes(float64(need))))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	if need := max(addNeed, addNeed+changeNeed-rt.freedByRemoval(removed)); need > 0 {
		if err := shm.CheckSpace(dir, uint64(need)); err != nil {
			return fmt.Errorf("%s: %w", strings.Join(needers, ", "), err)
		}
	}
	return nil
}

// freedByRemoval is the space that closing the removed rings frees before
// apply recreates the changed ones: the segments of those with
// remove_on_exit that this runtime manages and whose path still names
// them (ringState.close removes exactly those).
func (rt *Runtime) freedByRemoval(removed []string) int64 {
	var freed int64
	for _, n := range removed {
		rt.mu.Lock()
		rs := rt.rings[n]
		rt.mu.Unlock()
		if rs == nil || !rs.cfg.RemoveOnExit {
			continue
		}
		path := rs.ring.Segment().Path()
		var st unix.Stat_t
		if unix.Lstat(path, &st) == nil && ownsPath(rs, path) {
			freed += st.Blocks * 512
		}
	}
	return freed
}

// checkSegmentDir checks that dir is a directory the runtime may create
// segments in.
func checkSegmentDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("segment directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("segment directory %s is %s, not a directory", dir, fileType(fi.Mode()))
	}
	if err := unix.Faccessat(unix.AT_FDCWD, dir, unix.W_OK|unix.X_OK, unix.AT_EACCESS); err != nil {
		return fmt.Errorf("segment directory %s: the runtime (uid %d) cannot create files in it: %w", dir, os.Geteuid(), err)
	}
	return shm.CheckDir(dir)
}

// groupProblem says why the runtime could not give a new segment to group
// g ("" if it can, or g is ""): fchown(2) to a group needs membership of
// it or CAP_CHOWN.
func groupProblem(g string) string {
	if g == "" || os.Geteuid() == 0 {
		return ""
	}
	gid, err := shm.LookupGroup(g)
	if err != nil {
		return fmt.Sprintf("group %q: %v", g, err)
	}
	if gid == os.Getegid() {
		return ""
	}
	if gids, err := os.Getgroups(); err == nil && slices.Contains(gids, gid) {
		return ""
	}
	if hasCapChown() {
		return ""
	}
	return fmt.Sprintf("group %q (gid %d): the runtime (uid %d) is not a member of it, so it cannot give the segment to it: add the runtime's user to the group, or change group", g, gid, os.Geteuid())
}

// hasCapChown reports whether CAP_CHOWN is in the effective set.
func hasCapChown() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[0].Effective&(1<<unix.CAP_CHOWN) != 0
}

// ownsPath reports whether path names the segment rs has mapped and locked.
func ownsPath(rs *ringState, path string) bool {
	if rs.lock == nil {
		return false
	}
	same := false
	withFd(rs.lock, func(fd int) error { same = sameFile(path, fd); return nil })
	return same
}

// probeSegment looks at the ring segment at path, which the runtime does
// not manage, as openRing will: attach reports that openRing would attach
// to it (it matches rc); otherwise openRing removes and recreates it,
// unless why says that it would fail.
func probeSegment(rc *RingConfig, dir, path string) (attach bool, why string) {
	sc := rc.shmConfig(dir)
	r, err := shm.Open(rc.Name, &sc.Segment)
	if err == nil {
		attach = r.Slots() == rc.Slots && r.SlotPayload() == rc.SlotPayload && r.Policy() == sc.Policy
		r.Close()
		if attach {
			return true, ""
		}
		err = os.ErrExist
	}
	if !errors.Is(err, os.ErrExist) && !errors.Is(err, shm.ErrCorrupt) && !errors.Is(err, shm.ErrVersion) {
		return false, fmt.Sprintf("the existing segment %s cannot be used or replaced: %v", path, err)
	}
	if lockedElsewhere(path) {
		return false, fmt.Sprintf("the existing segment %s does not match the config, and another edgeipc runtime manages it, so it is not recreated: make the config match, or stop that runtime first", path)
	}
	return false, ""
}

// statType names the type of a file from its st_mode, for messages.
func statType(m uint32) string {
	switch m & unix.S_IFMT {
	case unix.S_IFLNK:
		return "a symlink"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFCHR, unix.S_IFBLK:
		return "a device"
	}
	return "a regular file"
}
