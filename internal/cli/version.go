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

// versionOut is the JSON of "version --json".
type versionOut struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
}

func init() {
	Register(&Command{
		Name:  "version",
		Usage: "version [--json]",
		Short: "print the version, commit and platform",
		Long: `version prints the edgeipc version and commit this binary was built from,
the Go release that built it, and the system and architecture it is for.

With --json it prints one object:
{"version", "commit", "go_version", "os", "arch"}.

Examples:
  edgeipc version
  edgeipc version --json | jq -r .version`,
		AnyOS: true,
		Flags: func(fs *flag.FlagSet) {
			fs.Bool("json", false, "print JSON instead of text")
		},
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet, args []string) error {
			args, err := reparse(env, "version", fs, args)
			if err != nil {
				return err
			}
			if len(args) != 0 {
				return Usagef("version takes no arguments (got %q)", args[0])
			}
			v := versionOut{Version, Commit, runtime.Version(), runtime.GOOS, runtime.GOARCH}
			if getFlag[bool](fs, "json") {
				return writeJSON(env.Stdout, v)
			}
			_, err = fmt.Fprintf(env.Stdout, "edgeipc %s (commit %s, %s, %s/%s)\n", v.Version, v.Commit, v.GoVersion, v.OS, v.Arch)
			return err
		},
	})
}
