package bench

import (
	"bytes"
	"context"
	"embed"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/edgeipc/edgeipc/shm"
)

//go:embed c/*.c c/*.h
var cSources embed.FS

// ErrNoCompiler is reported (not as a failure) when `cc` is missing.
var ErrNoCompiler = errors.New("no C compiler: ratios unavailable (install gcc, or set CC to a C compiler)")

// cBuild holds the compiled C baselines, or why there are none.
type cBuild struct {
	dir string
	err error
	// skip: the C cases are skipped with err (no compiler for this
	// machine), not failed.
	skip bool
}

// elfArch is the ELF machine of each GOARCH the C baselines are checked
// against, with a compiler to suggest.
var elfArch = map[string]struct {
	machine uint16
	cc      string
}{
	"amd64":   {62, "x86_64-linux-gnu-gcc"},
	"386":     {3, "gcc -m32"},
	"arm64":   {183, "aarch64-linux-gnu-gcc -static"},
	"arm":     {40, "arm-linux-gnueabihf-gcc -static"},
	"riscv64": {243, "riscv64-linux-gnu-gcc -static"},
}

// elfMachineNames names the ELF machines of elfArch for messages.
var elfMachineNames = map[uint16]string{62: "x86-64", 3: "386", 183: "arm64", 40: "arm", 243: "riscv"}

// checkArch returns an error if the program at path is not an ELF
// executable for the machine this process runs as. Under qemu-user (an
// arm64 edgeipc on an x86-64 host) cc builds programs for the host: their
// figures are native ones, and Go/C ratios against them meaningless.
func checkArch(path, cc string) error {
	want, ok := elfArch[runtime.GOARCH]
	if !ok {
		return nil // no figure to check against
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var hdr [20]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil || string(hdr[:4]) != "\x7fELF" {
		return fmt.Errorf("%s built %s, which is not an ELF program", cc, path)
	}
	var m uint16
	if hdr[5] == 2 { // ELFDATA2MSB
		m = binary.BigEndian.Uint16(hdr[18:])
	} else {
		m = binary.LittleEndian.Uint16(hdr[18:])
	}
	if m == want.machine {
		return nil
	}
	got, ok := elfMachineNames[m]
	if !ok {
		got = fmt.Sprintf("ELF machine %d", m)
	}
	return fmt.Errorf("no C compiler for %s: %s builds %s programs (is edgeipc running under an emulator?): "+
		"ratios unavailable (set CC to a compiler for %s, e.g. CC='%s')", runtime.GOARCH, cc, got, runtime.GOARCH, want.cc)
}

// buildC compiles every embedded C program with `cc -O2` into dir.
func buildC(ctx context.Context, dir string) *cBuild {
	b := &cBuild{dir: dir}
	// $CC may carry arguments ("ccache gcc", "gcc -m32"), as make's does:
	// looked up whole, such a CC was reported as no compiler at all.
	ccArgs := strings.Fields(os.Getenv("CC"))
	if len(ccArgs) == 0 {
		ccArgs = []string{"cc"}
	}
	cc := ccArgs[0]
	if _, err := exec.LookPath(cc); err != nil {
		b.err, b.skip = ErrNoCompiler, true
		return b
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		b.err = err
		return b
	}
	ents, err := cSources.ReadDir("c")
	if err != nil {
		b.err = err
		return b
	}
	for _, e := range ents {
		data, err := cSources.ReadFile("c/" + e.Name())
		if err != nil {
			b.err = err
			return b
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o600); err != nil {
			b.err = err
			return b
		}
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".c") {
			continue
		}
		out := filepath.Join(dir, strings.TrimSuffix(e.Name(), ".c"))
		args := append(ccArgs[1:len(ccArgs):len(ccArgs)], "-O2", "-o", out, filepath.Join(dir, e.Name()))
		cmd := exec.CommandContext(ctx, cc, args...)
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("%s -O2 %s failed: %v: %s (ratios unavailable)", strings.Join(ccArgs, " "), e.Name(), err, bytes.TrimSpace(msg))
			return b
		}
		if err := checkArch(out, strings.Join(ccArgs, " ")); err != nil {
			b.err, b.skip = err, true
			return b
		}
	}
	return b
}

// cOut is what a C baseline prints.
type cOut struct {
	Iters      int64   `json:"iters"`
	RTTP50     int64   `json:"rtt_p50_ns"`
	RTTP99     int64   `json:"rtt_p99_ns"`
	RTTMin     int64   `json:"rtt_min_ns"`
	Frames     int64   `json:"frames"`
	FramesPerS float64 `json:"frames_per_s"`
	BytesPerS  float64 `json:"bytes_per_s"`
}

// runCProg runs the compiled program prog at size; extra are appended
// arguments (slot size and count for the ring).
func (h *harness) runCProg(ctx context.Context, prog string, size int, extra ...string) (cOut, error) {
	var o cOut
	// A C case the user cannot have (--no-c, or no compiler installed) is
	// skipped with the reason, not failed: `edgeipc bench --no-c` and a
	// bench on a device without gcc measured every Go case and still
	// exited 1, one "failed" C case per size. A compiler that fails to
	// build them is an error.
	if h.cc == nil {
		return o, skipf("C baselines not run (--no-c)")
	}
	if h.cc.skip {
		return o, skipf("%v", h.cc.err)
	}
	if h.cc.err != nil {
		return o, h.cc.err
	}
	args := []string{strconv.Itoa(size), strconv.Itoa(h.opts.Iters), strconv.FormatInt(int64(h.opts.Duration), 10),
		strconv.Itoa(h.parentCPU()), strconv.Itoa(h.childCPU())}
	args = append(args, extra...)
	cmd := exec.CommandContext(ctx, filepath.Join(h.cc.dir, prog), args...)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = h.stderr
	// The program forks its peer, which busy-polls shared memory and holds
	// the stdout pipe: killing only the parent (an interrupt, the case
	// timeout) left the peer spinning on a CPU for ever and Wait waiting
	// for the pipe to close. Give both a process group of their own, kill
	// the group, and do not wait on the pipe past WaitDelay.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err := startPeer(cmd) // dies with the bench, its forked peer with it
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		if cmd.Process != nil {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // a peer its failed parent left behind
		}
		return o, fmt.Errorf("C baseline %s: %w", prog, err)
	}
	if err := json.Unmarshal(stdout.Bytes(), &o); err != nil {
		return o, fmt.Errorf("C baseline %s: bad output %q: %w", prog, stdout.String(), err)
	}
	return o, nil
}

func cPingPong(prog string, extra ...string) func(ctx context.Context, h *harness, size int) (Result, error) {
	return func(ctx context.Context, h *harness, size int) (Result, error) {
		r := Result{Impl: "c"}
		o, err := h.runCProg(ctx, prog, size, extra...)
		if err != nil {
			return r, err
		}
		r.Iters, r.RTTP50, r.RTTP99, r.RTTMin = o.Iters, o.RTTP50, o.RTTP99, o.RTTMin
		return r, nil
	}
}

func cRing(ctx context.Context, h *harness, size int) (Result, error) {
	return cRingRun(ctx, h, size)
}

// cRingStamped is c-ring whose producer also reads CLOCK_MONOTONIC into
// every slot, the per-frame work the ring ABI adds: ring-stream's
// like-for-like baseline (ratio_to_c_like); ratio_to_c stays against
// c-ring.
func cRingStamped(ctx context.Context, h *harness, size int) (Result, error) {
	return cRingRun(ctx, h, size, "stamp")
}

func cRingRun(ctx context.Context, h *harness, size int, extra ...string) (Result, error) {
	r := Result{Impl: "c", Policy: "block", Wake: "spin"}
	slots := streamSlots(size)
	args := append([]string{strconv.Itoa(int(shm.SlotSizeFor(size))), strconv.Itoa(slots)}, extra...)
	o, err := h.runCProg(ctx, "ring", size, args...)
	if err != nil {
		return r, err
	}
	r.Frames, r.FramesPerS, r.BytesPerS = o.Frames, o.FramesPerS, o.BytesPerS
	var zero int64
	r.Lost = &zero
	if o.Frames < 2 { // ring.c times frames after the first, as fillRate does
		return r, tooFewFrames(o.Frames)
	}
	return r, nil
}
