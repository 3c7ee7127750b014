package release

import (
	"bufio"
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/edgeipc/edgeipc/internal/qemuwatch"
)

const cliPkg = "github.com/edgeipc/edgeipc/internal/cli"

// target is one release binary.
type target struct {
	name    string // dist/edgeipc-linux-NAME, budget.txt key linux-NAME
	goarch  string
	goarm   string
	machine elf.Machine
	class   elf.Class
}

var targets = []target{
	{"amd64", "amd64", "", elf.EM_X86_64, elf.ELFCLASS64},
	{"arm64", "arm64", "", elf.EM_AARCH64, elf.ELFCLASS64},
	{"armv7", "arm", "7", elf.EM_ARM, elf.ELFCLASS32},
	{"armv6", "arm", "6", elf.EM_ARM, elf.ELFCLASS32},
}

//go:embed budget.txt
var budgetTxt string

// stamp is the version and commit the binaries under test carry.
type stamp struct{ version, commit string }

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
	built     stamp
)

// binaries returns the path of each target's binary and the stamp it must
// carry: from $EDGEIPC_DIST (make cross) or built here with the Makefile's flags.
func binaries(t *testing.T) (map[string]string, stamp) {
	t.Helper()
	paths := map[string]string{}
	if dist := os.Getenv("EDGEIPC_DIST"); dist != "" {
		st := stamp{os.Getenv("EDGEIPC_VERSION"), os.Getenv("EDGEIPC_COMMIT")}
		if st.version == "" || st.commit == "" {
			t.Fatal("EDGEIPC_DIST is set but EDGEIPC_VERSION or EDGEIPC_COMMIT is not (run through make cross)")
		}
		for _, tg := range targets {
			p := filepath.Join(dist, "edgeipc-linux-"+tg.name)
			if _, err := os.Stat(p); err != nil {
				t.Fatalf("%v: run make cross", err)
			}
			paths[tg.name] = p
		}
		return paths, st
	}
	buildOnce.Do(func() {
		built = stamp{"v0.0.0-releasetest", "c0ffee1"}
		buildDir, buildErr = os.MkdirTemp("", "edgeipc-release-")
		if buildErr != nil {
			return
		}
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		ldflags := fmt.Sprintf("-s -w -X %s.Version=%s -X %s.Commit=%s", cliPkg, built.version, cliPkg, built.commit)
		for _, tg := range targets {
			cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags,
				"-o", filepath.Join(buildDir, "edgeipc-linux-"+tg.name), "./cmd/edgeipc")
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+tg.goarch, "GOARM="+tg.goarm)
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build for %s: %v\n%s", tg.name, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	for _, tg := range targets {
		paths[tg.name] = filepath.Join(buildDir, "edgeipc-linux-"+tg.name)
	}
	return paths, built
}

func TestMain(m *testing.M) {
	qemuwatch.Start() // a qemu-user fork deadlock fails fast instead of hanging
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the edgeipc module")
	}
	return filepath.Dir(gomod), nil
}

// TestStatic checks each binary is a static, cgo-free, stripped ELF for its
// architecture and ARM level.
func TestStatic(t *testing.T) {
	paths, _ := binaries(t)
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			p := paths[tg.name]
			f, err := elf.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Machine != tg.machine || f.Class != tg.class {
				t.Errorf("%s: machine %v class %v, want %v %v", p, f.Machine, f.Class, tg.machine, tg.class)
			}
			if f.Type != elf.ET_EXEC {
				t.Errorf("%s: ELF type %v, want ET_EXEC (a static, non-PIE executable)", p, f.Type)
			}
			for _, prog := range f.Progs {
				switch prog.Type {
				case elf.PT_INTERP:
					t.Errorf("%s: has PT_INTERP (needs a dynamic loader): not static", p)
				case elf.PT_DYNAMIC:
					t.Errorf("%s: has PT_DYNAMIC: not static", p)
				}
			}
			libs, err := f.ImportedLibraries()
			if err != nil {
				t.Errorf("%s: reading DT_NEEDED: %v", p, err)
			}
			if len(libs) > 0 {
				t.Errorf("%s: DT_NEEDED %v: links shared libraries", p, libs)
			}
			for _, name := range []string{".symtab", ".debug_info", ".zdebug_info"} {
				if f.Section(name) != nil {
					t.Errorf("%s: has section %s: not stripped (-ldflags -s -w)", p, name)
				}
			}
			bi, err := buildinfo.ReadFile(p)
			if err != nil {
				t.Fatalf("%s: no Go build info: %v", p, err)
			}
			want := map[string]string{"CGO_ENABLED": "0", "GOOS": "linux", "GOARCH": tg.goarch, "-trimpath": "true"}
			if tg.goarm != "" {
				want["GOARM"] = tg.goarm
			}
			got := map[string]string{}
			for _, s := range bi.Settings {
				got[s.Key] = s.Value
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s: build setting %s=%q, want %q", p, k, got[k], v)
				}
			}
			if bi.Path != "github.com/edgeipc/edgeipc/cmd/edgeipc" {
				t.Errorf("%s: main package %q, want github.com/edgeipc/edgeipc/cmd/edgeipc", p, bi.Path)
			}
		})
	}
}

// TestStamped checks the version and commit are linked into every binary and
// that `edgeipc version` prints them for each binary this machine can run
// (its own architecture, plus ARM ones when qemu is registered with binfmt_misc).
func TestStamped(t *testing.T) {
	paths, st := binaries(t)
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			p := paths[tg.name]
			// -trimpath keeps -ldflags out of the build info: look for the strings.
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(data, []byte(st.version)) || !bytes.Contains(data, []byte(st.commit)) {
				t.Errorf("%s: version %q or commit %q not in the binary", p, st.version, st.commit)
			}
			if why := cannotRun(tg); why != "" {
				t.Logf("not executing %s: %s (the stamp was checked in the build info and data above)", p, why)
				return
			}
			cmd := exec.Command(p, "version")
			cmd.Env = append(os.Environ(), "QEMU_CPU="+qemuCPU(tg))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s version: %v\n%s", p, err, out)
			}
			// The platform names the ARM level: the armv6 and armv7
			// binaries are both linux/arm, and only one runs on a Pi Zero.
			want := fmt.Sprintf("edgeipc %s (commit %s, ", st.version, st.commit)
			platform := "linux/" + tg.goarch
			if tg.goarm != "" {
				platform += "/v" + tg.goarm
			}
			if !strings.HasPrefix(string(out), want) || !strings.HasSuffix(string(out), ", "+platform+")\n") {
				t.Errorf("%s version printed %q, want prefix %q and platform %s", p, out, want, platform)
			}
			t.Logf("%s", bytes.TrimSpace(out))
		})
	}
}

func qemuCPU(tg target) string {
	switch tg.name {
	case "armv6":
		return "arm1176"
	case "armv7":
		return "cortex-a7"
	case "arm64":
		return "cortex-a53"
	}
	return ""
}

// cannotRun says why this machine cannot execute tg's binary, or "".
func cannotRun(tg target) string {
	if tg.goarch == runtime.GOARCH {
		if tg.goarm == "" || tg.goarm == selfGOARM() || tg.goarm == "6" {
			return ""
		}
	}
	switch tg.goarch {
	case "arm":
		if _, err := os.Stat("/proc/sys/fs/binfmt_misc/qemu-arm"); err != nil {
			return "qemu-arm is not registered with binfmt_misc (scripts/setup-qemu.sh)"
		}
	case "arm64":
		if _, err := os.Stat("/proc/sys/fs/binfmt_misc/qemu-aarch64"); err != nil {
			return "qemu-aarch64 is not registered with binfmt_misc (scripts/setup-qemu.sh)"
		}
	default:
		return "binary for " + tg.goarch + " on a " + runtime.GOARCH + " machine"
	}
	return ""
}

func selfGOARM() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "GOARM" {
				return s.Value
			}
		}
	}
	return ""
}

// budgets parses budget.txt: "linux-NAME BYTES" lines, # comments.
func budgets(t *testing.T) map[string]int64 {
	t.Helper()
	b := map[string]int64{}
	sc := bufio.NewScanner(strings.NewReader(budgetTxt))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf("budget.txt:%d: want 'linux-NAME BYTES', got %q", n, line)
		}
		v, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || v <= 0 {
			t.Fatalf("budget.txt:%d: bad size %q", n, f[1])
		}
		if _, dup := b[f[0]]; dup {
			t.Fatalf("budget.txt:%d: %s listed twice", n, f[0])
		}
		b[f[0]] = v
	}
	return b
}

// TestSizeBudget fails when a stripped binary outgrows budget.txt.
func TestSizeBudget(t *testing.T) {
	b := budgets(t)
	if len(b) != len(targets) {
		t.Errorf("budget.txt has %d entries, want one per target (%d)", len(b), len(targets))
	}
	paths, _ := binaries(t)
	for _, tg := range targets {
		key := "linux-" + tg.name
		limit, ok := b[key]
		if !ok {
			t.Errorf("budget.txt has no line for %s", key)
			continue
		}
		fi, err := os.Stat(paths[tg.name])
		if err != nil {
			t.Fatal(err)
		}
		size := fi.Size()
		t.Logf("%-12s %9d bytes (%.2f MiB), budget %d (%.0f%% used)", key, size, float64(size)/(1<<20), limit, 100*float64(size)/float64(limit))
		if size > limit {
			t.Errorf("%s is %d bytes, over its budget of %d in internal/release/budget.txt by %d.\n"+
				"See what grew with `go version -m` and `go list -deps ./cmd/edgeipc`; if the growth is wanted,\n"+
				"raise the budget and update the \"Binary size\" section of docs/performance.md.",
				paths[tg.name], size, limit, size-limit)
		}
	}
}
