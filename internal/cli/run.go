package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/edgeipc/edgeipc/runtime"
)

func init() {
	Register(&Command{
		Name:  "run",
		Usage: "run [-c FILE] [--check] [--print-default] [--log-format text|json] [--stats-interval D]",
		Short: "run the runtime: rings, sources, sinks, control plane",
		Long: `Run the edgeipc runtime in the foreground. It creates (or reattaches to) the
rings of the configuration, supervises its sources (exec children, FIFOs,
synthetic generators), runs its sinks, serves 'edgeipc ctl' over a POSIX
message queue and logs one line per ring and source every stats interval.

With no -c it runs the built-in configuration (print it with
--print-default): an IMU-like ring at 1 kHz and a camera-like ring at 30 fps.
The configuration format is described in docs/config.md. The file names
the programs the runtime runs, so it must belong to root or to the user
running it, be writable by its owner only, and be in a directory nobody
else may write (or a sticky one, like /tmp); run refuses it otherwise,
and refuses a file that declares nothing (empty, or only comments: a file
being rewritten in place reads so; replace it by a rename).

--check validates the file (syntax, keys, values, its ownership and mode,
and the variables below that stand in for its keys)
and creates nothing; what depends on the machine at the moment (free space
for the rings, the segment directory, group membership, paths in the way)
is checked when run starts and when it reloads, before anything changes.

Signals: SIGTERM/SIGINT stop the sources (exec children: SIGTERM to each
child's process group, SIGKILL after its stop_timeout), drain sinks (for
what is left of shutdown_timeout, less 1s; a recorder cut short, or
stopped after a failure, logs how many frames it did not record), close rings (removing those with
remove_on_exit), remove the control queue and exit 0. If that takes longer than [runtime] shutdown_timeout (default 10s),
the process groups still running get SIGKILL, the shutdown gets at most 1s
more, and run exits 1. A second SIGTERM/SIGINT during the shutdown is
logged and ignored (SIGKILL forces an exit, without cleanup). SIGHUP
reloads the file and applies the difference, once run is ready if it
comes while run starts (except [runtime] shm_dir and
[control], which need a restart: a reload that changes them says so in the
log); SIGUSR1 logs a stats snapshot; SIGPIPE is ignored (a log line to a
closed pipe is dropped). Other signals keep Go's defaults: SIGQUIT dumps
the goroutines and exits 2, SIGTSTP/SIGTTIN/SIGTTOU stop the process
(not under systemd: the kernel discards them in an orphaned process
group), signals 32 and 34 kill it, most others (SIGUSR2, SIGWINCH,
real-time 35-64) are ignored; see docs/operations.md. Under systemd (Type=notify) it
reports READY, RELOADING, STOPPING and a STATUS line (a failed reload
included) and feeds the watchdog; keep shutdown_timeout at least 1s below the unit's
TimeoutStopSec. Its log lines start with their syslog priority (<3>
error, <4> warning, <6> info) when stderr is the journal.

Exit codes: 0 after a clean shutdown, 1 if it could not start or the
shutdown outlasted shutdown_timeout, 2 for a usage error.

Environment: EDGEIPC_SHM_DIR (segment directory, an absolute path),
EDGEIPC_CTL_QUEUE (control queue name), both checked by --check as the
keys they stand in for; NOTIFY_SOCKET/WATCHDOG_USEC/JOURNAL_STREAM (systemd).

Examples:
  edgeipc run                          # the built-in demo; Ctrl-C to stop
  edgeipc run -c /etc/edgeipc/edgeipc.toml
  edgeipc run -c my.toml --check       # validate and exit
  edgeipc run --print-default > my.toml`,
		Flags: func(fs *flag.FlagSet) {
			fs.String("c", "", "configuration `FILE` (default: the built-in configuration)")
			fs.Bool("check", false, "validate the configuration and exit")
			fs.Bool("print-default", false, "print the built-in configuration and exit")
			fs.String("log-format", "text", "log format: text or json")
			fs.Duration("stats-interval", 0, "override [runtime] stats_interval (e.g. 5s; at least 100ms)")
		},
		Run: runRun,
	})
}

func runRun(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
	if len(args) != 0 {
		return Usagef("run takes no arguments (did you mean -c %s?)", args[0])
	}
	get := func(n string) flag.Value { return fs.Lookup(n).Value }
	file := get("c").String()
	cSet := false
	fs.Visit(func(f *flag.Flag) { cSet = cSet || f.Name == "c" })
	if cSet && file == "" {
		// -c "$CONF" with CONF unset ran the built-in demo (and --check
		// said it was ok): the file meant was never read.
		return Usagef("-c needs a configuration file name, got an empty one (to run the built-in configuration, leave out -c)")
	}
	if get("print-default").String() == "true" {
		var other []string
		fs.Visit(func(f *flag.Flag) {
			switch {
			case f.Name == "print-default":
			case len(f.Name) == 1:
				other = append(other, "-"+f.Name) // -c, as help writes it
			default:
				other = append(other, "--"+f.Name)
			}
		})
		if len(other) > 0 {
			return Usagef("--print-default prints the built-in configuration and nothing else: drop %s (to check a file: edgeipc run -c FILE --check)", strings.Join(other, ", "))
		}
		_, err := env.Stdout.Write(runtime.DefaultTOML())
		return err
	}
	log, err := runtime.NewLogger(env.Stderr, get("log-format").String())
	if err != nil {
		return Usagef("%v", err)
	}
	si := get("stats-interval").(flag.Getter).Get().(time.Duration)
	if si < 0 {
		return Usagef("--stats-interval must not be negative")
	}
	if si > 0 && si < runtime.MinStatsInterval {
		return Usagef("--stats-interval %v: at least %v (each interval logs a line per ring, source and sink)", si, runtime.MinStatsInterval)
	}
	// Go's default for SIGHUP ends the process, and the runtime handles
	// it only once it runs: a SIGHUP while the file is read (a reload
	// asked for just after a start; a slow disk) killed the runtime.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP) // stopped by Run, which takes over
	defer signal.Stop(hup)             // also when Run is not reached
	var cfg *runtime.Config
	if file == "" {
		cfg = runtime.Default()
	} else if cfg, err = loadInterruptibly(ctx, file); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: write one with 'edgeipc run --print-default > %s' and edit it, or run without -c for the built-in configuration", err, file)
		}
		return err
	}
	if err := cfg.CheckEnv(); err != nil { // as runtime.New would
		return err
	}
	if get("check").String() == "true" {
		fmt.Fprintf(env.Stdout, "%s: ok (%s)\n", name(cfg), cfg.Summary())
		return nil
	}
	runtime.Version = Version
	// With stderr a pipe whose reader has gone (`edgeipc run 2>&1 | tee
	// log`, then Ctrl-C kills tee too), Go's default for a write to fd 2
	// is to die of SIGPIPE: mid-shutdown, children not stopped, rings and
	// queue left. Once SIGPIPE is notified, such a write fails with EPIPE
	// and the log line is dropped. Never stopped: the last error message,
	// written after Run returns, must not kill the process either.
	// (signal.Ignore would pass SIG_IGN on to the exec children.)
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	rt, err := runtime.New(cfg, runtime.Options{Logger: log, StatsInterval: si, HUP: hup})
	if err != nil {
		return err
	}
	return rt.Run(ctx)
}

func name(c *runtime.Config) string {
	if c.File == "" {
		return "built-in configuration"
	}
	return c.File
}

// loadInterruptibly is runtime.Load that returns ctx's error when ctx ends
// first: a -c naming a FIFO that nobody writes (or a file on a hung
// network mount) blocks in open(2) or read(2), and Ctrl-C, which ends
// ctx, did not stop `edgeipc run` (the read goes on in the background
// until the process exits).
func loadInterruptibly(ctx context.Context, file string) (*runtime.Config, error) {
	type loaded struct {
		cfg *runtime.Config
		err error
	}
	c := make(chan loaded, 1)
	go func() {
		cfg, err := runtime.Load(file)
		c <- loaded{cfg, err}
	}()
	select {
	case l := <-c:
		return l.cfg, l.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
