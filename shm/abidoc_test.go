package shm

import (
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// abiDoc is what the tables of docs/abi.md say: the offset of every named
// field ("magic", "reader.owner", "slot.seq", "sem.value") and the size in
// the heading of each table ("header", "reader", "sem").
type abiDoc struct {
	offsets map[string]uintptr
	sizes   map[string]uintptr
}

func readABIDoc(t *testing.T) abiDoc {
	t.Helper()
	b, err := os.ReadFile("../docs/abi.md")
	if err != nil {
		t.Fatal(err)
	}
	d := abiDoc{offsets: map[string]uintptr{}, sizes: map[string]uintptr{}}
	row := regexp.MustCompile("^\\| ([0-9]+) \\| [^|]+ \\| `?([a-z_]+)`? \\|")
	size := regexp.MustCompile(`([0-9]+) bytes`)
	prefix := "-" // outside the four tables
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "#") {
			sect := ""
			switch {
			case strings.HasPrefix(line, "### Header"):
				prefix, sect = "", "header"
			case strings.HasPrefix(line, "### Reader entry"):
				prefix, sect = "reader.", "reader"
			case strings.HasPrefix(line, "### Slot"):
				prefix, sect = "slot.", "slot"
			case strings.HasPrefix(line, "## Named semaphore"):
				prefix, sect = "sem.", "sem"
			default:
				prefix = "-"
			}
			if m := size.FindStringSubmatch(line); m != nil && sect != "" {
				n, _ := strconv.Atoi(m[1])
				d.sizes[sect] = uintptr(n)
			}
			continue
		}
		if m := row.FindStringSubmatch(line); m != nil && prefix != "-" {
			n, _ := strconv.Atoi(m[1])
			d.offsets[prefix+m[2]] = uintptr(n)
		}
	}
	return d
}

// TestABIDocMatchesLayout reads the field tables of docs/abi.md and checks
// them against the Go structs: every field the Go side has at the offset
// the page gives, no field on the page that Go does not have, and the
// sizes in the tables' headings.
func TestABIDocMatchesLayout(t *testing.T) {
	doc := readABIDoc(t)
	goNames := map[string]bool{}
	for _, c := range abiOffsets() {
		if strings.Contains(c.name, " ") { // sizes, checked below
			continue
		}
		goNames[c.name] = true
		off, ok := doc.offsets[c.name]
		switch {
		case !ok:
			t.Errorf("docs/abi.md has no row for %s (Go: offset %d)", c.name, c.got)
		case off != c.got:
			t.Errorf("docs/abi.md puts %s at %d; the Go struct has it at %d", c.name, off, c.got)
		}
	}
	for name, off := range doc.offsets {
		if name == "slot.payload" {
			if off != slotHeaderBytes {
				t.Errorf("docs/abi.md puts the payload at %d; it starts after the %d-byte slot header", off, slotHeaderBytes)
			}
			continue
		}
		if !goNames[name] {
			t.Errorf("docs/abi.md has a field %s at %d that the Go structs do not have", name, off)
		}
	}
	for sect, want := range map[string]uintptr{"header": headerBytes, "reader": readerStride, "sem": semSegmentSize} {
		if got, ok := doc.sizes[sect]; !ok || got != want {
			t.Errorf("docs/abi.md's %s table is headed %d bytes (found: %v); Go: %d", sect, got, ok, want)
		}
	}
}

// clientConstants reads the integer constants of the C header
// (#define EDGEIPC_X value) and of the Python module (X = value, or
// X, Y = 1, 2), evaluating the few forms they use: 0x…u, (1u << 24),
// ((64u << 20) + 64u).
func clientConstants(t *testing.T) (c, py map[string]uint64) {
	t.Helper()
	eval := func(s string) (uint64, bool) {
		s = strings.TrimSpace(s)
		s = strings.NewReplacer("(", "", ")", "", "u", "").Replace(s)
		var sum uint64
		for _, term := range strings.Split(s, "+") {
			v := uint64(1)
			parts := strings.Split(term, "<<")
			for i, p := range parts {
				n, err := strconv.ParseUint(strings.TrimSpace(p), 0, 64)
				if err != nil {
					return 0, false
				}
				if i == 0 {
					v = n
				} else {
					v <<= n
				}
			}
			sum += v
		}
		return sum, true
	}
	hb, err := os.ReadFile("../clients/c/edgeipc.h")
	if err != nil {
		t.Fatal(err)
	}
	c = map[string]uint64{}
	def := regexp.MustCompile(`(?m)^#define EDGEIPC_([A-Z0-9_]+) ([^/\n]+)`)
	for _, m := range def.FindAllStringSubmatch(string(hb), -1) {
		if v, ok := eval(m[2]); ok {
			c[m[1]] = v
		}
	}
	pb, err := os.ReadFile("../clients/python/edgeipc_ring.py")
	if err != nil {
		t.Fatal(err)
	}
	py = map[string]uint64{}
	assign := regexp.MustCompile(`(?m)^([A-Z][A-Z0-9_]*(?:, [A-Z][A-Z0-9_]*)*) = ([^#\n]+)`)
	for _, m := range assign.FindAllStringSubmatch(string(pb), -1) {
		names, vals := strings.Split(m[1], ", "), strings.Split(m[2], ",")
		if len(names) != len(vals) {
			continue
		}
		for i, n := range names {
			if v, ok := eval(vals[i]); ok {
				py[n] = v
			}
		}
	}
	return c, py
}

// TestClientsMatchABI checks the offsets and constants of the C header and
// the Python module against the Go layout (which TestABIDocMatchesLayout
// and TestLayoutMatchesABI tie to docs/abi.md): a client written from the
// page must agree with the Go side on every number.
func TestClientsMatchABI(t *testing.T) {
	c, py := clientConstants(t)
	// Client offset names: H_, R_ and S_ plus the field's name, except
	// for these.
	rename := map[string]string{
		"H_VERSION": "abi_version", "H_TOTAL_LO": "total_size_lo", "H_TOTAL_HI": "total_size_hi",
		"S_TIME_LO": "slot.timestamp_ns",
	}
	goOff := map[string]uint64{}
	for _, o := range abiOffsets() {
		goOff[o.name] = uint64(o.got)
	}
	field := func(k string) (string, bool) {
		if n, ok := rename[k]; ok {
			return n, true
		}
		switch {
		case strings.HasPrefix(k, "H_"):
			return strings.ToLower(k[2:]), true
		case strings.HasPrefix(k, "R_"):
			return "reader." + strings.ToLower(k[2:]), true
		case strings.HasPrefix(k, "S_"):
			return "slot." + strings.ToLower(k[2:]), true
		}
		return "", false
	}
	consts := map[string]uint64{
		"MAGIC": ringMagic, "SEM_MAGIC": semMagic, "ABI_VERSION": ABIVersion,
		"HEADER_SIZE": uint64(ringHeaderSize()), "MIN_FILE": uint64(ringHeaderSize()),
		"READERS_OFF": headerBytes, "READER_STRIDE": readerStride, "MAX_READERS": MaxReaders,
		"SLOT_HEADER": slotHeaderBytes, "MAX_SLOTS": MaxSlots, "CLAIM": claimBit,
		"MAX_SLOT_SIZE":    MaxSlotPayload + slotHeaderBytes,
		"POLICY_OVERWRITE": policyOverwrite, "POLICY_BLOCK": policyBlock,
		"OVERWRITE": policyOverwrite, "BLOCK": policyBlock,
		"RF_EVENTFD": readerEventfd, "RF_ASLEEP": readerAsleep,
		"MAX_SLEEP_MS": uint64(10 * time.Second / time.Millisecond),
		"S_TIME_HI":    goOff["slot.timestamp_ns"] + 4,
		"FUTEX_WAIT":   0, "FUTEX_WAKE": 1,
	}
	for lang, m := range map[string]map[string]uint64{"clients/c/edgeipc.h": c, "clients/python/edgeipc_ring.py": py} {
		offsets := 0
		for k, v := range m {
			want, ok := consts[k]
			if !ok {
				f, isOff := field(k)
				if !isOff {
					continue // not an ABI number (error codes, MASK32, …)
				}
				o, known := goOff[f]
				if !known {
					t.Errorf("%s: %s = %d names no field of docs/abi.md (%s)", lang, k, v, f)
					continue
				}
				want = o
				offsets++
			}
			if v != want {
				t.Errorf("%s: %s = %d; the Go side (docs/abi.md) has %d", lang, k, v, want)
			}
		}
		// An offset for every field of the ring, but the header's
		// reserved flags word (the clients do not use the semaphore).
		want := 0
		for name := range goOff {
			if !strings.Contains(name, " ") && !strings.HasPrefix(name, "sem.") && name != "flags" {
				want++
			}
		}
		if offsets != want {
			t.Errorf("%s: found %d field offsets, want %d (the parser found: %v)", lang, offsets, want, m)
		}
	}
	// The Python module has no MAX_SLEEP_MS: its MAX_SLEEP is in seconds.
	if !strings.Contains(readString(t, "../clients/python/edgeipc_ring.py"), "MAX_SLEEP = 10.0") {
		t.Error("clients/python/edgeipc_ring.py: MAX_SLEEP is not 10.0 seconds, the bound docs/abi.md gives every sleep")
	}
	if uint64(maxSleep()) != uint64(10*time.Second) || math.MaxInt32 != MaxSemaphoreValue {
		t.Errorf("maxSleep %v, MaxSemaphoreValue %d: docs/abi.md says 10 s and 2^31 − 1", maxSleep(), MaxSemaphoreValue)
	}
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
