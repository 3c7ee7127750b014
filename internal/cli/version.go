package cli

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"runtime/debug"
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
	// GOARM is the ARM level of a GOARCH=arm build ("6" or "7"), else
	// empty and left out: the armv6 and armv7 release binaries are both
	// linux/arm, and only the armv6 one runs on a Pi Zero/1.
	GOARM string `json:"goarm,omitempty"`
}

// goarm returns the GOARM setting this binary was built with, from its
// build information (kept with -trimpath), or "" when it is not an arm
// build.
func goarm() string {
	if runtime.GOARCH != "arm" {
		return ""
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "GOARM" {
				return s.Value
			}
		}
	}
	return ""
}

// platform is "linux/amd64", or "linux/arm/v6" for a GOARM=6 build (the
// OCI platform notation).
func (v versionOut) platform() string {
	p := v.OS + "/" + v.Arch
	if v.GOARM != "" {
		p += "/v" + v.GOARM
	}
	return p
}

func init() {
	Register(&Command{
		Name:  "version",
		Usage: "version [--json]",
		Short: "print the version, commit and platform",
		Long: `version prints the edgeipc version and commit this binary was built from,
the Go release that built it, and the system and architecture it is for;
for 32-bit ARM also the ARM level (linux/arm/v6 or linux/arm/v7: only
the v6 build runs on a Pi Zero or Pi 1).

With --json it prints one object:
{"version", "commit", "go_version", "os", "arch"}, plus "goarm" ("6" or
"7") for 32-bit ARM.

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
			v := versionOut{Version, Commit, runtime.Version(), runtime.GOOS, runtime.GOARCH, goarm()}
			if getFlag[bool](fs, "json") {
				return writeJSON(env.Stdout, v)
			}
			_, err = fmt.Fprintf(env.Stdout, "edgeipc %s (commit %s, %s, %s)\n", v.Version, v.Commit, v.GoVersion, v.platform())
			return err
		},
	})
}
