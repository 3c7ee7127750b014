// Package cli implements the edgeipc command line: one file per subcommand,
// each registering a Command. cmd/edgeipc is a thin main around Main.
//
// Exit codes (documented in `edgeipc help`):
//
//	0   success
//	1   failure (the operation was attempted and failed, or its output
//	    could not be written)
//	2   usage error (bad flags or arguments; nothing was done)
//	130 interrupted by SIGINT/SIGTERM before completion, also while
//	    writing to an output that nobody reads (run exits 0 after a
//	    clean shutdown)
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	goruntime "runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
)

// Exit codes.
const (
	ExitOK          = 0
	ExitFailure     = 1
	ExitUsage       = 2
	ExitInterrupted = 130
)

// Env is what a command runs with. Tests replace Stdin/Stdout/Stderr.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// Command is one subcommand. Run returns an exit code; it reports usage
// problems with UsageError so the exit code is 2.
type Command struct {
	Name  string // "ring", "pub", ...
	Usage string // "pub [flags] RING"
	Short string // one line for the command list
	Long  string // paragraphs shown by `edgeipc help NAME`
	// Hidden commands are not listed (internal child modes).
	Hidden bool
	// AnyOS commands run on every system. The others need Linux: elsewhere
	// they fail (exit 1) saying so, after their flags are parsed, so that
	// -h still prints their help.
	AnyOS bool
	// Flags, if set, declares the command's flags on fs.
	Flags func(fs *flag.FlagSet)
	Run   func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error
}

var commands = map[string]*Command{}

// goos is the system edgeipc runs on; tests set it to see what other
// systems get.
var goos = goruntime.GOOS

// Register adds a command; each subcommand file calls it from init.
func Register(c *Command) {
	if _, dup := commands[c.Name]; dup {
		panic("cli: duplicate command " + c.Name)
	}
	commands[c.Name] = c
}

// UsageError marks an error as a usage problem (exit code 2).
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Usagef returns a *UsageError.
func Usagef(format string, a ...any) error { return &UsageError{fmt.Sprintf(format, a...)} }

// ExitError carries a specific exit code.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit %d", e.Code)
	}
	return e.Err.Error()
}
func (e *ExitError) Unwrap() error { return e.Err }

// Main runs the command line args (without the program name) and returns the
// process exit code.
func Main(args []string) int {
	return MainEnv(context.Background(), &Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}, args)
}

// MainEnv is Main with explicit streams, for tests.
//
// Every command, help too, runs with SIGINT and SIGTERM caught (ctx is
// cancelled) and with a stdout that gives up a write when they come
// (ctxWriter): a command blocked writing into a pipe that nobody reads
// ends on the signal, releases what it holds on the way out (reader
// slots, ctl's reply queue) and exits 130, instead of ignoring the
// signal until killed.
func MainEnv(ctx context.Context, env *Env, args []string) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := &outWriter{w: newCtxWriter(ctx, env.Stdout)}
	cenv := *env
	cenv.Stdout = out
	code := dispatch(ctx, &cenv, args)
	if code == ExitOK {
		// Help, which reports no errors of its own.
		if err := outputErr(&cenv); err != nil {
			if ctx.Err() != nil && errors.Is(err, context.Canceled) {
				return ExitInterrupted
			}
			fmt.Fprintf(env.Stderr, "edgeipc: %v\n", err)
			return ExitFailure
		}
	}
	return code
}

// dispatch runs the command line args with env (MainEnv's) and returns
// the exit code.
func dispatch(ctx context.Context, env *Env, args []string) int {
	if len(args) == 0 {
		printTopHelp(env.Stderr)
		return ExitUsage
	}
	name := args[0]
	switch name {
	case "-h", "--help", "-help":
		printTopHelp(env.Stdout)
		return ExitOK
	case "help":
		if len(args) > 1 && args[1] != "help" { // help help: the list below
			c, ok := commands[args[1]]
			if !ok {
				fmt.Fprintf(env.Stderr, "edgeipc: unknown command %q; run 'edgeipc help' for the list\n", args[1])
				return ExitUsage
			}
			if c.Name == "ring" && len(args) > 2 {
				var names []string
				for _, s := range ringSubs {
					if s.name == args[2] { // help ring create: what 'ring create -h' prints
						return dispatch(ctx, env, []string{"ring", s.name, "-h"})
					}
					names = append(names, s.name)
				}
				fmt.Fprintf(env.Stderr, "edgeipc: unknown ring subcommand %q; use one of %s (run 'edgeipc help ring')\n", args[2], strings.Join(names, ", "))
				return ExitUsage
			}
			printCmdHelp(env.Stdout, c)
			return ExitOK
		}
		printTopHelp(env.Stdout)
		return ExitOK
	}
	c, ok := commands[name]
	if !ok {
		switch {
		case name == "--version" || name == "-version" || name == "-v" || name == "-V":
			fmt.Fprintf(env.Stderr, "edgeipc: %s is not a flag of edgeipc: the version is a command, 'edgeipc version'\n", name)
		case strings.HasPrefix(name, "-"):
			fmt.Fprintf(env.Stderr, "edgeipc: flag %s is before the command: flags go after it ('edgeipc COMMAND [flags] [args]', e.g. 'edgeipc ring ls --dir DIR'); run 'edgeipc help' for the commands\n", name)
		default:
			fmt.Fprintf(env.Stderr, "edgeipc: unknown command %q; run 'edgeipc help' for the list\n", name)
		}
		return ExitUsage
	}
	fs := flag.NewFlagSet("edgeipc "+c.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if c.Flags != nil {
		c.Flags(fs)
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printCmdHelp(env.Stdout, c)
			return ExitOK
		}
		msg := flagError(fs, err)
		if c.Name == "ring" {
			msg = ringFlagFirst(args[1:], msg)
		}
		fmt.Fprintf(env.Stderr, "edgeipc %s: %s\nusage: edgeipc %s\nrun 'edgeipc help %s' for details\n", c.Name, msg, c.Usage, c.Name)
		return ExitUsage
	}
	if goos != "linux" && !c.AnyOS {
		fmt.Fprintf(env.Stderr, "edgeipc %s: needs Linux (shared-memory rings, futexes, POSIX message queues); this is %s/%s, where only 'edgeipc version' and 'edgeipc help' work\n", c.Name, goos, goruntime.GOARCH)
		return ExitFailure
	}
	err := c.Run(ctx, env, fs, fs.Args())
	if err == nil {
		err = outputErr(env)
	}
	return report(env, c, ctx, err)
}

// outputErr returns an error if a write to env.Stdout failed: a command
// that printed into a full disk or a closed descriptor did not do its job,
// even if it did not look at the error. A reader that has gone (EPIPE) is
// the end a pipeline chose, not an error.
func outputErr(env *Env) error {
	o, ok := env.Stdout.(*outWriter)
	if !ok {
		return nil
	}
	if err := o.Err(); err != nil && !errors.Is(err, syscall.EPIPE) {
		return fmt.Errorf("writing the output: %w", err)
	}
	return nil
}

// SubcommandError is the error of a subcommand ("ring create"): report
// names the subcommand and prints its usage line instead of the command's.
type SubcommandError struct {
	Name  string // "ring create"
	Usage string // "ring create NAME [--slots N] ..."
	Err   error
}

func (e *SubcommandError) Error() string { return e.Err.Error() }
func (e *SubcommandError) Unwrap() error { return e.Err }

func report(env *Env, c *Command, ctx context.Context, err error) int {
	if err == nil {
		return ExitOK
	}
	name, usage, help := c.Name, c.Usage, "edgeipc help "+c.Name
	var se *SubcommandError
	if errors.As(err, &se) {
		name, usage, help = se.Name, se.Usage, "edgeipc "+se.Name+" -h"
	}
	var ue *UsageError
	if errors.As(err, &ue) {
		fmt.Fprintf(env.Stderr, "edgeipc %s: %s\nusage: edgeipc %s\nrun '%s' for details\n", name, ue.Msg, usage, help)
		return ExitUsage
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintf(env.Stderr, "edgeipc %s: %v\n", name, ee.Err)
		}
		return ee.Code
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return ExitInterrupted
	}
	fmt.Fprintf(env.Stderr, "edgeipc %s: %v\n", name, err)
	return ExitFailure
}

// outWriter is a command's stdout: it remembers the first write error, so
// that a command whose output was lost exits 1 even where it did not check
// (fmt.Fprintf to a table, a help text).
type outWriter struct {
	w   io.Writer
	mu  sync.Mutex
	err error
}

func (o *outWriter) Write(p []byte) (int, error) {
	n, err := o.w.Write(p)
	if err != nil {
		o.mu.Lock()
		if o.err == nil {
			o.err = err
		}
		o.mu.Unlock()
	}
	return n, err
}

// Err returns the first write error.
func (o *outWriter) Err() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

func printTopHelp(w io.Writer) {
	fmt.Fprint(w, `edgeipc moves sensor frames between processes through shared-memory rings.

Usage: edgeipc COMMAND [flags] [args]

Commands:
`)
	names := make([]string, 0, len(commands))
	for n, c := range commands {
		if !c.Hidden {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].Short)
	}
	fmt.Fprint(w, `
Run 'edgeipc help COMMAND' (or 'edgeipc COMMAND -h') for a command's flags
and examples.

Exit codes: 0 ok, 1 failure, 2 usage error, 130 interrupted (SIGINT or
SIGTERM, also while a consumer that reads nothing holds up the output;
'edgeipc run' exits 0 after a clean shutdown instead). A command
whose output pipe closes ends like other tools, killed by SIGPIPE (shell
status 141), except sub and hz, which leave their ring and exit 0.
Commands with --json print one JSON document, or one object per line where
they stream (hz, bench, sub --framing json); errors go to stderr as text.
`)
}

func printCmdHelp(w io.Writer, c *Command) {
	fmt.Fprintf(w, "Usage: edgeipc %s\n\n%s\n", c.Usage, c.Short)
	if c.Long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.Long))
	}
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	if c.Flags != nil {
		c.Flags(fs)
	}
	has := false
	fs.VisitAll(func(*flag.Flag) { has = true })
	if has {
		fmt.Fprint(w, "\nFlags:\n")
		printFlags(w, fs)
	}
}

// printFlags is flag.PrintDefaults with the flags written the way usage
// lines and examples write them: --name, and -c for a one-letter flag (both
// forms are accepted).
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		switch f.Value.(type) {
		case sizeValue:
			typ = "size"
		case uintValue:
			typ = "uint"
		}
		line := "  --" + f.Name
		if len(f.Name) == 1 {
			line = "  -" + f.Name
		}
		if typ != "" {
			line += " " + typ
		}
		line += "\n    \t" + strings.ReplaceAll(usage, "\n", "\n    \t")
		switch f.DefValue {
		case "", "0", "false", "0s":
		default:
			if typ == "string" {
				line += fmt.Sprintf(" (default %q)", f.DefValue)
			} else {
				line += fmt.Sprintf(" (default %v)", f.DefValue)
			}
		}
		fmt.Fprintln(w, line)
	})
}
