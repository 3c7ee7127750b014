package cli

import (
	"context"
	"flag"
	"fmt"
	"runtime"
)

// Version and Commit are stamped at link time:
//
//	-ldflags "-X github.com/edgeipc/edgeipc/internal/cli.Version=v0.1.0 -X ...Commit=abc123"
var (
	Version = "dev"
	Commit  = "unknown"
)

func init() {
	Register(&Command{
		Name:  "version",
		Usage: "version",
		Short: "print the version, commit and platform",
		AnyOS: true,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			if len(args) != 0 {
				return Usagef("version takes no arguments")
			}
			fmt.Fprintf(env.Stdout, "edgeipc %s (commit %s, %s, %s/%s)\n", Version, Commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	})
}
