package framing

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/tinylib/msgp/msgp"
)

// collect decodes everything, returning records (as strings) and the count
// of bad records, and the final error.
func collect(t *testing.T, d *Decoder) (recs []string, bad int, last error) {
	t.Helper()
	for i := 0; i < 10000; i++ {
		r, err := d.Next()
		var be *BadRecordError
		switch {
		case err == nil:
			recs = append(recs, string(r.Data))
		case errors.As(err, &be):
			bad++
		default:
			return recs, bad, err
		}
	}
	t.Fatal("decoder did not terminate")
	return
}

func TestLines(t *testing.T) {
	in := "a\nbb\n\n" + strings.Repeat("x", 20) + "\nccc\n" + strings.Repeat("y", 100) + "\ndd\nlast"
	for _, name := range []string{"whole", "onebyte"} {
		var r io.Reader = strings.NewReader(in)
		if name == "onebyte" {
			r = iotest.OneByteReader(r)
		}
		d := NewDecoder(r, Lines, Options{MaxRecord: 8})
		recs, bad, err := collect(t, d)
		// "last" has no newline: the writer may have died in the middle of
		// it, so it is not a record; the caller counts the bytes left.
		if err != io.ErrUnexpectedEOF || d.Buffered() != len("last") {
			t.Fatalf("%s: err %v, %d bytes left; want io.ErrUnexpectedEOF with the 4 bytes of \"last\"", name, err, d.Buffered())
		}
		want := []string{"a", "bb", "ccc", "dd"}
		if strings.Join(recs, ",") != strings.Join(want, ",") || bad != 2 {
			t.Fatalf("%s: got %q bad %d, want %q bad 2", name, recs, bad, want)
		}
	}
}

// A long line that arrives in many reads (a slow producer on a pipe, a
// FIFO writer sending a byte at a time) is searched for its newline once,
// not again from its start after every read: that cost the square of its
// length (a 1 MiB line in 4 KiB reads: 128 MiB searched; with a large
// slot_payload, a writer could keep the runtime busy for minutes with one
// line). The bytes searched are counted through indexByte.
func TestLinesSearchedOnce(t *testing.T) {
	var searched int
	indexByte = func(b []byte, c byte) int { searched += len(b); return bytes.IndexByte(b, c) }
	t.Cleanup(func() { indexByte = bytes.IndexByte })
	long := strings.Repeat("x", 1<<20)
	in := []byte(long + "\nok\n" + long + "y\n")
	for _, chunk := range []int{4 << 10, 1000} {
		searched = 0
		d := NewDecoder(&chunkReader{b: in, n: chunk}, Lines, Options{MaxRecord: 1 << 20})
		recs, bad, err := collect(t, d)
		if err != io.EOF || bad != 1 || len(recs) != 2 || recs[0] != long || recs[1] != "ok" {
			t.Fatalf("reads of %d bytes: %d records, %d bad, then %v; want the long line, \"ok\", 1 bad (the line one byte too long), EOF", chunk, len(recs), bad, err)
		}
		if searched > 2*len(in) {
			t.Errorf("reads of %d bytes: %d bytes searched for newlines in %d bytes of input", chunk, searched, len(in))
		}
	}
}

// CRLF line ends (serial devices, Windows programs): the \r stays in the
// frame, as docs/config.md says, and a line of only \r is not empty.
func TestLinesCRLF(t *testing.T) {
	d := NewDecoder(strings.NewReader("a\r\n\r\n\nb\x00c\n"), Lines, Options{MaxRecord: 8})
	recs, bad, err := collect(t, d)
	if err != io.EOF || bad != 0 || strings.Join(recs, ",") != "a\r,\r,b\x00c" {
		t.Fatalf("got %q, %d bad, then %v; want \"a\\r\", \"\\r\", \"b\\x00c\", none bad, EOF", recs, bad, err)
	}
}

func len32(p string) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(p)))
	return append(b, p...)
}

func TestLen32(t *testing.T) {
	var in []byte
	in = append(in, len32("one")...)
	in = append(in, len32(strings.Repeat("z", 50))...) // oversized, skipped
	in = append(in, len32("")...)
	in = append(in, len32("two")...)
	d := NewDecoder(iotest.HalfReader(bytes.NewReader(in)), Len32, Options{MaxRecord: 16, MaxSkip: 100})
	recs, bad, err := collect(t, d)
	if err != io.EOF || strings.Join(recs, ",") != "one,,two" || bad != 1 {
		t.Fatalf("got %q bad %d err %v", recs, bad, err)
	}
	// A length beyond MaxSkip breaks the stream.
	in = append(len32("ok"), binary.LittleEndian.AppendUint32(nil, 1<<30)...)
	d = NewDecoder(bytes.NewReader(in), Len32, Options{MaxRecord: 16, MaxSkip: 100})
	recs, _, err = collect(t, d)
	if !errors.Is(err, ErrBroken) || len(recs) != 1 {
		t.Fatalf("got %q err %v, want ErrBroken after one record", recs, err)
	}
	// A MaxSkip at or below MaxRecord skips none: a record of MaxRecord
	// bytes is still a record, and one byte more breaks the stream.
	in = append(len32(strings.Repeat("a", 16)), len32(strings.Repeat("b", 17))...)
	d = NewDecoder(bytes.NewReader(in), Len32, Options{MaxRecord: 16, MaxSkip: 1})
	recs, bad, err = collect(t, d)
	if !errors.Is(err, ErrBroken) || len(recs) != 1 || len(recs[0]) != 16 || bad != 0 {
		t.Fatalf("MaxSkip 1: got %q bad %d err %v, want one 16-byte record then ErrBroken", recs, bad, err)
	}
	// Truncated record at EOF.
	d = NewDecoder(bytes.NewReader(len32("abcdef")[:6]), Len32, Options{MaxRecord: 16})
	if _, err := d.Next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated: %v", err)
	}
}

func TestMsgp(t *testing.T) {
	var in []byte
	in = msgp.AppendBytes(in, []byte("bin"))
	in = msgp.AppendString(in, "str")
	in = msgp.AppendInt(in, 42) // wrong type: skipped
	in = msgp.AppendMapHeader(in, 4)
	in = msgp.AppendString(in, "type")
	in = msgp.AppendUint32(in, 7)
	in = msgp.AppendString(in, "extra")
	in = msgp.AppendArrayHeader(in, 2)
	in = msgp.AppendInt(in, 1)
	in = msgp.AppendInt(in, 2)
	in = msgp.AppendString(in, "flags")
	in = msgp.AppendUint32(in, 3)
	in = msgp.AppendString(in, "data")
	in = msgp.AppendBytes(in, []byte("map"))
	in = msgp.AppendMapHeader(in, 1) // no data: skipped
	in = msgp.AppendString(in, "type")
	in = msgp.AppendUint32(in, 1)
	in = msgp.AppendBytes(in, bytes.Repeat([]byte{1}, 100)) // oversized: skipped
	in = msgp.AppendString(in, "end")
	d := NewDecoder(iotest.OneByteReader(bytes.NewReader(in)), Msgp, Options{MaxRecord: 16})
	var got []string
	var meta []uint32
	bad := 0
	for {
		r, err := d.Next()
		var be *BadRecordError
		if errors.As(err, &be) {
			bad++
			continue
		}
		if err != nil {
			if err != io.EOF {
				t.Fatal(err)
			}
			break
		}
		got = append(got, string(r.Data))
		if r.HasMeta {
			meta = append(meta, r.Type, r.Flags)
		}
	}
	if strings.Join(got, ",") != "bin,str,map,end" || bad != 3 || len(meta) != 2 || meta[0] != 7 || meta[1] != 3 {
		t.Fatalf("got %q meta %v bad %d", got, meta, bad)
	}
}

func TestMsgpTooLargeToBuffer(t *testing.T) {
	big := bytes.Repeat([]byte{2}, 200<<10)
	var in []byte
	in = msgp.AppendBytes(in, big)
	in = msgp.AppendString(in, "after")
	d := NewDecoder(bytes.NewReader(in), Msgp, Options{MaxRecord: 16, MaxSkip: 1 << 20})
	recs, bad, err := collect(t, d)
	if err != io.EOF || bad != 1 || strings.Join(recs, ",") != "after" {
		t.Fatalf("got %q bad %d err %v", recs, bad, err)
	}
	d = NewDecoder(bytes.NewReader(in), Msgp, Options{MaxRecord: 16, MaxSkip: 1024})
	if _, _, err := collect(t, d); !errors.Is(err, ErrBroken) {
		t.Fatalf("want ErrBroken, got %v", err)
	}
}

// Garbage that nests deeply is one bad record, however it is cut into
// reads, and decoding resumes right after the byte that broke it. (The
// decoder used to retry one byte further on after every failed skip: n
// nested array headers then an invalid byte cost n bad records and O(n²)
// time.)
func TestMsgpNestedGarbage(t *testing.T) {
	const depth = 3000
	var in []byte
	in = append(in, bytes.Repeat([]byte{0x91}, depth)...) // [[[[...
	in = append(in, 0xc1)                                 // ...which no object starts with
	in = msgp.AppendString(in, "ok")
	in = append(in, bytes.Repeat([]byte{0x91}, depth)...) // a complete but deep array: wrong type
	in = msgp.AppendInt(in, 1)
	in = msgp.AppendMapHeader(in, 2) // a map whose value is broken
	in = msgp.AppendString(in, "data")
	in = append(in, 0x92, 0x01, 0xc1)
	in = msgp.AppendString(in, "end")
	for name, r := range map[string]func() io.Reader{
		"whole":   func() io.Reader { return bytes.NewReader(in) },
		"onebyte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(in)) },
	} {
		d := NewDecoder(r(), Msgp, Options{MaxRecord: 16})
		recs, bad, err := collect(t, d)
		if err != io.EOF || bad != 3 || strings.Join(recs, ",") != "ok,end" {
			t.Errorf("%s: got %q, %d bad records, then %v; want \"ok,end\", 3 bad, EOF", name, recs, bad, err)
		}
	}
}

// A msgp map or array that does not fit the buffer is skipped as one bad
// record when it is at most MaxSkip bytes, whether it is deep, wide, or a
// record map whose other keys take it past the buffer, and decoding goes on
// after it; past MaxSkip it breaks the stream.
func TestMsgpContainerTooLargeToBuffer(t *testing.T) {
	const max = 70000 // buffer: max + 64
	var rec []byte    // data within max, but the map does not fit the buffer
	rec = msgp.AppendMapHeader(rec, 2)
	rec = msgp.AppendString(rec, "data")
	rec = msgp.AppendBytes(rec, bytes.Repeat([]byte{3}, max))
	rec = msgp.AppendString(rec, "note")
	rec = msgp.AppendString(rec, strings.Repeat("n", 200))
	var bigData []byte // a map whose data alone is larger than the buffer
	bigData = msgp.AppendMapHeader(bigData, 2)
	bigData = msgp.AppendString(bigData, "type")
	bigData = msgp.AppendUint32(bigData, 1)
	bigData = msgp.AppendString(bigData, "data")
	bigData = msgp.AppendBytes(bigData, bytes.Repeat([]byte{4}, 200<<10))
	deep := append(bytes.Repeat([]byte{0x91}, 200<<10), 0x01)
	wide := msgp.AppendArrayHeader(nil, 200<<10)
	wide = append(wide, bytes.Repeat([]byte{0x01}, 200<<10)...)
	for name, obj := range map[string][]byte{"record with more keys": rec, "big data": bigData, "deep": deep, "wide": wide} {
		in := msgp.AppendString(nil, "before")
		in = append(in, obj...)
		in = msgp.AppendString(in, "after")
		for rname, r := range map[string]func() io.Reader{
			"whole": func() io.Reader { return bytes.NewReader(in) },
			"half":  func() io.Reader { return iotest.HalfReader(bytes.NewReader(in)) },
		} {
			d := NewDecoder(r(), Msgp, Options{MaxRecord: max, MaxSkip: 1 << 20})
			recs, bad, err := collect(t, d)
			if err != io.EOF || bad != 1 || strings.Join(recs, ",") != "before,after" {
				t.Errorf("%s, %s reads: got %q, %d bad, then %v; want before,after, 1 bad, EOF", name, rname, recs, bad, err)
			}
			d = NewDecoder(r(), Msgp, Options{MaxRecord: max, MaxSkip: max + 100})
			if recs, _, err := collect(t, d); !errors.Is(err, ErrBroken) || strings.Join(recs, ",") != "before" {
				t.Errorf("%s, %s reads, MaxSkip below its size: got %q then %v, want before then ErrBroken", name, rname, recs, err)
			}
		}
	}
}

// A msgp object that does not fit the buffer and is not a bin or str
// breaks the stream at the default MaxSkip, whether it is deep or wide.
func TestMsgpNestedTooLargeToBuffer(t *testing.T) {
	deep := bytes.Repeat([]byte{0x91}, 200<<10)
	wide := msgp.AppendArrayHeader(nil, 200<<10)
	wide = append(wide, bytes.Repeat([]byte{0x01}, 200<<10)...)
	for name, in := range map[string][]byte{"deep": deep, "wide": wide} {
		d := NewDecoder(iotest.HalfReader(bytes.NewReader(in)), Msgp, Options{MaxRecord: 16})
		if _, _, err := collect(t, d); !errors.Is(err, ErrBroken) {
			t.Errorf("%s: %v, want ErrBroken", name, err)
		}
	}
}

// loopReader replays the same bytes forever.
type loopReader struct {
	b []byte
	i int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.b[l.i:])
	l.i = (l.i + n) % len(l.b)
	return n, nil
}

func TestNoAllocs(t *testing.T) {
	var m []byte
	m = msgp.AppendMapHeader(m, 2)
	m = msgp.AppendString(m, "type")
	m = msgp.AppendUint32(m, 1)
	m = msgp.AppendString(m, "data")
	m = msgp.AppendBytes(m, []byte("payload"))
	cases := map[Kind][]byte{
		Lines: []byte("hello world\n" + strings.Repeat("x", 100) + "\n"),
		Len32: append(len32("hello"), len32(strings.Repeat("y", 100))...),
		Msgp:  append(m, msgp.AppendInt(nil, 5)...),
	}
	for k, b := range cases {
		d := NewDecoder(&loopReader{b: b}, k, Options{MaxRecord: 32, MaxSkip: 1000})
		allocs := testing.AllocsPerRun(1000, func() { d.Next() })
		if allocs != 0 {
			t.Errorf("%v: %v allocs per record", k, allocs)
		}
	}
}

func BenchmarkLines(b *testing.B) {
	line := []byte("1712345678 23.5 48.1 1013.2\n")
	d := NewDecoder(&loopReader{b: bytes.Repeat(line, 100)}, Lines, Options{MaxRecord: 64})
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for i := 0; i < b.N; i++ {
		if _, err := d.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMsgpGarbageOneByte feeds 60 KiB of nested array headers then an
// invalid byte, one byte per read (a slow producer on a pipe): the scan of
// the unfinished object resumes after each read instead of starting over.
func BenchmarkMsgpGarbageOneByte(b *testing.B) {
	in := append(bytes.Repeat([]byte{0x91}, 60<<10), 0xc1)
	in = msgp.AppendString(in, "ok")
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for i := 0; i < b.N; i++ {
		d := NewDecoder(iotest.OneByteReader(bytes.NewReader(in)), Msgp, Options{MaxRecord: 64})
		for {
			_, err := d.Next()
			var be *BadRecordError
			if err != nil && !errors.As(err, &be) {
				break
			}
		}
	}
}

// errStop stands for the read that a stopped source's closed FIFO fails.
var errStop = errors.New("stopped")

// Pending gives the bytes of a record begun but not complete, which a new
// decoder of the same kind decodes whole; inside a record being dropped or
// skipped it says the bytes mean nothing to a fresh decoder.
func TestPending(t *testing.T) {
	stopAfter := func(b []byte) io.Reader { return io.MultiReader(bytes.NewReader(b), iotest.ErrReader(errStop)) }
	cases := []struct {
		name   string
		kind   Kind
		in     []byte
		want   string // pending bytes
		wantOK bool
	}{
		{"lines partial", Lines, []byte("a\nhal"), "hal", true},
		{"lines boundary", Lines, []byte("a\n"), "", true},
		{"lines over-long", Lines, []byte("a\n" + strings.Repeat("x", 20)), "", false},
		{"len32 partial", Len32, append(len32("a"), len32("half")[:6]...), string(len32("half")[:6]), true},
		{"len32 skipping", Len32, append(len32("a"), len32(strings.Repeat("y", 20))[:10]...), "", false},
	}
	for _, c := range cases {
		d := NewDecoder(stopAfter(c.in), c.kind, Options{MaxRecord: 8, MaxSkip: 100})
		recs, _, err := collect(t, d)
		if !errors.Is(err, errStop) || len(recs) != 1 || recs[0] != "a" {
			t.Fatalf("%s: records %q, err %v; want \"a\" then the stop", c.name, recs, err)
		}
		got, ok := d.Pending()
		if string(got) != c.want || ok != c.wantOK {
			t.Fatalf("%s: Pending = %q, %v; want %q, %v", c.name, got, ok, c.want, c.wantOK)
		}
		if !ok {
			continue
		}
		// A fresh decoder given the pending bytes and then the rest of the
		// record decodes it whole.
		rest := map[string]string{"lines partial": "f\n", "lines boundary": "b\n", "len32 partial": string(len32("half")[6:])}[c.name]
		want := map[string]string{"lines partial": "half", "lines boundary": "b", "len32 partial": "half"}[c.name]
		n := NewDecoder(io.MultiReader(bytes.NewReader(got), strings.NewReader(rest)), c.kind, Options{MaxRecord: 8})
		if r, err := n.Next(); err != nil || string(r.Data) != want {
			t.Fatalf("%s: the new decoder read %q, %v; want %q", c.name, r.Data, err, want)
		}
	}
}

// An ext object too large to buffer is, like any object that is not a
// record, skipped whole as one bad record if it is at most MaxSkip bytes
// (docs/config.md), as one that fits the buffer is, and as an ext inside
// a map or array that does not fit; beyond MaxSkip the stream is broken.
// It broke the stream at any size: the decoder skipped only a bin or str
// by its length.
func TestMsgpExtTooLargeToBuffer(t *testing.T) {
	in, err := msgp.AppendExtension(nil, &msgp.RawExtension{Type: 5, Data: bytes.Repeat([]byte{2}, 200<<10)})
	if err != nil {
		t.Fatal(err)
	}
	in = msgp.AppendString(in, "after")
	for name, r := range map[string]func() io.Reader{
		"whole": func() io.Reader { return bytes.NewReader(in) },
		"half":  func() io.Reader { return iotest.HalfReader(bytes.NewReader(in)) },
	} {
		d := NewDecoder(r(), Msgp, Options{MaxRecord: 16, MaxSkip: 1 << 20})
		recs, bad, err := collect(t, d)
		if err != io.EOF || bad != 1 || strings.Join(recs, ",") != "after" {
			t.Errorf("%s: got %q, %d bad records, then %v; want \"after\", 1 bad, EOF", name, recs, bad, err)
		}
		d = NewDecoder(r(), Msgp, Options{MaxRecord: 16, MaxSkip: 100 << 10})
		if _, _, err := collect(t, d); !errors.Is(err, ErrBroken) {
			t.Errorf("%s, max_skip below its size: %v, want ErrBroken", name, err)
		}
	}
}

// A msgp bin, str or ext too large to buffer is skipped by its length; a
// stop in the middle of that skip leaves bytes that mean nothing to a
// fresh decoder (the rest of its payload), which Pending says (ok false),
// as it does for len32. It said ok, with nothing pending, so the runtime
// did not log that the new source reads the rest of the record afresh.
func TestPendingMsgpSkipping(t *testing.T) {
	big := bytes.Repeat([]byte{'y'}, 100<<10)
	ext, err := msgp.AppendExtension(nil, &msgp.RawExtension{Type: 5, Data: big})
	if err != nil {
		t.Fatal(err)
	}
	for name, obj := range map[string][]byte{"bin": msgp.AppendBytes(nil, big), "str": msgp.AppendStringFromBytes(nil, big), "ext": ext} {
		in := append(msgp.AppendString(nil, "a"), obj[:80<<10]...)
		d := NewDecoder(io.MultiReader(bytes.NewReader(in), iotest.ErrReader(errStop)), Msgp, Options{MaxRecord: 8, MaxSkip: 1 << 20})
		recs, _, err := collect(t, d)
		if !errors.Is(err, errStop) || len(recs) != 1 || recs[0] != "a" {
			t.Fatalf("%s: records %q, err %v; want \"a\" then the stop", name, recs, err)
		}
		if got, ok := d.Pending(); len(got) != 0 || ok {
			t.Fatalf("%s: Pending = %d bytes, %v; want none, false (inside a record being skipped)", name, len(got), ok)
		}
		// The skip is over once the record has been skipped whole.
		d = NewDecoder(io.MultiReader(bytes.NewReader(append(obj, msgp.AppendString(nil, "b")...)), iotest.ErrReader(errStop)), Msgp, Options{MaxRecord: 8, MaxSkip: 1 << 20})
		if recs, bad, err := collect(t, d); !errors.Is(err, errStop) || bad != 1 || len(recs) != 1 || recs[0] != "b" {
			t.Fatalf("%s whole: records %q, %d bad, err %v; want \"b\", 1 bad, then the stop", name, recs, bad, err)
		}
		if got, ok := d.Pending(); len(got) != 0 || !ok {
			t.Fatalf("%s whole: Pending = %d bytes, %v; want none, true", name, len(got), ok)
		}
	}
}

// cutReader returns b in reads of at most n bytes, then err (the end of the
// stream: io.EOF, or a read deadline as the runtime sets on a dead child's
// pipe or a removed FIFO).
type cutReader struct {
	b   []byte
	n   int
	err error
}

func (r *cutReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, r.err
	}
	if len(p) > r.n {
		p = p[:r.n]
	}
	k := copy(p, r.b)
	r.b = r.b[k:]
	return k, nil
}

// A stream cut anywhere loses no record without a trace: each record that
// begins before the cut is a record, a bad record, or, if the cut falls
// inside it, the one InRecord reports, whatever ends the stream (EOF or
// another reader error) and however the reads divide it. Records cut
// while the decoder skips them by their length (a len32 or msgp record
// larger than the slot, an msgp map too big to buffer) were reported by
// nothing when the end was not io.EOF: the runtime counted a partial
// record only from the bytes buffered.
func TestCutStreamAccounted(t *testing.T) {
	defer func(n int) { minBuffer = n }(minBuffer)
	minBuffer = 0 // buffers of MaxRecord + 64 bytes
	const max = 8
	type elem struct {
		b      []byte
		record bool // an empty line is no record
	}
	bigMap := msgp.AppendMapHeader(nil, 30)
	for i := 0; i < 30; i++ {
		bigMap = msgp.AppendString(bigMap, "k")
		bigMap = msgp.AppendInt(bigMap, i)
	}
	bigMap = append(bigMap[:0:0], bigMap...)
	bigData := msgp.AppendMapHeader(nil, 1) // a record map whose data does not fit
	bigData = msgp.AppendString(bigData, "data")
	bigData = msgp.AppendBytes(bigData, bytes.Repeat([]byte("D"), 100))
	rec := msgp.AppendMapHeader(nil, 2)
	rec = msgp.AppendString(rec, "type")
	rec = msgp.AppendUint32(rec, 3)
	rec = msgp.AppendString(rec, "data")
	rec = msgp.AppendBytes(rec, []byte("m"))
	streams := map[Kind][]elem{
		Lines: {
			{[]byte("abc\n"), true}, {[]byte("\n"), false}, {[]byte(strings.Repeat("L", 30) + "\n"), true},
			{[]byte("x\n"), true}, {[]byte(strings.Repeat("M", 9) + "\n"), true}, {[]byte("yz\n"), true},
		},
		Len32: {
			{len32("abc"), true}, {len32(""), true}, {len32(strings.Repeat("O", 100)), true},
			{len32("de"), true}, {len32(strings.Repeat("P", 9)), true}, {len32("f"), true},
		},
		Msgp: {
			{msgp.AppendBytes(nil, []byte("abc")), true}, {msgp.AppendInt(nil, 7), true},
			{msgp.AppendBytes(nil, bytes.Repeat([]byte("Q"), 100)), true}, {rec, true},
			{bigMap, true}, {msgp.AppendString(nil, "s"), true}, {bigData, true},
			{msgp.AppendBytes(nil, bytes.Repeat([]byte("R"), 9)), true}, {msgp.AppendBytes(nil, []byte("t")), true},
		},
	}
	deadline := errors.New("read deadline")
	for kind, elems := range streams {
		var in []byte
		for _, e := range elems {
			in = append(in, e.b...)
		}
		for cut := 0; cut <= len(in); cut++ {
			// records that begin before the cut; inside: the cut falls inside one
			want, off, inside := 0, 0, false
			for _, e := range elems {
				if off < cut && e.record {
					want++
					inside = cut < off+len(e.b)
				}
				off += len(e.b)
			}
			for _, chunk := range []int{1, 7, len(in) + 1} {
				for _, end := range []error{io.EOF, deadline} {
					d := NewDecoder(&cutReader{b: in[:cut], n: chunk, err: end}, kind, Options{MaxRecord: max, MaxSkip: 1000})
					recs, bad, err := collect(t, d)
					if err != end && !(end == io.EOF && err == io.ErrUnexpectedEOF) {
						t.Fatalf("%v cut at %d of %d, reads of %d: ended with %v; want %v", kind, cut, len(in), chunk, err, end)
					}
					if err == io.ErrUnexpectedEOF && !d.InRecord() {
						t.Fatalf("%v cut at %d, reads of %d: io.ErrUnexpectedEOF, but InRecord is false", kind, cut, chunk)
					}
					cutShort := 0
					if d.InRecord() {
						cutShort = 1
					}
					if got := len(recs) + bad + cutShort; got != want {
						t.Fatalf("%v cut at %d of %d (inside a record: %v), reads of %d, ended by %v: %d records, %d bad, InRecord %v; want %d in all",
							kind, cut, len(in), inside, chunk, end, len(recs), bad, d.InRecord(), want)
					}
				}
			}
		}
	}
}
