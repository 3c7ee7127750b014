// Package framing turns a byte stream (a child's stdout, a FIFO) into
// records that become ring frames. It is used by the runtime's exec and
// fifo sources and is usable on its own.
//
// # Framings
//
//   - lines: newline-delimited records; the '\n' is not part of the record
//     (a trailing '\r' is kept). Empty lines are skipped. A line longer than
//     the maximum record size is dropped up to the next newline and reported
//     once as a *BadRecordError.
//   - len32: each record is a 4-byte little-endian unsigned length followed
//     by that many payload bytes. A length above the maximum is a bad record:
//     its bytes are skipped if it is at most MaxSkip, otherwise the stream is
//     broken (ErrBroken: the caller must drop the stream, e.g. restart the
//     producer), since the length is probably garbage.
//   - msgp: each record is one MessagePack object: a bin or str object (the
//     payload; type and flags 0), or a map with keys "type" (uint),
//     "flags" (uint) and "data" (bin or str); unknown keys are skipped,
//     a map without "data" or any other object type is a bad record and is
//     skipped whole. An object too large to buffer is skipped if it is at
//     most MaxSkip bytes (a bin, str or ext by its declared length, a map
//     or array by scanning it), else ErrBroken.
//     A byte that starts no object (0xc1) makes the object around it
//     malformed: it is dropped through that byte as one bad record and
//     decoding resumes after it. Finding an object's end costs time linear
//     in its size, however deep it nests and however the reads cut it.
//
// A record cut short by the end of the stream never becomes a record:
// Next returns io.ErrUnexpectedEOF (or, for another error of the reader,
// such as a read deadline, that error), and InRecord reports that a
// record was cut, so that the caller can count it as one bad record.
//
// The Decoder reuses one buffer; Next allocates nothing.
package framing

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/tinylib/msgp/msgp"
)

// Kind names a framing.
type Kind int

// Framings.
const (
	Lines Kind = iota
	Len32
	Msgp
)

func (k Kind) String() string {
	switch k {
	case Lines:
		return "lines"
	case Len32:
		return "len32"
	case Msgp:
		return "msgp"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// ParseKind parses "lines", "len32" or "msgp".
func ParseKind(s string) (Kind, error) {
	switch s {
	case "lines":
		return Lines, nil
	case "len32":
		return Len32, nil
	case "msgp":
		return Msgp, nil
	}
	return 0, fmt.Errorf("framing: unknown framing %q (want lines, len32 or msgp)", s)
}

// ErrBroken means the stream cannot be resynchronised; drop it.
var ErrBroken = errors.New("framing: stream broken")

// BadRecordError describes a record that was dropped; decoding continues
// with the next record.
type BadRecordError struct {
	Reason string
	Size   int // declared or observed size, if known
}

func (e *BadRecordError) Error() string {
	if e.Size > 0 {
		return fmt.Sprintf("framing: bad record (%s, %d bytes)", e.Reason, e.Size)
	}
	return "framing: bad record (" + e.Reason + ")"
}

// Record is one decoded record. Data aliases the decoder's buffer and is
// valid until the next call to Next.
type Record struct {
	Data  []byte
	Type  uint32
	Flags uint32
	// HasMeta reports that Type and Flags came from the record (msgp map).
	HasMeta bool
}

// Options bound a Decoder.
type Options struct {
	MaxRecord int // largest payload accepted (the ring's slot payload)
	MaxSkip   int // largest oversized record skipped instead of breaking the stream
}

// Decoder reads records from a stream.
type Decoder struct {
	r        io.Reader
	kind     Kind
	max      int
	maxSkip  int
	buf      []byte
	start    int // first unconsumed byte
	end      int // end of buffered bytes
	err      error
	dropping bool // lines: inside an over-long line
	inSkip   bool // len32, msgp bin/str/ext: skipping an oversized record by its length
	lineScan int  // lines: bytes from start already searched for '\n'
	// msgp: the scan for the end of the current object, resumed after a
	// fill: scanPos is the offset from start of the next header to read,
	// scanLeft the number of objects still to scan.
	scanning bool
	scanPos  int
	scanLeft uint64
	// An object too big to buffer is scanned on while the scanned part is
	// discarded (skipped bytes so far); it ends as one oversized record,
	// or as ErrBroken past maxSkip.
	skipping bool
	skipped  uint64
	// preallocated errors (no allocation per bad record)
	errLong, errOversize, errType, errNoData, errMalformed, errBig, errExt BadRecordError
}

// indexByte is bytes.IndexByte (a test counts the bytes it searches).
var indexByte = bytes.IndexByte

// minBuffer is the smallest decode buffer (the fuzz test lowers it, so
// that short inputs reach the paths for objects too big to buffer).
var minBuffer = 64 << 10

// NewDecoder returns a decoder for kind reading r.
func NewDecoder(r io.Reader, kind Kind, opts Options) *Decoder {
	if opts.MaxRecord <= 0 {
		opts.MaxRecord = 4096
	}
	if opts.MaxSkip < opts.MaxRecord {
		opts.MaxSkip = opts.MaxRecord
	}
	n := opts.MaxRecord + 64 // room for a header/map around the largest payload
	if n < minBuffer {
		n = minBuffer
	}
	d := &Decoder{r: r, kind: kind, max: opts.MaxRecord, maxSkip: opts.MaxSkip, buf: make([]byte, n)}
	d.errLong = BadRecordError{Reason: "line longer than the slot payload"}
	d.errOversize = BadRecordError{Reason: "record longer than the slot payload"}
	d.errType = BadRecordError{Reason: "msgp object is not bin, str or map"}
	d.errNoData = BadRecordError{Reason: "msgp map without data"}
	d.errMalformed = BadRecordError{Reason: "malformed msgp object"}
	d.errBig = BadRecordError{Reason: "msgp map or array larger than the slot payload plus 64 bytes (at least 64 KiB)"}
	d.errExt = BadRecordError{Reason: "msgp ext object (not bin, str or map) larger than the slot payload plus 64 bytes (at least 64 KiB)"}
	return d
}

// Reset discards buffered bytes and state and reads from r.
func (d *Decoder) Reset(r io.Reader) {
	d.r, d.start, d.end, d.err, d.dropping, d.inSkip, d.lineScan = r, 0, 0, nil, false, false, 0
	d.scanning, d.scanPos, d.scanLeft = false, 0, 0
	d.skipping, d.skipped = false, 0
}

// Buffered returns the number of bytes read but not yet decoded.
func (d *Decoder) Buffered() int { return d.end - d.start }

// InRecord reports whether the decoder is inside a record it has not
// finished: it holds bytes of it, or it is skipping an oversized record it
// has not reported yet. When the stream ends now (Next returned an error of
// the reader: io.ErrUnexpectedEOF for the end of the stream, or any other,
// such as a read deadline), that record is lost, cut short, and the caller
// should count it as one bad record. It is true whenever Next returned
// io.ErrUnexpectedEOF. An over-long line that the decoder is dropping does
// not count: it was reported (*BadRecordError) when the drop began.
func (d *Decoder) InRecord() bool {
	return d.end > d.start && !d.dropping || d.inSkip || d.skipping
}

// Pending returns a copy of the bytes read but not yet decoded, for a
// decoder of the same kind that carries on with the stream (nil if there
// are none). ok is false when they do not begin at a record's start: the
// decoder is dropping an over-long line or skipping an oversized record,
// and their bytes mean nothing to a decoder that starts afresh.
func (d *Decoder) Pending() (b []byte, ok bool) {
	if d.dropping || d.skipping || d.inSkip {
		return nil, false
	}
	if d.end == d.start {
		return nil, true
	}
	return append([]byte(nil), d.buf[d.start:d.end]...), true
}

// fill reads more bytes, compacting first. It returns the read error.
func (d *Decoder) fill() error {
	if d.err != nil {
		return d.err
	}
	if d.start > 0 {
		copy(d.buf, d.buf[d.start:d.end])
		d.end -= d.start
		d.start = 0
	}
	if d.end == len(d.buf) {
		return nil
	}
	n, err := d.r.Read(d.buf[d.end:])
	d.end += n
	if err != nil {
		d.err = err
		if n > 0 {
			return nil
		}
		return err
	}
	return nil
}

// Next returns the next record. A *BadRecordError means a record was
// dropped (call Next again); ErrBroken means give up on this stream; other
// errors come from the reader: io.EOF at the end, or io.ErrUnexpectedEOF
// if the stream ends inside a record. After any of them, InRecord says
// whether the end cut a record short.
func (d *Decoder) Next() (Record, error) {
	switch d.kind {
	case Len32:
		return d.nextLen32()
	case Msgp:
		return d.nextMsgp()
	}
	return d.nextLine()
}

func (d *Decoder) nextLine() (Record, error) {
	for {
		// The bytes from start to start+lineScan hold no newline: a line
		// that arrives in many reads is searched once, not from its start
		// after every read (the square of its length).
		if i := indexByte(d.buf[d.start+d.lineScan:d.end], '\n'); i >= 0 {
			i += d.lineScan
			d.lineScan = 0
			line := d.buf[d.start : d.start+i]
			d.start += i + 1
			if d.dropping {
				// the over-long line was reported when dropping began
				d.dropping = false
				continue
			}
			if len(line) == 0 {
				continue
			}
			if len(line) > d.max {
				d.errLong.Size = len(line)
				return Record{}, &d.errLong
			}
			return Record{Data: line}, nil
		}
		d.lineScan = d.end - d.start
		if d.dropping {
			d.start, d.lineScan = d.end, 0
		} else if d.end-d.start > d.max {
			// An over-long line without its newline yet: drop it through
			// the next newline.
			d.errLong.Size = d.end - d.start
			d.dropping = true
			d.start, d.lineScan = d.end, 0
			return Record{}, &d.errLong
		}
		if err := d.fill(); err != nil {
			if err == io.EOF && d.end > d.start && !d.dropping {
				// A final line without its newline: the writer may have
				// died in the middle of it, so it is not a record. The
				// bytes stay buffered for the caller to count.
				return Record{}, io.ErrUnexpectedEOF
			}
			return Record{}, err
		}
	}
}

func (d *Decoder) need(n int) error {
	for d.end-d.start < n {
		if err := d.fill(); err != nil {
			if err == io.EOF && d.end > d.start {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// skip discards n bytes (buffered first, then from the reader).
func (d *Decoder) skip(n int) error {
	for n > 0 {
		if d.start == d.end {
			if err := d.fill(); err != nil {
				if err == io.EOF {
					return io.ErrUnexpectedEOF
				}
				return err
			}
		}
		k := d.end - d.start
		if k > n {
			k = n
		}
		d.start += k
		n -= k
	}
	return nil
}

func (d *Decoder) nextLen32() (Record, error) {
	if err := d.need(4); err != nil {
		return Record{}, err
	}
	n := int(binary.LittleEndian.Uint32(d.buf[d.start:]))
	if uint32(n) != binary.LittleEndian.Uint32(d.buf[d.start:]) || n < 0 {
		return Record{}, ErrBroken
	}
	if n > d.max {
		if n > d.maxSkip {
			return Record{}, ErrBroken
		}
		d.start += 4
		d.inSkip = true
		if err := d.skip(n); err != nil {
			return Record{}, err
		}
		d.inSkip = false
		d.errOversize.Size = n
		return Record{}, &d.errOversize
	}
	if err := d.need(4 + n); err != nil {
		return Record{}, err
	}
	rec := Record{Data: d.buf[d.start+4 : d.start+4+n]}
	d.start += 4 + n
	return rec, nil
}

// nextMsgp finds where the next object ends by scanning its headers, then
// decodes it. The scan is resumable (d.scanPos, d.scanLeft survive a fill),
// so every byte is scanned once however the stream is cut into reads and
// however deeply the object nests: the cost is linear in the input.
func (d *Decoder) nextMsgp() (Record, error) {
	for {
		if !d.scanning {
			if d.start == d.end {
				if err := d.fill(); err != nil {
					return Record{}, err
				}
				continue
			}
			d.scanning, d.scanPos, d.scanLeft = true, 0, 1
		}
		for d.scanLeft > 0 {
			b := d.buf[d.start+d.scanPos : d.end]
			size, children, err := msgpHeader(b)
			if err == errShortHeader || (err == nil && size > uint64(len(b))) {
				break // need more bytes
			}
			if err != nil {
				// A byte that starts no object: the object around it is
				// malformed. Drop it through that byte (one bad record) and
				// resync after it.
				d.start += d.scanPos + 1
				d.scanning = false
				return Record{}, &d.errMalformed
			}
			d.scanPos += int(size)
			d.scanLeft += children - 1
		}
		if d.scanLeft == 0 {
			obj := d.buf[d.start : d.start+d.scanPos]
			d.start += d.scanPos
			d.scanning = false
			if d.skipping {
				n := d.skipped + uint64(len(obj))
				d.skipping, d.skipped = false, 0
				if n > uint64(d.maxSkip) {
					return Record{}, ErrBroken // as any record larger than max_skip
				}
				d.errBig.Size = int(n)
				return Record{}, &d.errBig
			}
			return d.parseMsgp(obj)
		}
		if d.end-d.start == len(d.buf) {
			// Too big to buffer. A bin/str record: skip it by its length.
			if !d.skipping && d.scanPos == 0 {
				d.scanning = false
				if n, hdr, ok := binStrLen(d.buf[d.start:d.end]); ok && n <= d.maxSkip {
					d.start += hdr
					d.inSkip = true
					if err := d.skip(n); err != nil {
						return Record{}, err
					}
					d.inSkip = false
					d.errOversize.Size = n
					return Record{}, &d.errOversize
				}
				// An ext (ext8/16/32), no record either: skipped whole
				// by its size, as one that fits the buffer is.
				if c := d.buf[d.start]; c >= 0xc7 && c <= 0xc9 {
					if size, _, err := msgpHeader(d.buf[d.start:d.end]); err == nil && size <= uint64(d.maxSkip) {
						d.inSkip = true
						if err := d.skip(int(size)); err != nil {
							return Record{}, err
						}
						d.inSkip = false
						d.errExt.Size = int(size)
						return Record{}, &d.errExt
					}
				}
				return Record{}, ErrBroken
			}
			// A map or array (a record with keys beyond data, or
			// garbage): drop what the scan has passed and scan on, up to
			// maxSkip bytes in all.
			d.skipping = true
			if d.scanPos > 0 {
				d.skipped += uint64(d.scanPos)
				d.start += d.scanPos
				d.scanPos = 0
			} else {
				// The element at start alone does not fit: a bin, str
				// or ext (a container's header always fits). Skip it.
				size, children, err := msgpHeader(d.buf[d.start:d.end])
				if err != nil || children != 0 || size > uint64(d.maxSkip) {
					d.scanning, d.skipping, d.skipped = false, false, 0
					return Record{}, ErrBroken
				}
				d.skipped += size
				if d.skipped <= uint64(d.maxSkip) {
					if err := d.skip(int(size)); err != nil {
						// The stream ended inside the object: it
						// is cut short (InRecord) until a Reset.
						d.scanning, d.skipping, d.skipped = false, false, 0
						d.inSkip = true
						return Record{}, err
					}
				}
				d.scanLeft--
			}
			if d.skipped > uint64(d.maxSkip) {
				d.scanning, d.skipping, d.skipped = false, false, 0
				return Record{}, ErrBroken
			}
			continue
		}
		if err := d.fill(); err != nil {
			if err == io.EOF {
				return Record{}, io.ErrUnexpectedEOF
			}
			return Record{}, err
		}
	}
}

// errShortHeader: b ends inside an object's header.
var errShortHeader = errors.New("framing: short msgp header")

// errBadPrefix: b starts with 0xc1, which starts no MessagePack object.
var errBadPrefix = errors.New("framing: invalid msgp prefix")

// msgpHeader returns the size of the object at the start of b up to its
// first child (for bin, str, ext and scalars: the whole object) and the
// number of child objects that follow it (array elements, map keys and
// values).
func msgpHeader(b []byte) (size, children uint64, err error) {
	if len(b) == 0 {
		return 0, 0, errShortHeader
	}
	c := b[0]
	switch {
	case c <= 0x7f, c >= 0xe0: // positive and negative fixint
		return 1, 0, nil
	case c <= 0x8f: // fixmap
		return 1, 2 * uint64(c&0x0f), nil
	case c <= 0x9f: // fixarray
		return 1, uint64(c & 0x0f), nil
	case c <= 0xbf: // fixstr
		return 1 + uint64(c&0x1f), 0, nil
	}
	// length returns the big-endian length of n bytes after the lead byte.
	length := func(n int) (uint64, bool) {
		if len(b) < 1+n {
			return 0, false
		}
		var v uint64
		for _, x := range b[1 : 1+n] {
			v = v<<8 | uint64(x)
		}
		return v, true
	}
	var n int     // bytes of the length field
	var fixed int // header bytes beyond the lead byte and length field (ext type)
	switch c {
	case 0xc0, 0xc2, 0xc3: // nil, false, true
		return 1, 0, nil
	case 0xc1:
		return 0, 0, errBadPrefix
	case 0xcc, 0xd0:
		return 2, 0, nil
	case 0xcd, 0xd1:
		return 3, 0, nil
	case 0xca, 0xce, 0xd2:
		return 5, 0, nil
	case 0xcb, 0xcf, 0xd3:
		return 9, 0, nil
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16
		return 2 + 1<<(c-0xd4), 0, nil
	case 0xc4, 0xd9: // bin8, str8
		n = 1
	case 0xc5, 0xda:
		n = 2
	case 0xc6, 0xdb:
		n = 4
	case 0xc7: // ext8
		n, fixed = 1, 1
	case 0xc8:
		n, fixed = 2, 1
	case 0xc9:
		n, fixed = 4, 1
	case 0xdc, 0xdd, 0xde, 0xdf: // array16/32, map16/32
		n = 2
		if c == 0xdd || c == 0xdf {
			n = 4
		}
		v, ok := length(n)
		if !ok {
			return 0, 0, errShortHeader
		}
		if c >= 0xde {
			v *= 2
		}
		return 1 + uint64(n), v, nil
	}
	v, ok := length(n)
	if !ok {
		return 0, 0, errShortHeader
	}
	return 1 + uint64(n+fixed) + v, 0, nil
}

// parseMsgp decodes one record from b, which holds exactly one complete
// object; a *BadRecordError means the object is not a valid record (any
// msgp error on a complete object, e.g. a key that is not a string or
// nesting beyond msgp's recursion limit, makes it malformed).
func (d *Decoder) parseMsgp(b []byte) (Record, error) {
	switch msgp.NextType(b) {
	case msgp.BinType, msgp.StrType:
		data, _, err := readBinOrStr(b)
		if err != nil {
			return Record{}, &d.errMalformed
		}
		if len(data) > d.max {
			d.errOversize.Size = len(data)
			return Record{}, &d.errOversize
		}
		return Record{Data: data}, nil
	case msgp.MapType:
		n, rest, err := msgp.ReadMapHeaderBytes(b)
		if err != nil {
			return Record{}, &d.errMalformed
		}
		var rec Record
		have := false
		for i := uint32(0); i < n; i++ {
			var key []byte
			key, rest, err = msgp.ReadMapKeyZC(rest)
			if err != nil {
				return Record{}, &d.errMalformed
			}
			switch string(key) {
			case "type":
				rec.Type, rest, err = msgp.ReadUint32Bytes(rest)
				rec.HasMeta = true
			case "flags":
				rec.Flags, rest, err = msgp.ReadUint32Bytes(rest)
				rec.HasMeta = true
			case "data":
				rec.Data, rest, err = readBinOrStr(rest)
				have = true
			default:
				rest, err = msgp.Skip(rest)
			}
			if err != nil {
				return Record{}, &d.errMalformed
			}
		}
		if !have {
			return Record{}, &d.errNoData
		}
		if len(rec.Data) > d.max {
			d.errOversize.Size = len(rec.Data)
			return Record{}, &d.errOversize
		}
		return rec, nil
	case msgp.InvalidType:
		return Record{}, &d.errMalformed
	}
	return Record{}, &d.errType
}

func readBinOrStr(b []byte) ([]byte, []byte, error) {
	if msgp.NextType(b) == msgp.StrType {
		return msgp.ReadStringZC(b)
	}
	return msgp.ReadBytesZC(b)
}

// binStrLen returns the declared length and header size of a bin or str
// object at the start of b.
func binStrLen(b []byte) (n, hdr int, ok bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	switch c := b[0]; {
	case c >= 0xa0 && c <= 0xbf:
		return int(c & 0x1f), 1, true
	case (c == 0xc4 || c == 0xd9) && len(b) >= 2:
		return int(b[1]), 2, true
	case (c == 0xc5 || c == 0xda) && len(b) >= 3:
		return int(binary.BigEndian.Uint16(b[1:])), 3, true
	case (c == 0xc6 || c == 0xdb) && len(b) >= 5:
		v := binary.BigEndian.Uint32(b[1:])
		if uint64(v) > uint64(^uint(0)>>1) {
			return 0, 0, false
		}
		return int(v), 5, true
	}
	return 0, 0, false
}
