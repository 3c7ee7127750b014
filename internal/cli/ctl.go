package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/edgeipc/edgeipc/internal/sys"
	"github.com/edgeipc/edgeipc/internal/textesc"
	"github.com/edgeipc/edgeipc/internal/units"
	"github.com/edgeipc/edgeipc/runtime"
	"github.com/edgeipc/edgeipc/runtime/control"
)

// ctlCommands maps each ctl command to the number of arguments it takes.
var ctlCommands = map[string]int{
	"status": 0, "rings": 0, "sources": 0, "sinks": 0, "reload": 0, "ping": 0,
	"start": 1, "stop": 1, "restart": 1,
}

func init() {
	Register(&Command{
		Name:  "ctl",
		Usage: "ctl [--queue NAME] [--json] [--timeout D] COMMAND [SOURCE]",
		Short: "query and control a running runtime over its POSIX message queue",
		Long: `Commands:
  status           version, pid, uptime, config file, counts, request counters
  rings            per ring: slots, payload, policy, frames, bytes, rate, bytes/s,
                   readers, max lag, lost, torn, state (ok, or missing: a reload
                   could not create it yet), last error
  sources          per source: kind, ring, state, pid, restarts, last exit, frames,
                   bytes, bad, dropped bytes, last error
  sinks            per sink (recorders, stats readers, the implicit stats:RING):
                   kind, ring, state (running, backoff, stopped, or waiting: its
                   ring is missing), frames, bytes, lost, frames skipped past
                   max_bytes, restarts, path, last error
  start SOURCE     start a source that is stopped, has finished or has failed
  stop SOURCE      stop a source (it stays stopped until start or restart, or
                   a reload that changes its configuration)
  restart SOURCE   stop and start a source
  reload           re-read the config file and apply the difference; exits 1
                   naming the keys that need a restart ([runtime] shm_dir,
                   [control]) if the file changed them
  ping             check that the runtime answers

The request goes to /dev/mqueue/edgeipc.ctl (or --queue, or $EDGEIPC_CTL_QUEUE);
the reply comes back on a private queue edgeipc.reply.<pid>.<hex> that ctl
creates and removes. The runtime answers only if this user may use its queue
(the runtime's user, root, or a member of its [control] group).

ctl waits --timeout for the reply: by default 2s, 90s for stop and restart
and 2m for reload, which answer once the sources concerned have stopped (an
exec child that ignores SIGTERM is killed after its stop_timeout, at most
1m; a reload may first wait up to 30s for one that runs, from a SIGHUP).
The runtime serves one request at a time, so a query sent during a long stop
waits too. No reply in time does not mean the runtime is gone: check with
'edgeipc ctl status' (or raise --timeout). A queue left over from a runtime
that was killed or crashed (no process holds its lock) is reported after 1s
as no runtime listening. A runtime that is shutting down
answers until its shutdown ends, but refuses start, restart and reload.

Flags go before or after COMMAND: 'edgeipc ctl status --json' works.

With --json, status prints one object, rings, sources and sinks one array,
and the other commands the runtime's reply ({"id", "ok"}). An error
reply is printed as JSON too ({"id", "ok": false, "error", "code"}, where
code is one of bad_request, unknown_command, not_found, permission_denied,
failed, busy), and its message goes to stderr as with every error; failures
before a reply (no runtime, no reply in time) print nothing on stdout.

Exit status: 0 ok; 1 the runtime reported an error, did not answer in time,
or is not running (no queue, or one left over from a runtime that exited);
2 usage error; 130 interrupted (SIGINT or SIGTERM, also while a consumer
that reads nothing holds up the output; SIGHUP too while waiting for the
reply).

Examples:
  edgeipc ctl status
  edgeipc ctl rings
  edgeipc ctl --json sources | jq '.[] | select(.state != "running")'
  edgeipc ctl sinks
  edgeipc ctl restart cam0
  EDGEIPC_CTL_QUEUE=edgeipc.lab edgeipc ctl --timeout 5s reload`,
		Flags: func(fs *flag.FlagSet) {
			fs.String("queue", "", "request queue name (default $EDGEIPC_CTL_QUEUE or edgeipc.ctl)")
			fs.Bool("json", false, "print the reply payload as JSON")
			fs.Duration("timeout", 0, "how long to wait for the runtime's reply (default 2s; 90s for stop and restart, 2m for reload)")
		},
		Run: runCtl,
	})
}

func runCtl(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
	args, err := reparse(env, "ctl", fs, args) // flags may follow COMMAND
	if err != nil {
		return err
	}
	queue := fs.Lookup("queue").Value.String()
	asJSON := fs.Lookup("json").Value.(flag.Getter).Get().(bool)
	timeout := fs.Lookup("timeout").Value.(flag.Getter).Get().(time.Duration)
	if len(args) == 0 {
		return Usagef("missing COMMAND (one of %s)", strings.Join(control.Commands, ", "))
	}
	cmd, rest := args[0], args[1:]
	want, ok := ctlCommands[cmd]
	if !ok {
		return Usagef("unknown command %q (one of %s)", cmd, strings.Join(control.Commands, ", "))
	}
	if len(rest) != want {
		if want == 0 {
			return Usagef("%s takes no arguments", cmd)
		}
		return Usagef("%s takes one argument: SOURCE (see 'edgeipc ctl sources')", cmd)
	}
	if want == 1 && len(rest[0]) > runtime.MaxNameLen {
		// No source has such a name, and the request might not fit a
		// message of the queue.
		return Usagef("SOURCE is %d bytes long; source names are at most %d (see 'edgeipc ctl sources')", len(rest[0]), runtime.MaxNameLen)
	}
	timeoutSet := false
	fs.Visit(func(f *flag.Flag) { timeoutSet = timeoutSet || f.Name == "timeout" })
	switch {
	case timeoutSet && timeout <= 0:
		return Usagef("--timeout must be positive")
	case !timeoutSet:
		timeout = ctlDefaultTimeout(cmd)
	}

	if err := sys.ValidateMqName(control.QueueName(queue)); err != nil {
		// The kernel's rules, on one line: a bad name from --queue is a
		// usage error (nothing was sent); from the variable, a failure.
		why := err.Error()
		var pe *os.PathError
		if errors.As(err, &pe) {
			why = strings.ReplaceAll(pe.Err.Error(), "\n", ": ")
		}
		if queue != "" {
			return Usagef("bad --queue %q: %s", queue, why)
		}
		return fmt.Errorf("bad $%s %q: %s", control.EnvQueue, control.QueueName(""), why)
	}
	// A hang-up (the terminal or ssh session closed while ctl waits, up to
	// 90s for a stop) ends the wait as SIGINT does, so that ctl removes its
	// reply queue: killed by SIGHUP it left the queue behind.
	hctx, stopHUP := signal.NotifyContext(ctx, syscall.SIGHUP)
	defer stopHUP()
	c, err := control.Dial(queue)
	if err != nil {
		if errors.Is(err, control.ErrNoServer) {
			return fmt.Errorf("%w; %s", err, ctlQueueOrigin(queue))
		}
		return err
	}
	cctx, cancel := context.WithTimeout(hctx, timeout)
	defer cancel()
	r, err := c.Call(cctx, cmd, rest...)
	hungUp := hctx.Err() != nil
	// Remove the reply queue before writing anything: a reader that has
	// gone (`edgeipc ctl sources | head -1`) kills ctl with SIGPIPE at its
	// first write, and a deferred Close would never run.
	c.Close()
	// With nothing left to remove, a hang-up ends ctl as it ends other
	// tools, also while a consumer that reads nothing holds up the output
	// (caught, it was ignored there).
	stopHUP()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err() // interrupted: exit 130
		}
		if hungUp {
			return &ExitError{Code: ExitInterrupted} // hung up: exit 130
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%w (waited %v; raise --timeout if it is busy)", err, timeout)
		}
		return err
	}
	if asJSON {
		var v any = r
		if r.OK {
			switch cmd {
			case "status":
				v = r.Status
			case "rings":
				v = nonNil(r.Rings)
			case "sources":
				v = nonNil(r.Sources)
			case "sinks":
				v = nonNil(r.Sinks)
			}
		}
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return err
		}
	}
	if !r.OK {
		if r.Code == control.CodeNotFound && len(rest) > 0 {
			return fmt.Errorf("%s (list them with 'edgeipc ctl sources')", printable(r.Error))
		}
		return errors.New(printable(r.Error))
	}
	if asJSON {
		return nil
	}
	switch cmd {
	case "status":
		printStatus(env.Stdout, r.Status)
	case "rings":
		printRings(env.Stdout, r.Rings)
	case "sources":
		printSources(env.Stdout, r.Sources)
	case "sinks":
		printSinks(env.Stdout, r.Sinks)
	case "ping":
		fmt.Fprintln(env.Stdout, "ok")
	default:
		if len(rest) > 0 {
			fmt.Fprintf(env.Stdout, "%s %s: ok\n", cmd, rest[0])
		} else {
			fmt.Fprintf(env.Stdout, "%s: ok\n", cmd)
		}
	}
	return nil
}

// ctlQueueOrigin says where the name of the queue ctl tried came from and
// how to make ctl and the runtime agree on it, for "no runtime is
// listening".
func ctlQueueOrigin(flagQueue string) string {
	name := control.QueueName(flagQueue)
	switch {
	case flagQueue != "":
		return fmt.Sprintf("the name came from --queue: the runtime must run with [control] queue = %q (or %s=%s)", name, control.EnvQueue, name)
	case os.Getenv(control.EnvQueue) != "":
		return fmt.Sprintf("the name came from $%s: the runtime reads that variable too, so start it in the same environment (or unset it for the default %s)", control.EnvQueue, control.DefaultQueue)
	}
	return fmt.Sprintf("that is the default queue: if the runtime uses another ([control] queue, or $%s where it runs), pass --queue NAME or set %s", control.EnvQueue, control.EnvQueue)
}

// ctlDefaultTimeout is how long ctl waits for a reply without --timeout:
// queries answer at once; stop and restart answer once the source has
// stopped, which takes up to its stop_timeout (at most
// runtime.MaxStopTimeout), plus some slack; a reload once it is done,
// which takes up to runtime.MaxReloadTime (its turn, while a reload from
// a SIGHUP runs, then the longest stop_timeout and the sinks' drain),
// plus some slack. It was 90s for a reload too, which a reload that
// waited its turn and then stopped a child with stop_timeout = "1m" could
// outlast: ctl said it timed out, and the reload went on and succeeded.
func ctlDefaultTimeout(cmd string) time.Duration {
	switch cmd {
	case "stop", "restart":
		return runtime.MaxStopTimeout + 30*time.Second
	case "reload":
		return runtime.MaxReloadTime + 20*time.Second
	}
	return 2 * time.Second
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func printStatus(w io.Writer, s *control.StatusInfo) {
	if s == nil {
		fmt.Fprintln(w, "no status in reply")
		return
	}
	cfg := s.ConfigFile
	if cfg == "" {
		cfg = "(built-in default)"
	}
	started := "-"
	if s.StartedUnixNs > 0 {
		started = time.Unix(0, s.StartedUnixNs).Format(time.RFC3339)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "version\t%s\n", printable(s.Version))
	fmt.Fprintf(tw, "pid\t%d\n", s.PID)
	fmt.Fprintf(tw, "started\t%s\n", started)
	fmt.Fprintf(tw, "uptime\t%s\n", (time.Duration(s.UptimeS * float64(time.Second))).Round(time.Second))
	fmt.Fprintf(tw, "config\t%s\n", printable(cfg))
	if s.RingsMissing > 0 {
		fmt.Fprintf(tw, "rings\t%d (%d missing: see 'edgeipc ctl rings')\n", s.Rings, s.RingsMissing)
	} else {
		fmt.Fprintf(tw, "rings\t%d\n", s.Rings)
	}
	fmt.Fprintf(tw, "sources\t%d\n", s.Sources)
	fmt.Fprintf(tw, "reloads\t%d\n", s.Reloads)
	fmt.Fprintf(tw, "requests\t%d (%d bad, %d replies not delivered)\n", s.Requests, s.BadRequests, s.ReplyFailures)
	tw.Flush()
}

func printRings(w io.Writer, rs []control.RingStat) {
	if len(rs) == 0 {
		fmt.Fprintln(w, "no rings")
		return
	}
	// Numbers align right; the name is padded to the longest, so that it
	// reads left-aligned as in the other tables.
	nameW := len("NAME")
	for _, r := range rs {
		nameW = max(nameW, utf8.RuneCountInString(printable(r.Name)))
	}
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\tSLOTS\tPAYLOAD\tPOLICY\tFRAMES\tBYTES\tRATE/s\tBYTES/s\tREADERS\tMAXLAG\tLOST\tTORN\tSTATE\t\n", nameW, "NAME")
	var why []string
	for _, r := range rs {
		fmt.Fprintf(tw, "%-*s\t%d\t%d\t%s\t%d\t%d\t%.1f\t%s\t%d\t%d\t%d\t%d\t%s\t\n",
			nameW, printable(r.Name), r.Slots, r.SlotPayload, printable(r.Policy), r.Frames, r.Bytes, r.RateHz, units.BytesCompact(r.BytesPerS), r.Readers, r.MaxLag, r.Lost, r.Torn, printable(dash(r.State)))
		if r.LastError != "" {
			why = append(why, fmt.Sprintf("%s %s: %s", printable(r.Name), printable(r.State), printable(r.LastError)))
		}
	}
	tw.Flush()
	// AlignRight pads every cell on its left, the first one too: the
	// table starts at the margin like the others.
	for _, l := range strings.SplitAfter(table.String(), "\n") {
		io.WriteString(w, strings.TrimPrefix(l, "  "))
	}
	for _, l := range why {
		fmt.Fprintln(w, l)
	}
}

func printSources(w io.Writer, ss []control.SourceStat) {
	if len(ss) == 0 {
		fmt.Fprintln(w, "no sources")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "NAME\tKIND\tRING\tSTATE\tPID\tRESTARTS\tLAST EXIT\tFRAMES\tBYTES\tBAD\tDROPPED\tLAST ERROR\n")
	for _, s := range ss {
		pid := "-"
		if s.PID > 0 {
			pid = fmt.Sprint(s.PID)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%d\t%d\t%d\t%d\t%s\n",
			printable(s.Name), printable(s.Kind), printable(s.Ring), printable(s.State), pid, s.Restarts, printable(dash(s.LastExit)),
			s.Frames, s.Bytes, s.Bad, s.Dropped, printable(dash(s.LastError)))
	}
	tw.Flush()
}

func printSinks(w io.Writer, ss []control.SinkStat) {
	if len(ss) == 0 {
		fmt.Fprintln(w, "no sinks")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "NAME\tKIND\tRING\tSTATE\tFRAMES\tBYTES\tLOST\tSKIPPED\tRESTARTS\tPATH\tLAST ERROR\n")
	for _, s := range ss {
		kind := printable(s.Kind)
		if s.Implicit {
			kind += " (implicit)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n",
			printable(s.Name), kind, printable(s.Ring), printable(s.State), s.Frames, s.Bytes, s.Lost, s.Skipped, s.Restarts,
			printable(dash(s.Path)), printable(dash(s.LastError)))
	}
	tw.Flush()
}

// printable escapes what a terminal would act on or a table would split
// on in a string of a reply: control characters (tabs and newlines too),
// other characters that do not print (such as bidirectional overrides) and
// bytes that are not UTF-8, as \x1b, \n, \u202e, \xff. A reply comes from
// whoever owns the request queue, which need not be the runtime (see
// docs/control.md, "Authorisation"): its strings must not be able to move
// the cursor, retitle the terminal or forge lines of the table.
func printable(s string) string { return textesc.Escape(s, textesc.NotPrintable) }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
