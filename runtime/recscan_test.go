package runtime

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// readCounter counts the bytes read from a real file.
type readCounter struct {
	f *os.File
	n atomic.Int64
}

func (c *readCounter) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.f.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

// refWholeRecords is the plain definition wholeRecords must agree with:
// the end of the last whole len32 record of b, or -1 if b is not a
// recorder file (a record shorter than its header, or no whole record).
func refWholeRecords(b []byte) int64 {
	off := 0
	for off+4 <= len(b) {
		n := int(binary.LittleEndian.Uint32(b[off:]))
		if n < RecordHeaderSize {
			return -1
		}
		if len(b)-off-4 < n {
			break
		}
		off += 4 + n
	}
	if off < len(b) && off == 0 {
		return -1
	}
	return int64(off)
}

// TestWholeRecordsScan: the recorder's start-up check of its file used to
// read every byte of it; it now jumps over payloads beyond its read
// window, and must still find the same end of the last whole record as a
// plain walk, and refuse the same files, whatever the record sizes and
// wherever the file is cut (in a length, a header or a payload).
func TestWholeRecordsScan(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(t *testing.T, b []byte) *readCounter {
		t.Helper()
		path := filepath.Join(dir, "rec")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		rc := &readCounter{f: f}
		got, err := wholeRecords(t.Context(), rc, path, int64(len(b)))
		want := refWholeRecords(b)
		switch {
		case want < 0 && (err == nil || !strings.Contains(err.Error(), "is not a recorder file")):
			t.Fatalf("%d bytes: got %d, %v; want a 'not a recorder file' error", len(b), got, err)
		case want >= 0 && (err != nil || got != want):
			t.Fatalf("%d bytes: got %d, %v; want %d", len(b), got, err, want)
		}
		return rc
	}
	record := func(b []byte, payload int) []byte {
		var l [4]byte
		binary.LittleEndian.PutUint32(l[:], uint32(RecordHeaderSize+payload))
		b = append(b, l[:]...)
		return append(b, make([]byte, RecordHeaderSize+payload)...)
	}

	t.Run("random", func(t *testing.T) {
		for i := 0; i < 300; i++ {
			var b []byte
			for n := rng.IntN(12); n > 0; n-- {
				size := rng.IntN(100)
				if rng.IntN(3) == 0 {
					size = rng.IntN(3 * scanWindow) // across windows
				}
				b = record(b, size)
			}
			if len(b) > 0 && rng.IntN(2) == 0 {
				b = b[:rng.IntN(len(b))] // cut anywhere
			}
			if len(b) > 8 && rng.IntN(10) == 0 {
				binary.LittleEndian.PutUint32(b[len(b)/2:], uint32(rng.IntN(RecordHeaderSize))) // garbage
			}
			check(t, b)
		}
	})
	t.Run("text", func(t *testing.T) { check(t, []byte("hello, this is a text file\n")) })
	t.Run("short record", func(t *testing.T) { check(t, append(record(nil, 5), 3, 0, 0, 0)) })

	t.Run("large records are not read", func(t *testing.T) {
		var b []byte
		const frames, size = 32, 1 << 20 // a camera's 1 MiB frames
		for i := 0; i < frames; i++ {
			b = record(b, size)
		}
		b = b[:len(b)-1000] // the last one cut short
		rc := check(t, b)
		if limit := int64(frames * scanWindow); rc.n.Load() > limit {
			t.Errorf("read %d of %d bytes to check %d records; want at most one %d-byte window per record (%d)",
				rc.n.Load(), len(b), frames, scanWindow, limit)
		}
	})
}
