package runtime

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/shm"
)

// applyRingPerms gives the segment behind f (a ring this runtime reattached
// to, owns and manages) the mode and group rc configures, as a new segment
// would get them and as a reused FIFO does. It returns a line for the log
// ("" if nothing changed).
func applyRingPerms(f *os.File, rc *RingConfig) (msg string, err error) {
	mode := uint32(rc.Mode)
	if mode == 0 {
		mode = 0o600
		if rc.Group != "" {
			mode = 0o660
		}
	}
	gid := -1
	if rc.Group != "" {
		if gid, err = shm.LookupGroup(rc.Group); err != nil {
			return "", fmt.Errorf("group %q: %w", rc.Group, err)
		}
	}
	err = withFd(f, func(fd int) error {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return os.NewSyscallError("fstat", err)
		}
		cur := st.Mode & 0o7777
		if cur == mode && (gid < 0 || int(st.Gid) == gid) {
			return nil
		}
		was := fmt.Sprintf("mode %#o, gid %d", cur, st.Gid)
		// Narrowed to its owner first, so that neither its old group nor
		// the new one has the other's access between the two calls.
		if gid >= 0 && int(st.Gid) != gid {
			if cur&0o077 != 0 {
				if err := unix.Fchmod(fd, 0o600); err != nil {
					return os.NewSyscallError("fchmod", err)
				}
			}
			if err := unix.Fchown(fd, -1, gid); err != nil {
				return os.NewSyscallError("fchown", err)
			}
		}
		if err := unix.Fchmod(fd, mode); err != nil {
			return os.NewSyscallError("fchmod", err)
		}
		msg = fmt.Sprintf("the existing segment had %s; it has the configured mode %#o", was, mode)
		if gid >= 0 {
			msg += fmt.Sprintf(" and gid %d", gid)
		}
		msg += " now"
		return nil
	})
	return msg, err
}
