package framing

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"
)

// chunkReader returns at most n bytes per Read, as a pipe read by a slow
// producer does.
type chunkReader struct {
	b []byte
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), c.n, len(c.b))
	copy(p, c.b[:k])
	c.b = c.b[k:]
	return k, nil
}

// outcome is what a decoder made of a stream: records and bad records in
// order, then the error that ended it.
type outcome struct {
	items []string // "r:<data>" or "bad"
	end   error
}

func (o outcome) String() string { return fmt.Sprintf("%q then %v", o.items, o.end) }

func decodeAll(t *testing.T, d *Decoder, limit int) outcome {
	var o outcome
	for range limit {
		r, err := d.Next()
		var be *BadRecordError
		switch {
		case err == nil:
			if len(r.Data) > d.max {
				t.Fatalf("record of %d bytes from a decoder with MaxRecord %d", len(r.Data), d.max)
			}
			o.items = append(o.items, "r:"+string(r.Data))
		case errors.As(err, &be):
			o.items = append(o.items, "bad")
		default:
			o.end = err
			return o
		}
	}
	t.Fatalf("decoder still returning records after %d calls (input shorter than that)", limit)
	return o
}

// linesOracle is the lines framing, read from its documentation.
func linesOracle(b []byte, max int) outcome {
	var o outcome
	parts := bytes.Split(b, []byte("\n"))
	for i, p := range parts {
		switch {
		case len(p) == 0:
		case len(p) > max:
			o.items = append(o.items, "bad")
		case i == len(parts)-1:
			// a last line without its newline is incomplete, not a record
			o.end = io.ErrUnexpectedEOF
			return o
		default:
			o.items = append(o.items, "r:"+string(p))
		}
	}
	o.end = io.EOF
	return o
}

// len32Oracle is the len32 framing, read from its documentation.
func len32Oracle(b []byte, max, maxSkip int) outcome {
	var o outcome
	for {
		switch {
		case len(b) == 0:
			o.end = io.EOF
			return o
		case len(b) < 4:
			o.end = io.ErrUnexpectedEOF
			return o
		}
		n := uint64(binary.LittleEndian.Uint32(b))
		b = b[4:]
		switch {
		case n > uint64(maxSkip):
			o.end = ErrBroken
			return o
		case n > uint64(len(b)):
			o.end = io.ErrUnexpectedEOF
			return o
		case n > uint64(max):
			o.items = append(o.items, "bad")
		default:
			o.items = append(o.items, "r:"+string(b[:n]))
		}
		b = b[n:]
	}
}

// FuzzDecoder feeds arbitrary bytes, in reads of arbitrary size, to each
// framing: the decoder never panics, always ends, never returns a record
// longer than MaxRecord, and for lines and len32 returns exactly what the
// documented rules say (records, bad records, final error).
func FuzzDecoder(f *testing.F) {
	f.Add([]byte("a\nbb\n\nccc"), uint8(0), uint8(3), uint8(2))
	f.Add([]byte("0123456789abcdef0123\nx\n"), uint8(0), uint8(1), uint8(7))
	f.Add([]byte("\x02\x00\x00\x00hi\x40\x00\x00\x00"), uint8(1), uint8(5), uint8(4))
	f.Add([]byte("\x05\x00\x00\x00hello\xff\xff\xff\xff"), uint8(1), uint8(2), uint8(3))
	f.Add([]byte("\xc4\x02hi\x83\xa4type\x01\xa5flags\x02\xa4data\xa1x\x91\x01"), uint8(2), uint8(3), uint8(5))
	f.Add([]byte("\xc6\x7f\xff\xff\xff"), uint8(2), uint8(1), uint8(1))
	f.Add(append(append([]byte{0xdc, 0, 120}, bytes.Repeat([]byte{1}, 120)...), "\xa2ok"...), uint8(2), uint8(7), uint8(8)) // an array beyond the buffer, skipped
	defer func(n int) { minBuffer = n }(minBuffer)
	minBuffer = 0 // buffers of MaxRecord + 64 bytes: msgp objects longer than that are skipped or break the stream
	f.Fuzz(func(t *testing.T, b []byte, kind, chunk, maxRec uint8) {
		k := Kind(kind % 3)
		max := int(maxRec%32) + 1
		opts := Options{MaxRecord: max, MaxSkip: 4 * max}
		d := NewDecoder(&chunkReader{b: b, n: int(chunk%17) + 1}, k, opts)
		got := decodeAll(t, d, len(b)+2)
		var want outcome
		switch k {
		case Lines:
			want = linesOracle(b, max)
		case Len32:
			want = len32Oracle(b, max, opts.MaxSkip)
		default:
			if got.end != io.EOF && got.end != io.ErrUnexpectedEOF && got.end != ErrBroken {
				t.Fatalf("msgp stream ended with %v; want io.EOF, io.ErrUnexpectedEOF or ErrBroken", got.end)
			}
			return
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%v framing of %q (reads of %d, MaxRecord %d):\n got %v\nwant %v", k, b, int(chunk%17)+1, max, got, want)
		}
	})
}
