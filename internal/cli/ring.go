package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/edgeipc/edgeipc/internal/units"
	"github.com/edgeipc/edgeipc/shm"
)

// ringSub is one "edgeipc ring" subcommand.
type ringSub struct {
	name, usage, short string
	examples           string // for -h, one command per line, indented
	flags              func(fs *flag.FlagSet, o *ringOpts)
	run                func(ctx context.Context, env *Env, o *ringOpts, args []string) error
}

// ringOpts holds every ring subcommand's flags (each subcommand declares
// the ones it uses).
type ringOpts struct {
	dir      string
	slots    int
	slotSize int
	policy   string
	group    string
	json     bool
	force    bool
	stale    bool
}

func (o *ringOpts) segOpts() *shm.SegmentOptions {
	return &shm.SegmentOptions{Dir: o.dir, Group: o.group}
}

func dirFlag(fs *flag.FlagSet, p *string) {
	fs.StringVar(p, "dir", "", "segment directory (default $EDGEIPC_SHM_DIR or /dev/shm)")
}

var ringSubs = []*ringSub{
	{
		name: "create", usage: "ring create NAME [--slots N] [--slot-size BYTES] [--policy overwrite|block] [--group G] [--dir DIR]",
		short: "create a ring",
		flags: func(fs *flag.FlagSet, o *ringOpts) {
			fs.IntVar(&o.slots, "slots", shm.DefaultSlots, "number of slots, a power of two from 2 to 16777216")
			fs.Var(slotSizeValue(&o.slotSize), "slot-size", fmt.Sprintf("largest frame payload in bytes, e.g. 64, 4k, 1m, up to 64m; rounded up to a multiple of 64 (default %d)", shm.DefaultSlotPayload))
			fs.StringVar(&o.policy, "policy", "overwrite", "what a full ring does: overwrite (readers lose the oldest frames) or block (the writer waits)")
			fs.StringVar(&o.group, "group", "", "group name or id: create the ring mode 0660 for that group (default mode 0600)")
			dirFlag(fs, &o.dir)
		},
		run: ringCreate,
		examples: `  edgeipc ring create cam0 --slots 64 --slot-size 1m
  edgeipc ring create imu0 --slot-size 64 --policy block`,
	},
	{
		name: "ls", usage: "ring ls [--json] [--dir DIR]", short: "list edgeipc segments",
		flags: func(fs *flag.FlagSet, o *ringOpts) {
			fs.BoolVar(&o.json, "json", false, "print JSON instead of a table")
			dirFlag(fs, &o.dir)
		},
		run: ringList,
		examples: `  edgeipc ring ls
  edgeipc ring ls --json | jq -r '.[] | select(.kind == "ring") | .name'`,
	},
	{
		name: "inspect", usage: "ring inspect NAME [--json] [--dir DIR]", short: "show a ring's header, writer and readers",
		flags: func(fs *flag.FlagSet, o *ringOpts) {
			fs.BoolVar(&o.json, "json", false, "print JSON instead of text")
			dirFlag(fs, &o.dir)
		},
		run: ringInspect,
		examples: `  edgeipc ring inspect cam0
  edgeipc ring inspect cam0 --json | jq .totals.lost`,
	},
	{
		name: "rm", usage: "ring rm NAME... | ring rm --stale [NAME...] [--force] [--dir DIR]", short: "remove rings",
		flags: func(fs *flag.FlagSet, o *ringOpts) {
			fs.BoolVar(&o.force, "force", false, "also remove rings in use and what is not a ring: semaphores, unreadable files, FIFOs, symbolic links (the link, never its target); never a directory")
			fs.BoolVar(&o.stale, "stale", false, "remove only rings without a live writer or reader; with no NAME, every such ring")
			dirFlag(fs, &o.dir)
		},
		run: ringRemove,
		examples: `  edgeipc ring rm cam0
  edgeipc ring rm --stale`,
	},
}

func init() {
	var long strings.Builder
	long.WriteString(`A ring is a named shared-memory segment of fixed-size slots with one
writer and many readers, stored as the file edgeipc.NAME in the segment
directory (--dir, else $EDGEIPC_SHM_DIR, else /dev/shm).

Subcommands:
`)
	for _, s := range ringSubs {
		fmt.Fprintf(&long, "  %-8s %s\n", s.name, s.short)
		fmt.Fprintf(&long, "           edgeipc %s\n", s.usage)
	}
	long.WriteString(`
ring create makes the file mode 0600 (only you), or 0660 for --group, a
group you are a member of (root may name any).
--slot-size is the largest payload one frame can carry.

ring ls lists every edgeipc segment with its size, mode and owner, and for
rings the geometry, policy, head sequence, writer and readers (names
longer than 40 characters are cut short with "…"; --json has them whole). Anything
else named edgeipc.NAME (a symbolic link, a directory, a FIFO) is listed
with that kind, so that you can see what blocks 'ring create NAME'; ls
never follows or opens it.

ring inspect shows the header, the writer lease (pid, alive, epoch), every
reader (pid, alive, cursor, lag, lost, frames) and totals. A reader
publishes its frame count every 64 frames (it costs a store to shared
memory), so FRAMES lags by up to 63: a reader that read fewer shows 0.

ring ls --json prints one array with an object per segment: "name",
"path", "kind" (ring, semaphore, unknown, symlink, directory, fifo or
other), "size" (bytes), "mode" (e.g. "0600"), "uid", "gid", "owner",
"group"; a ring also has "ring": {"slots", "slot_payload", "policy",
"head", "writer_pid", "writer_alive", "readers", "readers_alive"}, a
symbolic link "target", and an entry ls could not read "error".

ring inspect --json prints one object: "name", "abi_version", "slots",
"slot_size", "slot_payload", "policy", "size", "base_seq", "head",
"frames" (written since base_seq), "writer_pid", "writer_alive",
"writer_epoch", "sleepers", "ev_sleepers", "readers" (an array, one
object per reader: "index", "pid", "alive", "cursor", "lag", "lost",
"frames", "eventfd", and "joining" while one is still joining), "path",
"mode", "uid", "gid", "owner", "group", and "totals": {"readers",
"readers_alive", "lost", "max_lag", "reader_frames"}.

ring rm refuses a ring with a live writer or reader, naming their pids,
and a segment that is not a ring, unless --force: a process using a
removed ring keeps it, so it never sees a ring created later under the
same name (edgeipc pub exits 1 within a second; sub and hz once the
ring's writer is gone; edgeipc run creates a ring of its configuration
again within a second and restarts its sources and sinks). With --stale it removes only rings whose writer and readers are
all dead (or that never had any), skipping the others: use it to clean up
after crashes. With no NAME it also skips, and lists as kept, stale rings
of other users that this user may not remove (in /dev/shm only a file's
owner or root may). A process that opens a ring after the check may still be
holding the unlinked file.

Run 'edgeipc ring SUBCOMMAND -h' (or 'edgeipc help ring SUBCOMMAND') for
a subcommand's flags.

Examples:
  edgeipc ring create cam0 --slots 64 --slot-size 1m
  edgeipc ring ls
  edgeipc ring inspect cam0 --json
  edgeipc ring rm --stale`)
	Register(&Command{
		Name:  "ring",
		Usage: "ring create|ls|inspect|rm [flags] [NAME...]",
		Short: "create, list, inspect and remove rings",
		Long:  long.String(),
		Run:   runRing,
	})
}

func runRing(ctx context.Context, env *Env, _ *flag.FlagSet, args []string) error {
	if len(args) == 0 {
		return Usagef("subcommand missing: edgeipc ring create|ls|inspect|rm")
	}
	var sub *ringSub
	for _, s := range ringSubs {
		if s.name == args[0] {
			sub = s
		}
	}
	if sub == nil {
		return Usagef("unknown subcommand %q: edgeipc ring create|ls|inspect|rm", args[0])
	}
	var o ringOpts
	fs := flag.NewFlagSet("edgeipc ring "+sub.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	sub.flags(fs, &o)
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(env.Stdout, "Usage: edgeipc %s\n\n%s\n\nFlags:\n", sub.usage, sub.short)
			printFlags(env.Stdout, fs)
			fmt.Fprintf(env.Stdout, "\nExamples:\n%s\n", sub.examples)
			return nil
		}
		err = Usagef("%s", flagError(fs, err))
	} else if err = sub.run(ctx, env, &o, pos); err == nil {
		err = outputErr(env)
	}
	if err != nil {
		// Errors name the subcommand and its usage line: "edgeipc ring
		// create: bad --slots 3 ...", "usage: edgeipc ring create NAME ...".
		err = &SubcommandError{Name: "ring " + sub.name, Usage: sub.usage, Err: err}
	}
	return err
}

// ringFlagFirst is the message for args of "edgeipc ring" that start with
// a flag of its subcommands ('edgeipc ring --dir /run/edgeipc ls'): the
// flags belong to the subcommand, after it. The flag package said only
// "flag provided but not defined: --dir", a flag that ring ls has. Other
// errors keep msg.
func ringFlagFirst(args []string, msg string) string {
	if len(args) == 0 || !strings.HasPrefix(args[0], "-") || args[0] == "-" || args[0] == "--" {
		return msg
	}
	name, _, _ := strings.Cut(strings.TrimLeft(args[0], "-"), "=")
	has := func(s *ringSub) bool {
		fs := flag.NewFlagSet(s.name, flag.ContinueOnError)
		s.flags(fs, new(ringOpts))
		return fs.Lookup(name) != nil
	}
	for i, a := range args {
		for _, s := range ringSubs {
			if a == s.name && has(s) {
				line := append([]string{"edgeipc ring", a}, args[:i]...)
				line = append(line, args[i+1:]...)
				return fmt.Sprintf("flag --%s is before the subcommand: flags go after it ('%s')", name, strings.Join(line, " "))
			}
		}
	}
	if slices.ContainsFunc(ringSubs, has) && !slices.ContainsFunc(args, func(a string) bool {
		return slices.ContainsFunc(ringSubs, func(s *ringSub) bool { return s.name == a })
	}) {
		return fmt.Sprintf("flag --%s is before the subcommand: flags go after it ('edgeipc ring create|ls|inspect|rm [flags] [NAME...]')", name)
	}
	return msg
}

func checkRingName(sub, name string) error {
	if err := shm.ValidName(name); err != nil {
		return Usagef("bad ring name %q: use 1 to 200 characters from A-Z a-z 0-9 . _ -, not starting with '.' or '-' (edgeipc %s)", name, sub)
	}
	return nil
}

// oneRingArg returns the single ring name a command takes (cmd "pub",
// placeholder "RING"), or a usage error that says what was wrong.
func oneRingArg(cmd, placeholder string, args []string) (string, error) {
	switch {
	case len(args) == 0:
		return "", Usagef("ring name missing: edgeipc %s %s", cmd, placeholder)
	case len(args) > 1:
		return "", Usagef("%s takes one %s, got %d arguments: %s", cmd, placeholder, len(args), strings.Join(args, " "))
	}
	if err := checkRingName(cmd+" "+placeholder, args[0]); err != nil {
		return "", err
	}
	return args[0], nil
}

func ringCreate(ctx context.Context, env *Env, o *ringOpts, args []string) error {
	name, err := oneRingArg("ring create", "NAME", args)
	if err != nil {
		return err
	}
	pol, err := shm.ParsePolicy(o.policy)
	if err != nil {
		return Usagef("bad --policy %q: use overwrite or block", o.policy)
	}
	if o.slots < 2 || o.slots > shm.MaxSlots || o.slots&(o.slots-1) != 0 {
		return Usagef("bad --slots %d: use a power of two from 2 to %d, e.g. --slots 256", o.slots, shm.MaxSlots)
	}
	if o.group != "" {
		if _, err := shm.LookupGroup(o.group); err != nil {
			return Usagef("bad --group %q: %v", o.group, err)
		}
	}
	r, err := shm.Create(name, shm.Config{Slots: o.slots, SlotPayload: o.slotSize, Policy: pol, Segment: *o.segOpts()})
	if err != nil {
		if derr := segDirMissing(o.segOpts(), err); derr != nil {
			return derr
		}
		if werr := inTheWay(name, o.segOpts()); werr != nil && errors.Is(err, os.ErrExist) {
			return werr
		}
		if gerr := notInGroup(o.group, err); gerr != nil {
			return gerr
		}
		return tooLarge(err)
	}
	defer r.Close()
	path := r.Segment().Path()
	mode := "?"
	if fi, err := os.Lstat(path); err == nil {
		mode = modeString(fi.Mode())
	}
	fmt.Fprintf(env.Stdout, "created ring %s: %d slots, up to %d bytes per frame, policy %s, %s, %s mode %s\n",
		r.Name(), r.Slots(), r.SlotPayload(), r.Policy(), units.Bytes(float64(r.Size())), path, mode)
	return nil
}

// lsEntry is one line of "ring ls".
type lsEntry struct {
	Name  string  `json:"name"`
	Path  string  `json:"path"`
	Kind  string  `json:"kind"`
	Size  int64   `json:"size"`
	Mode  string  `json:"mode"`
	UID   int     `json:"uid"`
	GID   int     `json:"gid"`
	Owner string  `json:"owner"`
	Group string  `json:"group"`
	Ring  *lsRing `json:"ring,omitempty"`
	// Target is where a symlink points (never followed).
	Target string `json:"target,omitempty"`
	Error  string `json:"error,omitempty"`
}

type lsRing struct {
	Slots        int    `json:"slots"`
	SlotPayload  int    `json:"slot_payload"`
	Policy       string `json:"policy"`
	Head         uint32 `json:"head"`
	WriterPID    int    `json:"writer_pid"`
	WriterAlive  bool   `json:"writer_alive"`
	Readers      int    `json:"readers"`
	ReadersAlive int    `json:"readers_alive"`
}

func ringList(ctx context.Context, env *Env, o *ringOpts, args []string) error {
	if len(args) != 0 {
		return Usagef("ring ls takes no arguments (got %s); to look at one ring use: edgeipc ring inspect NAME", strings.Join(args, " "))
	}
	segs, err := shm.ListSegments(o.segOpts())
	if err != nil {
		return err
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].Name < segs[j].Name })
	out := make([]lsEntry, 0, len(segs))
	for _, s := range segs {
		e := lsEntry{Name: s.Name, Path: s.Path, Kind: s.Kind, Size: s.Size, Mode: modeString(s.Mode),
			UID: s.UID, GID: s.GID, Owner: userName(s.UID), Group: groupName(s.GID)}
		if s.Kind == "symlink" {
			e.Target, _ = os.Readlink(s.Path)
		}
		if s.Kind == "unknown" && syscall.Access(s.Path, 4 /* R_OK */) != nil {
			// ls could not read its first bytes: it may well be a ring.
			e.Error = fmt.Sprintf("not readable by you (owner %s, mode %s): it may be a ring; see 'edgeipc ring inspect %s%s'", e.Owner, e.Mode, s.Name, dirArg(o.segOpts()))
		}
		if s.Kind == "ring" {
			if r, err := shm.Open(s.Name, o.segOpts()); err != nil {
				e.Error = err.Error()
			} else {
				in := r.Inspect()
				r.Close()
				lr := &lsRing{Slots: in.Slots, SlotPayload: in.SlotPayload, Policy: in.Policy, Head: in.Head,
					WriterPID: in.WriterPID, WriterAlive: in.WriterAlive, Readers: len(in.Readers)}
				for _, rd := range in.Readers {
					if rd.Alive {
						lr.ReadersAlive++
					}
				}
				e.Ring = lr
			}
		}
		out = append(out, e)
	}
	if o.json {
		return writeJSON(env.Stdout, out)
	}
	if len(out) == 0 {
		fmt.Fprintf(env.Stdout, "no edgeipc segments in %s\n", segDir(o.dir))
		return nil
	}
	tw := newTable(env.Stdout)
	fmt.Fprintln(tw, "NAME\tKIND\tSIZE\tMODE\tOWNER\tSLOTS\tPAYLOAD\tPOLICY\tHEAD\tWRITER\tREADERS")
	for _, e := range out {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s:%s\t", clip(e.Name, lsNameWidth), e.Kind, units.Bytes(float64(e.Size)), e.Mode, e.Owner, e.Group)
		switch {
		case e.Ring != nil:
			fmt.Fprintf(tw, "%d\t%d\t%s\t%d\t%s\t%d (%d alive)\n", e.Ring.Slots, e.Ring.SlotPayload, e.Ring.Policy, e.Ring.Head,
				writerString(e.Ring.WriterPID, e.Ring.WriterAlive), e.Ring.Readers, e.Ring.ReadersAlive)
		case e.Error != "":
			fmt.Fprintf(tw, "-\t-\t-\t-\t-\t-\t(%s)\n", printable(e.Error))
		case e.Kind == "symlink":
			// Anyone may make the link: its target may hold escapes.
			fmt.Fprintf(tw, "-\t-\t-\t-\t-\t-\t(not a ring: a link to %s)\n", printable(e.Target))
		case e.Kind == "directory" || e.Kind == "fifo" || e.Kind == "other":
			fmt.Fprintf(tw, "-\t-\t-\t-\t-\t-\t(not a ring)\n")
		case e.Kind == "unknown":
			fmt.Fprintf(tw, "-\t-\t-\t-\t-\t-\t(neither a ring nor a semaphore, or still being created)\n")
		default:
			fmt.Fprint(tw, "-\t-\t-\t-\t-\t-\n")
		}
	}
	return tw.Flush()
}

// lsNameWidth caps the NAME column of the ring ls table: one long name
// (up to 200 characters) would otherwise widen it for every row. --json
// has the full names.
const lsNameWidth = 40

// clip shortens s to n characters, ending it with an ellipsis if it was
// longer.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func writerString(pid int, alive bool) string {
	switch {
	case pid == 0:
		return "none"
	case alive:
		return strconv.Itoa(pid) + " alive"
	}
	return strconv.Itoa(pid) + " dead"
}

func segDir(dir string) string {
	if dir != "" {
		return dir
	}
	if d := os.Getenv("EDGEIPC_SHM_DIR"); d != "" {
		return d
	}
	return shm.DefaultDir
}

// inspectOut is the JSON of "ring inspect": the ring's Info plus file
// metadata and totals.
type inspectOut struct {
	shm.Info
	Path   string        `json:"path"`
	Mode   string        `json:"mode"`
	UID    int           `json:"uid"`
	GID    int           `json:"gid"`
	Owner  string        `json:"owner"`
	Group  string        `json:"group"`
	Totals inspectTotals `json:"totals"`
}

type inspectTotals struct {
	Readers      int    `json:"readers"`
	ReadersAlive int    `json:"readers_alive"`
	Lost         uint64 `json:"lost"`
	MaxLag       uint32 `json:"max_lag"`
	ReaderFrames uint64 `json:"reader_frames"`
}

func ringInspect(ctx context.Context, env *Env, o *ringOpts, args []string) error {
	name, err := oneRingArg("ring inspect", "NAME", args)
	if err != nil {
		return err
	}
	r, err := shm.Open(name, o.segOpts())
	if err != nil {
		return notRing(name, o.segOpts(), err)
	}
	out := inspectOut{Info: r.Inspect(), Path: r.Segment().Path()}
	// The owner and mode of the file inspected (its descriptor), not of
	// whatever the path names by now.
	if f, err := r.Segment().File(); err == nil {
		if fi, err := f.Stat(); err == nil {
			out.Mode = modeString(fi.Mode())
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				out.UID, out.GID = int(st.Uid), int(st.Gid)
				out.Owner, out.Group = userName(out.UID), groupName(out.GID)
			}
		}
		f.Close()
	}
	r.Close()
	t := &out.Totals
	for _, rd := range out.Readers {
		t.Readers++
		if rd.Alive {
			t.ReadersAlive++
		}
		t.Lost += uint64(rd.Lost)
		t.ReaderFrames += uint64(rd.Frames)
		if rd.Lag > t.MaxLag {
			t.MaxLag = rd.Lag
		}
	}
	if o.json {
		return writeJSON(env.Stdout, out)
	}
	w := env.Stdout
	fmt.Fprintf(w, "ring %s\n", out.Name)
	fmt.Fprintf(w, "  file      %s, mode %s, owner %s:%s, %s\n", out.Path, out.Mode, out.Owner, out.Group, units.Bytes(float64(out.Size)))
	fmt.Fprintf(w, "  layout    abi v%d, %d slots of %d bytes (payload up to %d bytes), policy %s\n",
		out.ABIVersion, out.Slots, out.SlotSize, out.SlotPayload, out.Policy)
	fmt.Fprintf(w, "  head      seq %d, %d frames written since base seq %d, sleeping readers: %d on the futex, %d on eventfds\n",
		out.Head, out.Frames, out.BaseSeq, out.Sleepers, out.EvSleepers)
	fmt.Fprintf(w, "  writer    %s, lease epoch %d\n", writerString(out.WriterPID, out.WriterAlive), out.WriterEpoch)
	fmt.Fprintf(w, "  readers   %d (%d alive), %d frames lost in total, max lag %d\n", t.Readers, t.ReadersAlive, t.Lost, t.MaxLag)
	if len(out.Readers) > 0 {
		tw := newTable(w)
		fmt.Fprintln(tw, "    SLOT\tPID\tALIVE\tCURSOR\tLAG\tLOST\tFRAMES\tWAKE")
		for _, rd := range out.Readers {
			wake := "futex"
			if rd.Event {
				wake = "eventfd"
			}
			fmt.Fprintf(tw, "    %d\t%d\t%v\t%d\t%d\t%d\t%d\t%s\n", rd.Index, rd.PID, rd.Alive, rd.Cursor, rd.Lag, rd.Lost, rd.Frames, wake)
		}
		return tw.Flush()
	}
	return nil
}

func ringRemove(ctx context.Context, env *Env, o *ringOpts, args []string) error {
	if len(args) == 0 && !o.stale {
		return Usagef("ring name missing: edgeipc ring rm NAME... (or edgeipc ring rm --stale to remove every ring left by dead processes)")
	}
	for _, n := range args {
		if err := checkRingName("ring rm NAME...", n); err != nil {
			return err
		}
	}
	segs, err := shm.ListSegments(o.segOpts())
	if err != nil {
		return err
	}
	byName := make(map[string]shm.SegmentInfo, len(segs))
	for _, s := range segs {
		byName[s.Name] = s
	}
	names := args
	sweep := len(names) == 0 // --stale with no NAME: every stale ring
	if sweep {
		for _, s := range segs {
			if s.Kind == "ring" {
				names = append(names, s.Name)
			}
		}
		sort.Strings(names)
	}
	failed := 0
	fail := func(format string, a ...any) {
		failed++
		fmt.Fprintf(env.Stderr, "edgeipc ring rm: "+format+"\n", a...)
	}
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			// Interrupted (exit 130): the rings not reached stay, and
			// what was printed is what was removed.
			return err
		}
		s, ok := byName[n]
		if !ok {
			fail("%s: no such ring in %s (list them with 'edgeipc ring ls%s')", n, segDir(o.dir), dirArg(o.segOpts()))
			continue
		}
		if s.Kind == "directory" {
			fail("%s: %s is a directory, not a segment; ring rm does not remove directories (remove it yourself if it is not needed)", n, s.Path)
			continue
		}
		if s.Kind == "unknown" && s.UID != os.Geteuid() && os.Geteuid() != 0 && !o.force {
			// Not readable by this user, so not known to be a ring; in a
			// sticky directory (/dev/shm) only its owner or root may
			// remove it anyway.
			fail("%s: %s belongs to uid %d and this user cannot read it: remove it as that user or root", n, s.Path, s.UID)
			continue
		}
		if s.Kind != "ring" && !o.force {
			hint := ""
			if s.Kind == "symlink" {
				hint = " (the link, not its target)"
			}
			fail("%s: %s is %s, not a ring; use --force to remove it anyway%s", n, s.Path, kindPhrase(s.Kind), hint)
			continue
		}
		if s.Kind == "ring" && !o.stale && !o.force {
			live, err := ringLive(n, o.segOpts())
			if err != nil {
				fail("%s: cannot check whether it is in use: %v (use --force to remove it anyway)", n, err)
				continue
			}
			if live != "" {
				fail("%s is in use: %s; stop them first, or use --force to remove it anyway (they keep the removed ring and never see a new one of that name)", n, live)
				continue
			}
		}
		if o.stale {
			if s.Kind != "ring" {
				fmt.Fprintf(env.Stdout, "kept %s: not a ring, so --stale cannot tell whether it is in use\n", n)
				continue
			}
			live, err := ringLive(n, o.segOpts())
			if err != nil && !o.force {
				fail("%s: cannot check whether it is in use: %v (use --force to remove it anyway)", n, err)
				continue
			}
			if live != "" {
				fmt.Fprintf(env.Stdout, "kept %s: %s\n", n, live)
				continue
			}
		}
		if err := shm.RemoveSegment(n, o.segOpts()); err != nil {
			if sweep && errors.Is(err, os.ErrPermission) && s.UID != os.Geteuid() {
				// Sweeping every stale ring, this user's job is its own
				// (and those it may remove); another user's, in a sticky
				// directory, is for that user or root: not a failure.
				fmt.Fprintf(env.Stdout, "kept %s: no live writer or reader, but it belongs to uid %d: remove it as that user or root\n", n, s.UID)
				continue
			}
			fail("%v", err)
			continue
		}
		fmt.Fprintf(env.Stdout, "removed %s\n", n)
	}
	if failed > 0 {
		return &ExitError{Code: ExitFailure, Err: fmt.Errorf("%d of %d not removed", failed, len(names))}
	}
	return nil
}

// notRing returns err, a failure to open the named ring, or, if the entry
// of that name is not a ring at all (a semaphore, a symbolic link, a FIFO,
// an unknown file), an error that names its path and kind the way
// 'edgeipc ring ls' does, rather than shm.Open's account of why it is not
// a valid ring.
//
// A missing ring and one this user may not open get a message that names
// the fix (ringMissing, ringDenied).
func notRing(name string, opts *shm.SegmentOptions, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return ringMissing(name, opts, "", err)
	}
	if errors.Is(err, os.ErrPermission) {
		return ringDenied(name, opts, err)
	}
	segs, lerr := shm.ListSegments(opts)
	if lerr != nil {
		return err
	}
	for _, s := range segs {
		if s.Name == name && s.Kind != "ring" {
			return fmt.Errorf("%s is %s, not a ring (see 'edgeipc ring ls%s')", s.Path, kindPhrase(s.Kind), dirArg(opts))
		}
	}
	return err
}

// inTheWay returns an error naming what is at the named ring's path if it
// is not a ring (a semaphore, a symbolic link, a FIFO, a directory, a file
// of unknown content), with the command that removes it, for commands
// that would create the ring there; nil if the path is free or holds a
// ring, or holds another user's file that this user may not remove (shm's
// error names that owner). shm's own hint, 'edgeipc ring rm NAME', refuses
// all of these without --force, and a directory always.
func inTheWay(name string, opts *shm.SegmentOptions) error {
	segs, err := shm.ListSegments(opts)
	if err != nil {
		return nil
	}
	for _, s := range segs {
		if s.Name != name || s.Kind == "ring" {
			continue
		}
		if s.UID != os.Geteuid() && os.Geteuid() != 0 {
			return nil
		}
		switch s.Kind {
		case "directory":
			return fmt.Errorf("%s is a directory, not a ring, and ring rm does not remove directories: remove it yourself if nothing needs it (rmdir %s), or use another name", s.Path, s.Path)
		case "symlink":
			return fmt.Errorf("%s is a symbolic link, not a ring: remove the link (not its target) with 'edgeipc ring rm --force %s%s' if nothing needs it, or use another name", s.Path, name, dirArg(opts))
		}
		return fmt.Errorf("%s is %s, not a ring: remove it with 'edgeipc ring rm --force %s%s' if nothing needs it, or use another name", s.Path, kindPhrase(s.Kind), name, dirArg(opts))
	}
	return nil
}

// notInGroup is the usage error for err, a failure to create a ring for
// group g (--group), if the kernel refused to give the segment to g
// because this user is not a member of it (fchown(2) needs membership or
// CAP_CHOWN); nil otherwise. shm's own message asked "are you a member of
// it?" and named the group by number only.
func notInGroup(g string, err error) error {
	if g == "" || !errors.Is(err, syscall.EPERM) {
		return nil
	}
	gid, lerr := shm.LookupGroup(g)
	if lerr != nil || gid == os.Getegid() {
		return nil
	}
	if gids, gerr := os.Getgroups(); gerr != nil || slices.Contains(gids, gid) {
		return nil
	}
	return Usagef("bad --group %q: you (uid %d) are not a member of group %s (gid %d), so the ring cannot be given to it: name a group you are in ('id -Gn' lists them), or have your user added to %s and log in again",
		g, os.Geteuid(), groupName(gid), gid, groupName(gid))
}

// kindPhrase names a segment kind from shm.ListSegments after "is".
func kindPhrase(kind string) string {
	switch kind {
	case "semaphore":
		return "a semaphore segment"
	case "unknown":
		return "an unknown segment"
	case "symlink":
		return "a symbolic link"
	case "fifo":
		return "a FIFO"
	case "other":
		return "a socket or device file"
	}
	return "a " + kind
}

// ringLive returns why the named ring is in use ("" if its writer and all
// its readers are dead or absent).
func ringLive(name string, opts *shm.SegmentOptions) (string, error) {
	r, err := shm.Open(name, opts)
	if err != nil {
		return "", err
	}
	in := r.Inspect()
	r.Close()
	var why []string
	if in.WriterAlive {
		why = append(why, fmt.Sprintf("writer pid %d is alive", in.WriterPID))
	}
	for _, rd := range in.Readers {
		if rd.Alive {
			why = append(why, fmt.Sprintf("reader pid %d is alive", rd.PID))
		}
	}
	return strings.Join(why, ", "), nil
}

// hintError is an error whose message was rewritten to name the fix; it
// still matches what it wraps (os.ErrNotExist, os.ErrPermission).
type hintError struct {
	msg string
	err error
}

func (e *hintError) Error() string { return e.msg }
func (e *hintError) Unwrap() error { return e.err }

// dirArg is " --dir DIR" if the segment directory was given with --dir,
// for commands a message suggests (with $EDGEIPC_SHM_DIR they inherit it).
func dirArg(opts *shm.SegmentOptions) string {
	if opts == nil || opts.Dir == "" {
		return ""
	}
	return " --dir " + opts.Dir
}

// ringMissing is the error for a ring that does not exist: it names the
// file looked for and how to find or make the ring. also is another way
// to make it, for the command at hand ("pass --create").
func ringMissing(name string, opts *shm.SegmentOptions, also string, err error) error {
	if derr := segDirMissing(opts, err); derr != nil {
		return derr // creating the ring there would fail too
	}
	d := dirArg(opts)
	if also != "" {
		also += ", "
	}
	return &hintError{fmt.Sprintf("ring %s does not exist (there is no %s): list the rings with 'edgeipc ring ls%s'; create it with 'edgeipc ring create %s%s', %sor start the runtime that declares it",
		name, shm.SegmentPath(name, opts), d, name, d, also), err}
}

// segDirMissing is the error for err, a failure to open or create a ring,
// if it failed because the segment directory does not exist (nil
// otherwise): it names the directory, where its name came from and the
// fix, not a ring that could be created there, nor statfs.
func segDirMissing(opts *shm.SegmentOptions, err error) error {
	if !errors.Is(err, os.ErrNotExist) {
		return nil
	}
	dir := shm.SegmentDir(opts)
	if _, serr := os.Stat(dir); !errors.Is(serr, os.ErrNotExist) {
		return nil
	}
	from := "--dir or $EDGEIPC_SHM_DIR" // the default, /dev/shm
	switch {
	case opts != nil && opts.Dir != "":
		from = "--dir"
	case os.Getenv("EDGEIPC_SHM_DIR") != "":
		from = "$EDGEIPC_SHM_DIR"
	}
	return &hintError{fmt.Sprintf("segment directory %s does not exist: check %s (a runtime's rings are in its [runtime] shm_dir), or create the directory (mkdir -m 0700 %s)", dir, from, dir), err}
}

// ringDenied is the error for a ring file this user may not open: it
// names the file's owner, group and mode, and how to share it.
func ringDenied(name string, opts *shm.SegmentOptions, err error) error {
	path := shm.SegmentPath(name, opts)
	fi, serr := os.Lstat(path)
	if serr != nil {
		return err
	}
	owner, group := "?", "?"
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		owner, group = userName(int(st.Uid)), groupName(int(st.Gid))
	}
	return &hintError{fmt.Sprintf("ring %s: permission denied: %s belongs to %s:%s, mode %s, and using a ring, even to read it, needs read and write access: run as %s, or have the ring shared with a group you are in ('chgrp GROUP %s && chmod 0660 %s', 'edgeipc ring create %s --group GROUP', or group in the runtime's [rings.%s])",
		name, path, owner, group, modeString(fi.Mode()), owner, path, path, name, name), err}
}
