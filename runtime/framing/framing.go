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
//     skipped whole. An object too large to buffer is skipped by its declared
//     length if it is a bin or str of at most MaxSkip bytes, else ErrBroken.
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
	// preallocated errors (no allocation per bad record)
	errLong, errOversize, errType, errNoData, errMalformed BadRecordError
}

// NewDecoder returns a decoder for kind reading r.
func NewDecoder(r io.Reader, kind Kind, opts Options) *Decoder {
	if opts.MaxRecord <= 0 {
		opts.MaxRecord = 4096
	}
	if opts.MaxSkip < opts.MaxRecord {
		opts.MaxSkip = opts.MaxRecord
	}
	n := opts.MaxRecord + 64 // room for a header/map around the largest payload
	if n < 64<<10 {
		n = 64 << 10
	}
	d := &Decoder{r: r, kind: kind, max: opts.MaxRecord, maxSkip: opts.MaxSkip, buf: make([]byte, n)}
	d.errLong = BadRecordError{Reason: "line longer than the slot payload"}
	d.errOversize = BadRecordError{Reason: "record longer than the slot payload"}
	d.errType = BadRecordError{Reason: "msgp object is not bin, str or map"}
	d.errNoData = BadRecordError{Reason: "msgp map without data"}
	d.errMalformed = BadRecordError{Reason: "malformed msgp object"}
	return d
}

// Reset discards buffered bytes and state and reads from r.
func (d *Decoder) Reset(r io.Reader) {
	d.r, d.start, d.end, d.err, d.dropping = r, 0, 0, nil, false
}

// Buffered returns the number of bytes read but not yet decoded.
func (d *Decoder) Buffered() int { return d.end - d.start }

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
// errors come from the reader (io.EOF at the end).
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
		if i := bytes.IndexByte(d.buf[d.start:d.end], '\n'); i >= 0 {
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
		if d.dropping {
			d.start = d.end
		} else if d.end-d.start > d.max {
			// An over-long line without its newline yet: drop it through
			// the next newline.
			d.errLong.Size = d.end - d.start
			d.dropping = true
			d.start = d.end
			return Record{}, &d.errLong
		}
		if err := d.fill(); err != nil {
			if err == io.EOF && d.end > d.start && !d.dropping {
				// A final line without a newline.
				line := d.buf[d.start:d.end]
				d.start = d.end
				return Record{Data: line}, nil
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
		if err := d.skip(n); err != nil {
			return Record{}, err
		}
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

func (d *Decoder) nextMsgp() (Record, error) {
	for {
		if d.start == d.end {
			if err := d.fill(); err != nil {
				return Record{}, err
			}
			continue
		}
		b := d.buf[d.start:d.end]
		rec, used, err := d.parseMsgp(b)
		if err == nil {
			d.start += used
			return rec, nil
		}
		if err == msgp.ErrShortBytes {
			if d.start == 0 && d.end == len(d.buf) {
				// Too big to buffer: skip a bin/str by its length, else broken.
				if n, hdr, ok := binStrLen(b); ok && n <= d.maxSkip {
					d.start += hdr
					if err := d.skip(n); err != nil {
						return Record{}, err
					}
					d.errOversize.Size = n
					return Record{}, &d.errOversize
				}
				return Record{}, ErrBroken
			}
			if err := d.fill(); err != nil {
				if err == io.EOF {
					return Record{}, io.ErrUnexpectedEOF
				}
				return Record{}, err
			}
			continue
		}
		// A complete object that is not a valid record: skip it whole.
		rest, serr := msgp.Skip(b)
		if serr == msgp.ErrShortBytes {
			if d.start == 0 && d.end == len(d.buf) {
				return Record{}, ErrBroken
			}
			if err := d.fill(); err != nil {
				if err == io.EOF {
					return Record{}, io.ErrUnexpectedEOF
				}
				return Record{}, err
			}
			continue
		}
		if serr != nil {
			// Unparseable byte: drop it and resync at the next one.
			d.start++
		} else {
			d.start += len(b) - len(rest)
		}
		return Record{}, err
	}
}

// parseMsgp decodes one record from b; msgp.ErrShortBytes means more bytes
// are needed; a *BadRecordError means the object is complete but invalid.
func (d *Decoder) parseMsgp(b []byte) (Record, int, error) {
	switch msgp.NextType(b) {
	case msgp.BinType, msgp.StrType:
		data, rest, err := readBinOrStr(b)
		if err != nil {
			return Record{}, 0, d.classify(err)
		}
		if len(data) > d.max {
			d.errOversize.Size = len(data)
			return Record{}, 0, &d.errOversize
		}
		return Record{Data: data}, len(b) - len(rest), nil
	case msgp.MapType:
		n, rest, err := msgp.ReadMapHeaderBytes(b)
		if err != nil {
			return Record{}, 0, d.classify(err)
		}
		var rec Record
		have := false
		for i := uint32(0); i < n; i++ {
			var key []byte
			key, rest, err = msgp.ReadMapKeyZC(rest)
			if err != nil {
				return Record{}, 0, d.classify(err)
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
				return Record{}, 0, d.classify(err)
			}
		}
		if !have {
			return Record{}, 0, &d.errNoData
		}
		if len(rec.Data) > d.max {
			d.errOversize.Size = len(rec.Data)
			return Record{}, 0, &d.errOversize
		}
		return rec, len(b) - len(rest), nil
	case msgp.InvalidType:
		return Record{}, 0, &d.errMalformed
	}
	return Record{}, 0, &d.errType
}

func (d *Decoder) classify(err error) error {
	if err == msgp.ErrShortBytes {
		return err
	}
	return &d.errMalformed
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
