//go:build linux

package shm

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"
)

// validImage returns the bytes of a small ring with a few frames in it.
func validImage(t testing.TB, dir string) []byte { return policyImage(t, dir, Overwrite) }

// policyImage is validImage with the given policy.
func policyImage(t testing.TB, dir string, p Policy) []byte {
	r, err := Create("img", Config{Slots: 4, SlotPayload: 64, Policy: p, Segment: SegmentOptions{Dir: dir}})
	if err != nil {
		t.Fatal(err)
	}
	w, _ := r.NewWriter()
	for i := 0; i < 6; i++ {
		w.Write([]byte("frame payload"))
	}
	w.Close()
	img := append([]byte(nil), r.seg.mem...)
	r.Close()
	Remove("img", &SegmentOptions{Dir: dir})
	return img
}

func openImage(t testing.TB, dir string, img []byte) (*Ring, error) {
	path := filepath.Join(dir, FilePrefix+"fz")
	os.Remove(path)
	if err := os.WriteFile(path, img, 0o600); err != nil {
		t.Fatal(err)
	}
	return Open("fz", &SegmentOptions{Dir: dir})
}

// exercise runs every reader and writer operation against a ring whose
// shared memory may be hostile. It must neither panic nor hang: the
// blocking forms run with deadlines of 100 us, and one that has not
// returned 5 s later crashes the test (the fuzzer saves the input).
func exercise(r *Ring) {
	r.Inspect()
	hung := time.AfterFunc(5*time.Second, func() {
		panic("a blocking ring operation ignored its 100 us deadline for 5 s")
	})
	defer hung.Stop()
	rd, err := r.NewReader(&ReaderOptions{From: Oldest})
	if err == nil {
		buf := make([]byte, r.SlotPayload())
		for i := 0; i < 16; i++ {
			f, err := rd.TryNext()
			if err == nil {
				_ = len(f.Data)
				if len(f.Data) > r.SlotPayload() {
					panic("frame longer than the slot payload")
				}
				rd.Release()
			}
			rd.TryReadInto(buf)
		}
		rd.Close()
	}
	// Blocking forms: a spinning reader (its poll loop trusts the slot
	// stamps) and a sleeping one, a block writer waiting for space.
	for _, spin := range []int{64, 0} {
		rd, err := r.NewReader(&ReaderOptions{From: Oldest, Spin: spin})
		if err != nil {
			break
		}
		buf := make([]byte, r.SlotPayload())
		for i := 0; i < 3; i++ {
			if f, err := rd.NextDeadline(time.Now().Add(100 * time.Microsecond)); err == nil {
				if len(f.Data) > r.SlotPayload() {
					panic("frame longer than the slot payload")
				}
				rd.Release()
			}
			rd.ReadIntoDeadline(time.Now().Add(100*time.Microsecond), buf)
		}
		rd.Close()
	}
	// A reader that reads nothing, so a block writer fills the ring and
	// then waits for space.
	if rd, err := r.NewReader(&ReaderOptions{From: Oldest}); err == nil {
		defer rd.Close()
	}
	if w, err := r.NewWriter(); err == nil {
		for i := 0; i < 8; i++ {
			if _, err := w.TryReserve(8); err == nil {
				w.Commit()
			}
		}
		for i := 0; i < 3; i++ {
			if _, err := w.ReserveDeadline(time.Now().Add(100*time.Microsecond), 8); err == nil {
				w.Commit()
			}
		}
		w.Close()
	}
}

func TestCorruptHeaders(t *testing.T) {
	dir := t.TempDir()
	img := validImage(t, dir)
	put := func(off int, v uint32) []byte {
		b := append([]byte(nil), img...)
		binary.LittleEndian.PutUint32(b[off:], v)
		return b
	}
	cases := []struct {
		name string
		img  []byte
		want error
	}{
		{"magic", put(0, 0xdeadbeef), ErrCorrupt},
		{"version", put(4, 2), ErrVersion},
		{"header_size", put(8, 4096), ErrCorrupt},
		{"slot_size not multiple of 64", put(12, 130), ErrCorrupt},
		{"slot_size huge", put(12, 1<<30), ErrCorrupt},
		{"slot_count not power of two", put(16, 3), ErrCorrupt},
		{"slot_count huge", put(16, 1<<30), ErrCorrupt},
		{"max_payload", put(20, 1000), ErrCorrupt},
		{"policy", put(24, 7), ErrCorrupt},
		{"max_readers", put(28, 1000), ErrVersion},
		{"total_size", put(48, 12345), ErrCorrupt},
		{"truncated", img[:8000], ErrCorrupt},
		{"truncated slots", img[:len(img)-64], ErrCorrupt},
		{"never ready", put(44, 0), ErrCorrupt},
		{"semaphore", put(0, semMagic), ErrInvalid},
		{"short semaphore", binary.LittleEndian.AppendUint32(nil, semMagic), ErrInvalid},
	}
	for _, c := range cases {
		r, err := openImage(t, dir, c.img)
		if err == nil {
			r.Close()
			t.Errorf("%s: opened a corrupt ring", c.name)
			continue
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// A consistent slot with an impossible length is reported, not used.
	b := append([]byte(nil), img...)
	hs := int(ringHeaderSize())
	slot := hs + (4&3)*128 // frame 4 lives in slot 0
	binary.LittleEndian.PutUint32(b[slot+4:], 5000)
	r, err := openImage(t, dir, b)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rd, _ := r.NewReader(&ReaderOptions{From: Oldest})
	var sawCorrupt bool
	for i := 0; i < 8; i++ {
		f, err := rd.TryNext()
		if errors.Is(err, ErrCorrupt) {
			sawCorrupt = true
			continue
		}
		if err != nil {
			break
		}
		if len(f.Data) > r.SlotPayload() {
			t.Fatal("returned a frame longer than the slot")
		}
		rd.Release()
	}
	if !sawCorrupt || rd.Stats().Corrupt != 1 {
		t.Fatalf("corrupt length not reported: stats %+v", rd.Stats())
	}
	// A reader table cursor far ahead of the head does not stall or crash
	// a block-policy writer.
	exercise(r)
}

// FuzzRingImage feeds arbitrary bytes as a ring segment.
func FuzzRingImage(f *testing.F) {
	// Most inputs have no ready flag: give up on them at once instead of
	// after Open's second of waiting for a creator.
	defer readyPolls.Store(readyPolls.Load())
	readyPolls.Store(0)
	dir := f.TempDir()
	img := validImage(f, dir)
	f.Add(img)
	f.Add(img[:8192])
	f.Add([]byte("EIPR"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || len(data) > 1<<20 {
			return
		}
		r, err := openImage(t, dir, data)
		if err != nil {
			return
		}
		defer r.Close()
		exercise(r)
	})
}

// FuzzRingPatches applies (offset, value) patches to a valid ring, the way
// a hostile or buggy process could, before and while it is used.
func FuzzRingPatches(f *testing.F) {
	dir := f.TempDir()
	imgs := [][]byte{validImage(f, dir), policyImage(f, dir, Block)}
	f.Add([]byte{128, 0, 0, 0, 0, 128})           // head = 0x80000000
	f.Add([]byte{0, 33, 9, 0, 0, 0})              // a slot length
	f.Add([]byte{12, 1, 255, 255, 255, 255})      // a reader cursor
	f.Add([]byte{64, 0, 1, 0, 0, 0, 0, 33, 1, 0}) // lease owner
	f.Add([]byte{192, 0, 255, 255, 255, 127})     // space_value = 2^31-1: units that bring no space
	f.Add([]byte{0, 0x21, 12, 0, 0, 0})           // slot 2's stamp says frame 6, its seq says 2
	f.Fuzz(func(t *testing.T, patches []byte) {
		for _, img := range imgs { // both policies
			r, err := openImage(t, dir, img)
			if err != nil {
				t.Fatal(err)
			}
			apply := func() {
				for i := 0; i+6 <= len(patches); i += 6 {
					off := int(binary.LittleEndian.Uint16(patches[i:])) % (len(img) - 4) &^ 3
					v := binary.LittleEndian.Uint32(patches[i+2:])
					*(*uint32)(unsafe.Add(r.mem, off)) = v
				}
			}
			apply()
			exercise(r)
			apply()
			exercise(r)
			r.Close()
		}
	})
}

// A ring whose creator has written magic but not yet ready is waited for.
func TestOpenWaitsForReady(t *testing.T) {
	dir := t.TempDir()
	img := validImage(t, dir)
	binary.LittleEndian.PutUint32(img[44:], 0)
	path := filepath.Join(dir, FilePrefix+"late")
	if err := os.WriteFile(path, img, 0o600); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		f, _ := os.OpenFile(path, os.O_WRONLY, 0)
		f.WriteAt([]byte{1, 0, 0, 0}, 44)
		f.Close()
	}()
	r, err := Open("late", &SegmentOptions{Dir: dir})
	if err != nil {
		t.Fatalf("Open did not wait for ready: %v", err)
	}
	r.Close()
}
