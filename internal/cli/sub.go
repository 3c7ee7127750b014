package cli

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/edgeipc/edgeipc/shm"
)

func init() {
	Register(&Command{
		Name:  "sub",
		Usage: "sub RING [--from oldest|newest] [--framing lines|len32|hex|json] [--count N] [--timeout D] [--wait] [--dir DIR]",
		Short: "print frames read from a ring",
		Long: `sub joins the ring as a reader and writes every frame to stdout:

  --framing lines   the payload, then a newline (default); a payload
                    with a newline in it reads back as two lines: use
                    len32, hex or json for frames that may hold one
  --framing len32   a 4-byte little-endian length, then the payload
                    (what 'edgeipc pub --framing len32' reads)
  --framing hex     the payload in hex, one frame per line
  --framing json    one object per line: {"seq", "time_ns", "type",
                    "flags", "lost", "len", "data" (base64)}

--from newest (default) starts with the next frame written; --from oldest
starts with the oldest frame still in the ring. Frames the writer
overwrote before sub read them are reported on stderr, e.g.
"lost 12 frames before seq 100"; frames lost after the last one printed
are reported when sub exits. A slot whose header breaks the ring ABI (a
length beyond the slot: a buggy writer, or another process writing the
segment) is skipped and reported on stderr (the first 10, then a count at
exit); sub carries on with the next frame.

sub exits 0 after --count frames, 130 on SIGINT or SIGTERM (also while
a consumer that reads nothing holds up its output), and 1 with a
message if --timeout passes without a frame arriving (the timeout starts
again after every frame) or if the ring is removed while sub waits (no
frame can arrive on a removed ring once its writer is gone). A ring that
does not exist is an error (exit 1), unless --wait is given: then sub
waits for it to be created (by the runtime, 'edgeipc ring create' or a
producer), within --timeout if one is given, and joins it; add --from
oldest to keep the frames written between its creation and the join. When the
reader of its output goes away ('edgeipc sub cam0 | head -1') sub leaves
the ring and exits 0, quietly; while it waits for a frame it notices
within a second.

Examples:
  edgeipc sub cam0 --from oldest --count 10
  edgeipc sub imu0 --framing json --timeout 5s | jq .len
  edgeipc sub imu0 --framing len32 | my-consumer
  edgeipc sub imu0 --wait --from oldest --timeout 30s   # start before the producer`,
		Flags: func(fs *flag.FlagSet) {
			fs.String("from", "newest", "where to start: newest (the next frame written) or oldest (the oldest frame in the ring)")
			fs.String("framing", "lines", "output format: lines, len32, hex or json")
			fs.Var(uintValue{n: new(uint64), max: math.MaxUint64, want: "0 (run until interrupted) or a positive count"}, "count", "exit 0 after this many frames (0: run until interrupted)")
			fs.Duration("timeout", 0, "exit 1 if no frame arrives for this long, e.g. 5s (0: wait forever)")
			fs.Bool("wait", false, "wait for the ring to be created if it does not exist yet")
			dirFlag(fs, new(string))
		},
		Run: runSub,
	})
}

func runSub(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
	args, err := reparse(env, "sub", fs, args)
	if err != nil {
		return err
	}
	name, err := oneRingArg("sub", "RING", args)
	if err != nil {
		return err
	}
	from, err := shm.ParseStart(getFlag[string](fs, "from"))
	if err != nil {
		return Usagef("bad --from %q: use oldest or newest", getFlag[string](fs, "from"))
	}
	framing := getFlag[string](fs, "framing")
	switch framing {
	case "lines", "len32", "hex", "json":
	default:
		return Usagef("bad --framing %q: use lines, len32, hex or json", framing)
	}
	count := getFlag[uint64](fs, "count")
	timeout := getFlag[time.Duration](fs, "timeout")
	if timeout < 0 {
		return Usagef("bad --timeout %v: use a positive duration such as 5s, or 0 to wait forever", timeout)
	}

	sopts := &shm.SegmentOptions{Dir: getFlag[string](fs, "dir")}
	rd, err := openReader(ctx, name, sopts, &shm.ReaderOptions{From: from}, getFlag[bool](fs, "wait"), timeout)
	if err != nil {
		return err
	}
	defer rd.Close()
	gone := newRemovedWatch(rd.Ring())
	quietEPIPE()
	stdout := stdoutFile(env.Stdout)
	// A write blocked on a full pipe ends with SIGINT or SIGTERM too:
	// env.Stdout gives up then (MainEnv).
	err = subCopy(ctx, env, rd, name, framing, count, timeout, gone, func() bool { return outputClosed(stdout) })
	if outputGone(err) {
		return nil // `edgeipc sub cam | head -1`: done, not failed
	}
	return err
}

// openReader joins ring name as a reader. With wait, a ring that does not
// exist yet is waited for (shm.OpenReaderContext), up to timeout (0: no
// limit) or an interrupt.
func openReader(ctx context.Context, name string, sopts *shm.SegmentOptions, ropts *shm.ReaderOptions, wait bool, timeout time.Duration) (*shm.Reader, error) {
	if !wait {
		rd, err := shm.OpenReader(name, sopts, ropts)
		return rd, notRing(name, sopts, err)
	}
	wctx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	rd, err := shm.OpenReaderContext(wctx, name, sopts, ropts)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("ring %s was not created within %v (--timeout); it would be %s", name, timeout, shm.SegmentPath(name, sopts))
	}
	if err != nil && ctx.Err() != nil {
		return nil, err // interrupted: exit 130
	}
	return rd, notRing(name, sopts, err)
}

// subCopy writes the frames of rd to env.Stdout until count frames
// (0: no limit), the timeout, an interrupt, the ring's removal, or the
// end of the output (outClosed, or a write that fails with EPIPE).
func subCopy(ctx context.Context, env *Env, rd *shm.Reader, name, framing string, count uint64, timeout time.Duration,
	gone *removedWatch, outClosed func() bool) error {
	buf := make([]byte, rd.Ring().SlotPayload())
	out := bufio.NewWriterSize(env.Stdout, 64<<10)
	defer out.Flush()
	var line []byte // formatting scratch for hex and json, reused
	var n uint64
	var bad, reported uint64 // corrupt slots skipped; lost frames told
	var last uint32          // seq of the last frame printed
	defer func() {
		// What the last frames cannot tell: slots skipped beyond the
		// first notes, and frames lost after the last frame printed.
		out.Flush()
		if bad > subCorruptNotes {
			fmt.Fprintf(env.Stderr, "sub: skipped %s of ring %s in all\n", plural(bad, "corrupt slot"), name)
		}
		if lost := rd.Stats().Lost; lost > reported {
			if n == 0 {
				fmt.Fprintf(env.Stderr, "lost %s\n", plural(lost-reported, "frame"))
			} else {
				fmt.Fprintf(env.Stderr, "lost %s after seq %d\n", plural(lost-reported, "frame"), last)
			}
		}
	}()
	for count == 0 || n < count {
		if err := ctx.Err(); err != nil {
			return err // interrupted while frames keep arriving
		}
		f, err := rd.TryReadInto(buf)
		if errors.Is(err, shm.ErrWouldBlock) {
			// About to wait: show what we have first.
			if err := out.Flush(); err != nil {
				return err
			}
			f, err = subWait(ctx, rd, buf, timeout, gone, outClosed)
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				return fmt.Errorf("no frame on ring %s for %v (%s received; writer: %s)", name, timeout, plural(n, "frame"), subWriter(rd))
			}
			if errors.Is(err, errRingRemoved) {
				return fmt.Errorf("ring %s was removed while sub waited (%s received): no frame can arrive on it any more; run sub again once the ring is created again", name, plural(n, "frame"))
			}
		}
		if errors.Is(err, shm.ErrCorrupt) {
			// The reader moved past the slot: report it, read on.
			bad++
			if bad <= subCorruptNotes {
				out.Flush()
				fmt.Fprintf(env.Stderr, "sub: skipped a corrupt slot: %v\n", err)
				if bad == subCorruptNotes {
					fmt.Fprintf(env.Stderr, "sub: further corrupt slots are counted, not shown; the count is printed at exit\n")
				}
			}
			continue
		}
		if err != nil {
			return err
		}
		n++
		last = f.Seq
		reported += uint64(f.Lost)
		if f.Lost > 0 {
			out.Flush()
			fmt.Fprintf(env.Stderr, "lost %s before seq %d\n", plural(uint64(f.Lost), "frame"), f.Seq)
		}
		switch framing {
		case "lines":
			out.Write(f.Data)
			err = out.WriteByte('\n')
		case "len32":
			var h [4]byte
			binary.LittleEndian.PutUint32(h[:], uint32(len(f.Data)))
			out.Write(h[:])
			_, err = out.Write(f.Data)
		case "hex":
			line = hex.AppendEncode(line[:0], f.Data)
			line = append(line, '\n')
			_, err = out.Write(line)
		case "json":
			line = appendFrameJSON(line[:0], &f)
			_, err = out.Write(line)
		}
		if err != nil {
			return err
		}
	}
	return out.Flush()
}

// subCorruptNotes is how many corrupt slots sub reports one by one: a
// writer that breaks every slot must not flood stderr.
const subCorruptNotes = 10

// subWait blocks for the next frame, up to timeout (0: no limit). Every
// removedPoll it checks whether the ring was removed, which it reports with
// errRingRemoved, and whether the reader of the output has gone
// (errOutputGone).
func subWait(ctx context.Context, rd *shm.Reader, buf []byte, timeout time.Duration, gone *removedWatch, outClosed func() bool) (shm.Frame, error) {
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		wait := removedPoll
		if timeout > 0 {
			wait = min(wait, time.Until(deadline))
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		f, err := rd.ReadInto(wctx, buf)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			return f, err
		}
		if timeout > 0 && !time.Now().Before(deadline) {
			return f, err
		}
		if gone.removed() {
			return f, errRingRemoved
		}
		if outClosed() {
			return f, errOutputGone
		}
	}
}

func subWriter(rd *shm.Reader) string {
	in := rd.Ring().Inspect()
	return writerString(in.WriterPID, in.WriterAlive)
}

// appendFrameJSON appends f as one JSON object and a newline.
func appendFrameJSON(b []byte, f *shm.Frame) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, uint64(f.Seq), 10)
	b = append(b, `,"time_ns":`...)
	b = strconv.AppendInt(b, f.Time, 10)
	b = append(b, `,"type":`...)
	b = strconv.AppendUint(b, uint64(f.Type), 10)
	b = append(b, `,"flags":`...)
	b = strconv.AppendUint(b, uint64(f.Flags), 10)
	b = append(b, `,"lost":`...)
	b = strconv.AppendUint(b, uint64(f.Lost), 10)
	b = append(b, `,"len":`...)
	b = strconv.AppendInt(b, int64(len(f.Data)), 10)
	b = append(b, `,"data":"`...)
	b = base64.StdEncoding.AppendEncode(b, f.Data)
	return append(b, "\"}\n"...)
}
