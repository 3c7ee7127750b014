package cli

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/edgeipc/edgeipc/shm"
)

type pubOpts struct {
	framing  string
	typ      uint64
	create   bool
	wait     bool
	slots    int
	slotSize int
	policy   string
	group    string
	dir      string
	owner    string
	quiet    bool
}

// maxOversizeReports bounds the per-record messages about dropped records;
// the summary counts all of them.
const maxOversizeReports = 5

func init() {
	Register(&Command{
		Name:  "pub",
		Usage: "pub RING [--framing lines|len32] [--type N] [--create [--slots N] [--slot-size BYTES] [--policy P] [--group G]] [--wait] [--owner USER] [--dir DIR] [--quiet]",
		Short: "publish frames read from stdin into a ring",
		Long: `pub takes the ring's writer lease and writes one frame per record read
from stdin, until stdin ends:

  --framing lines   one frame per line, without the newline (default);
                    an empty line is a zero-length frame (the runtime's
                    lines framing skips empty lines instead), and a
                    last line without its newline is a frame too. A
                    carriage return before the newline (CRLF line ends,
                    as serial devices send) stays in the frame: drop it
                    with tr -d '\r' before pub
  --framing len32   one frame per record: a 4-byte little-endian length,
                    then that many bytes; stdin that ends inside a
                    record is an error (the records before it are
                    published)

A record larger than the ring's slot payload is dropped with an error that
names the slot size; pub goes on with the next record and exits 1 at the
end if any record was dropped. Under the block policy pub waits for the
slowest reader. When stdin ends it prints frames, bytes and dropped
records to stderr (unless --quiet).

If the ring is removed while pub runs ('edgeipc ring rm --force', or its
file deleted), pub notices within a second, stops reading stdin and exits
1: no new reader can open the removed ring.

pub exits 0 when stdin ends, 1 if a record was dropped, reading stdin
failed or ended inside a len32 record, or the ring was removed, 130 on SIGINT or SIGTERM
(also while a block-policy ring holds it up), and 2 on a usage error.

A ring has one live writer at a time: pub fails if another process holds
the lease. With --create a missing ring is created (with --slots,
--slot-size, --policy, --group). An existing ring is used as it is, but
must match each of --slots, --slot-size, --policy and --group you give:
otherwise pub fails naming the difference. Without --create a missing
ring is an error, unless --wait is given: then pub waits (until SIGINT
or SIGTERM) for another program, such as the runtime, to create it, and
reads stdin only once it has.

An existing ring must belong to you or root: in /dev/shm anyone may create
a file under a ring's name, and its owner reads every frame you publish.
pub refuses a ring of another user, naming the owner, before it maps it.
To write a ring you share with its owner through a group (one the runtime
creates as user edgeipc with group = "...", say), name that owner with
--owner edgeipc.

Examples:
  printf 'a\nb\nc\n' | edgeipc pub cam0 --create
  my-sensor | edgeipc pub --framing len32 --type 7 imu0
  my-sensor | edgeipc pub imu0 --wait    # started before the runtime that creates imu0`,
		Flags: func(fs *flag.FlagSet) {
			var o pubOpts
			fs.StringVar(&o.framing, "framing", "lines", "how stdin is split into frames: lines or len32")
			fs.Var(uintValue{n: &o.typ, max: 1<<32 - 1, want: "0 to 4294967295"}, "type", "application frame type written with every frame (0 to 4294967295)")
			fs.BoolVar(&o.create, "create", false, "create the ring if it does not exist")
			fs.BoolVar(&o.wait, "wait", false, "wait for another program to create the ring if it does not exist yet")
			fs.IntVar(&o.slots, "slots", shm.DefaultSlots, "with --create: number of slots, a power of two")
			fs.Var(slotSizeValue(&o.slotSize), "slot-size", fmt.Sprintf("with --create: largest frame payload, e.g. 64, 4k, 1m, up to 64m (default %d)", shm.DefaultSlotPayload))
			fs.StringVar(&o.policy, "policy", "overwrite", "with --create: overwrite or block")
			fs.StringVar(&o.group, "group", "", "with --create: make the ring mode 0660 for this group")
			fs.StringVar(&o.owner, "owner", "", "also accept an existing ring that belongs to this user (name or uid); by default only yours or root's")
			dirFlag(fs, &o.dir)
			fs.BoolVar(&o.quiet, "quiet", false, "do not print the summary")
		},
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			args, err := reparse(env, "pub", fs, args)
			if err != nil {
				return err
			}
			o := pubOpts{
				framing: getFlag[string](fs, "framing"), typ: getFlag[uint64](fs, "type"), create: getFlag[bool](fs, "create"), wait: getFlag[bool](fs, "wait"),
				slots: getFlag[int](fs, "slots"), slotSize: getFlag[int](fs, "slot-size"), policy: getFlag[string](fs, "policy"),
				group: getFlag[string](fs, "group"), dir: getFlag[string](fs, "dir"), owner: getFlag[string](fs, "owner"),
				quiet: getFlag[bool](fs, "quiet"),
			}
			return runPub(ctx, env, fs, &o, args)
		},
	})
}

type pubStats struct {
	frames, bytes, dropped uint64
	records                uint64 // records read, dropped included
}

func runPub(ctx context.Context, env *Env, fs *flag.FlagSet, o *pubOpts, args []string) error {
	name, err := oneRingArg("pub", "RING", args)
	if err != nil {
		return err
	}
	if o.create && o.wait {
		return Usagef("--create and --wait exclude each other: --create makes a missing ring, --wait waits for another program to make it")
	}
	if o.framing != "lines" && o.framing != "len32" {
		return Usagef("bad --framing %q: use lines or len32", o.framing)
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	if !o.create {
		for _, n := range []string{"slots", "slot-size", "policy", "group"} {
			if explicit[n] {
				return Usagef("--%s only applies with --create: edgeipc pub --create --%s ... %s", n, n, name)
			}
		}
	}
	pol, err := shm.ParsePolicy(o.policy)
	if err != nil {
		return Usagef("bad --policy %q: use overwrite or block", o.policy)
	}
	if o.slots < 2 || o.slots > shm.MaxSlots || o.slots&(o.slots-1) != 0 {
		return Usagef("bad --slots %d: use a power of two from 2 to %d", o.slots, shm.MaxSlots)
	}

	if o.group != "" {
		if _, err := shm.LookupGroup(o.group); err != nil {
			return Usagef("bad --group %q: %v", o.group, err)
		}
	}

	// An existing ring must be ours or root's, or the --owner's: anyone
	// else's is refused before it is mapped.
	owners := []int{os.Geteuid()}
	if os.Geteuid() != 0 {
		owners = append(owners, 0)
	}
	if o.owner != "" {
		uid, err := lookupUser(o.owner)
		if err != nil {
			return Usagef("bad --owner %q: %v", o.owner, err)
		}
		owners = append(owners, uid)
	}
	sopts := shm.SegmentOptions{Dir: o.dir, Group: o.group, Owners: owners}
	var r *shm.Ring
	if o.create {
		cfg := shm.Config{Slots: o.slots, SlotPayload: o.slotSize, Policy: pol, Segment: sopts}
		r, err = openOrCreate(name, cfg, explicit)
		if derr := segDirMissing(&sopts, err); derr != nil {
			err = derr
		} else if gerr := notInGroup(o.group, err); gerr != nil {
			err = gerr
		} else if errors.Is(err, os.ErrPermission) {
			err = ringDenied(name, &sopts, err)
		} else if werr := inTheWay(name, &sopts); err != nil && werr != nil {
			err = werr
		}
	} else {
		if o.wait {
			r, err = shm.OpenContext(ctx, name, &sopts)
		} else {
			r, err = shm.Open(name, &sopts)
		}
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			return err // interrupted while waiting: exit 130
		}
		if errors.Is(err, os.ErrNotExist) {
			err = ringMissing(name, &sopts, "pass --create", err) // pub can create it too
		} else {
			err = notRing(name, &sopts, err)
		}
	}
	if oe := (*shm.OwnerError)(nil); errors.As(err, &oe) {
		return fmt.Errorf("ring %s (%s) belongs to %s, not to you or root: that user would read every frame you publish (and can forge frames or truncate it), so pub does not write it; if you mean to write that user's ring, pass --owner %s; otherwise remove it (as that user or root: edgeipc ring rm %s%s) or use another name",
			name, oe.Path, ownerString(oe.UID), userName(oe.UID), name, dirArg(&sopts))
	}
	if err != nil {
		return err
	}
	defer r.Close()
	w, err := r.NewWriter()
	if err != nil {
		return err
	}
	defer w.Close()

	// A ring removed under pub (ring rm --force, or its file deleted)
	// reaches no new reader: pub stops, as sub does, rather than publish
	// into it while a new ring of that name waits for frames.
	pctx, stop := context.WithCancelCause(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		t := time.NewTicker(removedPoll)
		defer t.Stop()
		for {
			select {
			case <-pctx.Done():
				return
			case <-t.C:
				if gone, err := r.Segment().Removed(); err == nil && gone {
					stop(errRingRemoved)
					return
				}
			}
		}
	}()
	defer func() { stop(nil); <-watched }() // before r.Close: the watch uses its fd

	in := bufio.NewReaderSize(newCtxReader(pctx, env.Stdin), max(64<<10, r.SlotPayload()+1))
	var st pubStats
	if o.framing == "lines" {
		err = pubLines(pctx, env, w, uint32(o.typ), in, &st)
	} else {
		err = pubLen32(pctx, env, w, uint32(o.typ), in, &st)
	}
	removed := ctx.Err() == nil && errors.Is(context.Cause(pctx), errRingRemoved)
	if !o.quiet {
		// Also when interrupted: what was published before Ctrl-C (or
		// while a block-policy ring held pub up) is worth knowing.
		how := ""
		if removed {
			how = " (ring removed)"
		} else if ctx.Err() != nil {
			how = " (interrupted)"
		}
		fmt.Fprintf(env.Stderr, "pub %s: %s, %s, %d dropped%s\n", name, plural(st.frames, "frame"), plural(st.bytes, "byte"), st.dropped, how)
	}
	if removed {
		return fmt.Errorf("ring %s was removed while pub wrote to it: frames written to it reach no new reader; run pub again (with --create to make a new ring of that name)", name)
	}
	if err != nil {
		return err
	}
	if st.dropped > 0 {
		return &ExitError{Code: ExitFailure, Err: fmt.Errorf("%d of %d records dropped: larger than the ring's slot payload of %d bytes (recreate the ring with a larger --slot-size)",
			st.dropped, st.records, r.SlotPayload())}
	}
	return nil
}

// lookupUser returns the uid u names: a user name, or a numeric uid
// (which need not be listed in the user database: containers).
func lookupUser(u string) (int, error) {
	if n, err := strconv.ParseUint(u, 10, 32); err == nil && n < 1<<32-1 {
		return int(n), nil
	}
	pw, err := user.Lookup(u)
	if err != nil {
		return 0, fmt.Errorf("no such user: name an existing user or a uid (see getent passwd)")
	}
	return strconv.Atoi(pw.Uid)
}

// ownerString is "uid N (name)", or "uid N" for a uid without a name.
func ownerString(uid int) string {
	if n := userName(uid); n != strconv.Itoa(uid) {
		return fmt.Sprintf("uid %d (%s)", uid, n)
	}
	return fmt.Sprintf("uid %d", uid)
}

// openOrCreate opens the named ring, creating it from cfg if it is missing.
// An existing ring must match the settings the user gave (explicit holds
// the flag names: slots, slot-size, policy, group); the others do not
// matter.
func openOrCreate(name string, cfg shm.Config, explicit map[string]bool) (*shm.Ring, error) {
	for attempt := 0; ; attempt++ {
		r, err := shm.Open(name, &cfg.Segment)
		if err == nil {
			if err := matchExisting(r, cfg, explicit); err != nil {
				r.Close()
				return nil, err
			}
			return r, nil
		}
		if !errors.Is(err, os.ErrNotExist) || attempt == 3 {
			return nil, err
		}
		r, err = shm.Create(name, cfg)
		if !errors.Is(err, os.ErrExist) {
			return r, tooLarge(err)
		}
		// Another process created it first: open theirs.
	}
}

// tooLarge turns shm.Create's refusal of the geometry the flags asked for
// (each flag valid alone, the ring too large for this machine's address
// space) into a usage error that names the fix; other errors pass.
func tooLarge(err error) error {
	if errors.Is(err, shm.ErrInvalid) {
		return Usagef("%v: use fewer --slots or a smaller --slot-size", err)
	}
	return err
}

// matchExisting returns an error naming every setting given on the command
// line that the existing ring r does not have.
func matchExisting(r *shm.Ring, cfg shm.Config, explicit map[string]bool) error {
	var diff []string
	if explicit["slots"] && r.Slots() != cfg.Slots {
		diff = append(diff, fmt.Sprintf("it has %d slots, not %d (--slots)", r.Slots(), cfg.Slots))
	}
	// The ring rounds the payload up to a multiple of 64, as Create would.
	if want := int(shm.SlotSizeFor(cfg.SlotPayload)) - int(shm.SlotSizeFor(0)); explicit["slot-size"] && r.SlotPayload() != want {
		asked := fmt.Sprintf("%d (--slot-size)", want)
		if want != cfg.SlotPayload {
			asked = fmt.Sprintf("%d (--slot-size %d, rounded up to a multiple of 64)", want, cfg.SlotPayload)
		}
		diff = append(diff, fmt.Sprintf("its frames carry up to %d bytes, not %s", r.SlotPayload(), asked))
	}
	if explicit["policy"] && r.Policy() != cfg.Policy {
		diff = append(diff, fmt.Sprintf("its policy is %v, not %v (--policy)", r.Policy(), cfg.Policy))
	}
	path := r.Segment().Path()
	if explicit["group"] {
		gid, err := shm.LookupGroup(cfg.Segment.Group)
		if err != nil {
			return err
		}
		f, err := r.Segment().File()
		if err != nil {
			return err
		}
		fi, err := f.Stat()
		f.Close()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if mode := fi.Mode().Perm(); mode != 0o660 || int(st.Gid) != gid {
			diff = append(diff, fmt.Sprintf("it is mode %s, group %s, not mode 0660, group %s (--group; to share it as it is: chgrp %s %s && chmod 0660 %s)",
				modeString(mode), groupName(int(st.Gid)), groupName(gid), cfg.Segment.Group, path, path))
		}
	}
	if len(diff) == 0 {
		return nil
	}
	return fmt.Errorf("ring %s exists but does not match --create: %s; drop those flags to use it as it is, or remove it with 'edgeipc ring rm %s%s'",
		r.Name(), strings.Join(diff, "; "), r.Name(), dirArg(&cfg.Segment))
}

func oversize(env *Env, st *pubStats, n uint64, slot int) {
	st.dropped++
	if st.dropped <= maxOversizeReports {
		fmt.Fprintf(env.Stderr, "edgeipc pub: record %d dropped: %d bytes, larger than the ring's slot payload of %d bytes\n", st.records, n, slot)
	}
	if st.dropped == maxOversizeReports+1 {
		fmt.Fprintf(env.Stderr, "edgeipc pub: more records dropped; counting them in the summary only\n")
	}
}

func publish(ctx context.Context, w *shm.Writer, typ uint32, p []byte, st *pubStats) error {
	buf, err := w.ReserveContext(ctx, len(p))
	if err != nil {
		return err
	}
	copy(buf, p)
	if _, err := w.CommitWith(typ, 0); err != nil {
		return err
	}
	st.frames++
	st.bytes += uint64(len(p))
	return nil
}

func pubLines(ctx context.Context, env *Env, w *shm.Writer, typ uint32, in *bufio.Reader, st *pubStats) error {
	slot := w.Ring().SlotPayload()
	for {
		line, err := in.ReadSlice('\n')
		switch {
		case err == nil:
			st.records++
			line = line[:len(line)-1]
			if len(line) > slot {
				oversize(env, st, uint64(len(line)), slot)
				continue
			}
			if err := publish(ctx, w, typ, line, st); err != nil {
				return err
			}
		case errors.Is(err, bufio.ErrBufferFull):
			// Longer than the buffer, which is larger than a slot: skip
			// to the end of the line.
			st.records++
			n := uint64(len(line))
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = in.ReadSlice('\n')
				n += uint64(len(line))
			}
			if err == nil {
				n-- // the newline
			}
			oversize(env, st, n, slot)
			if err != nil && err != io.EOF {
				return err
			}
			if err == io.EOF {
				return nil
			}
		case err == io.EOF:
			if len(line) == 0 {
				return nil
			}
			// A last line without a newline.
			st.records++
			if len(line) > slot {
				oversize(env, st, uint64(len(line)), slot)
				return nil
			}
			return publish(ctx, w, typ, line, st)
		default:
			return err
		}
	}
}

func pubLen32(ctx context.Context, env *Env, w *shm.Writer, typ uint32, in *bufio.Reader, st *pubStats) error {
	slot := w.Ring().SlotPayload()
	var hdr [4]byte
	for {
		n, err := io.ReadFull(in, hdr[:])
		if err == io.EOF {
			return nil
		}
		if err == io.ErrUnexpectedEOF {
			return fmt.Errorf("stdin ended inside the length of record %d (%d of 4 bytes): is the input really --framing len32?", st.records+1, n)
		}
		if err != nil {
			return err
		}
		st.records++
		size := binary.LittleEndian.Uint32(hdr[:])
		if uint64(size) > uint64(slot) {
			got, err := io.CopyN(io.Discard, in, int64(size))
			if err == io.EOF {
				// Text fed to len32 ends so: "hell" is a length of 1.8 GB.
				return fmt.Errorf("stdin ended inside record %d: got %d of %d bytes, a length larger than the ring's slot payload of %d bytes: is the input really --framing len32?",
					st.records, got, size, slot)
			}
			if err != nil {
				return err
			}
			oversize(env, st, uint64(size), slot)
			continue
		}
		// Read the payload straight into the reserved slot.
		buf, err := w.ReserveContext(ctx, int(size))
		if err != nil {
			return err
		}
		if got, err := io.ReadFull(in, buf); err != nil {
			if err == io.ErrUnexpectedEOF || err == io.EOF {
				return fmt.Errorf("stdin ended inside record %d: got %d of %d bytes", st.records, got, size)
			}
			return err
		}
		if _, err := w.CommitWith(typ, 0); err != nil {
			return err
		}
		st.frames++
		st.bytes += uint64(size)
	}
}
