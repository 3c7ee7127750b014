package shm

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/edgeipc/edgeipc/internal/units"
)

// Policy is what a full ring does.
type Policy uint32

const (
	// Overwrite: the writer never blocks; readers that fall behind are told
	// exactly how many frames they lost and resume at the oldest valid one.
	Overwrite Policy = policyOverwrite
	// Block: the writer waits for the slowest live reader.
	Block Policy = policyBlock
)

// String returns "overwrite" or "block", the names ParsePolicy accepts.
func (p Policy) String() string {
	switch p {
	case Overwrite:
		return "overwrite"
	case Block:
		return "block"
	}
	return fmt.Sprintf("policy(%d)", uint32(p))
}

// ParsePolicy parses "overwrite" or "block".
func ParsePolicy(s string) (Policy, error) {
	switch strings.ToLower(s) {
	case "overwrite", "":
		return Overwrite, nil
	case "block":
		return Block, nil
	}
	return 0, fmt.Errorf("%w: policy %q: use overwrite or block", ErrInvalid, s)
}

// Defaults for Config.
const (
	DefaultSlots       = 256
	DefaultSlotPayload = 4096 - slotHeaderBytes
)

// Config describes a ring to create.
type Config struct {
	// Slots is the number of slots, a power of two from 2 to 2^24
	// (default 256). A reader that falls behind finds at most the last
	// Slots-1 frames: a writer opens the slot of its next frame as soon as
	// it publishes one (see docs/abi.md, "Opening the next slot early").
	Slots int
	// SlotPayload is the largest payload a frame may carry, in bytes
	// (default 4032; rounded up to a multiple of 64).
	SlotPayload int
	// Policy is what a full ring does (default Overwrite).
	Policy Policy
	// BaseSeq is the sequence number of the first frame (default 0). Tests
	// set it near 2^32 to exercise wraparound.
	BaseSeq uint32
	// Segment controls directory, mode and group of the segment file.
	Segment SegmentOptions
}

// Validate reports whether Create would accept c's slots, slot payload,
// policy and total size (after the defaults), without creating anything.
func (c Config) Validate() error { return c.normalize() }

// Size returns the size in bytes of the segment Create would make for c
// (after the defaults), or why Create would refuse c.
func (c Config) Size() (int64, error) {
	if err := c.normalize(); err != nil {
		return 0, err
	}
	return int64(ringSize(SlotSizeFor(c.SlotPayload), uint32(c.Slots))), nil
}

func (c *Config) normalize() error {
	if c.Slots == 0 {
		c.Slots = DefaultSlots
	}
	if c.SlotPayload == 0 {
		c.SlotPayload = DefaultSlotPayload
	}
	if c.Slots < 2 || c.Slots > MaxSlots || c.Slots&(c.Slots-1) != 0 {
		return fmt.Errorf("%w: slots %d: must be a power of two from 2 to %d", ErrInvalid, c.Slots, MaxSlots)
	}
	if c.SlotPayload < 1 || c.SlotPayload > MaxSlotPayload {
		return fmt.Errorf("%w: slot payload %d: must be 1 to %d bytes", ErrInvalid, c.SlotPayload, MaxSlotPayload)
	}
	if c.Policy != Overwrite && c.Policy != Block {
		return fmt.Errorf("%w: %v", ErrInvalid, c.Policy)
	}
	if sz := ringSize(SlotSizeFor(c.SlotPayload), uint32(c.Slots)); sz > 1<<31-1 && unsafe.Sizeof(uintptr(0)) == 4 {
		return fmt.Errorf("%w: ring of %s does not fit a 32-bit address space", ErrInvalid, units.Bytes(float64(sz)))
	} else if sz > 1<<40 {
		return fmt.Errorf("%w: ring of %s is too large", ErrInvalid, units.Bytes(float64(sz)))
	}
	return nil
}

// Ring is a mapped ring segment. Open writers and readers from it. A Ring
// is safe for concurrent use; Close closes every Writer and Reader opened
// from it.
type Ring struct {
	seg  *Segment
	mem  unsafe.Pointer
	hdr  *ringHeader
	g    geometry
	name string

	mu      sync.Mutex
	closed  bool
	writer  *Writer
	readers map[*Reader]struct{}
}

// Create creates and initialises a new named ring. It fails if the name is
// taken (see OpenOrCreate for restart-safe use). Where the filesystem
// allows (tmpfs, the usual disk filesystems), the ring gets its name only
// once it is initialised: an Open meanwhile finds nothing rather than a
// ring still being made, and a creator that dies half-way leaves nothing.
func Create(name string, cfg Config) (*Ring, error) {
	if err := cfg.normalize(); err != nil {
		return nil, &OpError{"create", name, err}
	}
	slotSize := SlotSizeFor(cfg.SlotPayload)
	size := ringSize(slotSize, uint32(cfg.Slots))
	// The ring is initialised before it gets its name (where the
	// filesystem allows): an Open never finds it half-made.
	seg, err := createSegment(name, int(size), &cfg.Segment, func(mem []byte) {
		if testHookRingInit != nil {
			testHookRingInit(name)
		}
		initRing(mem, slotSize, uint32(cfg.Slots), cfg.Policy, cfg.BaseSeq)
	})
	if err != nil {
		return nil, err
	}
	r, err := newRing(seg)
	if err != nil {
		seg.Remove()
		seg.Close()
		return nil, err
	}
	return r, nil
}

// CreateMemfd creates an anonymous ring in a sealed memfd. Share it with
// another process through Ring.File and open it there with OpenFile.
func CreateMemfd(name string, cfg Config) (*Ring, error) {
	if err := cfg.normalize(); err != nil {
		return nil, &OpError{"create", name, err}
	}
	slotSize := SlotSizeFor(cfg.SlotPayload)
	seg, err := NewMemfd(name, int(ringSize(slotSize, uint32(cfg.Slots))))
	if err != nil {
		return nil, err
	}
	initRing(seg.mem, slotSize, uint32(cfg.Slots), cfg.Policy, cfg.BaseSeq)
	r, err := newRing(seg)
	if err != nil {
		seg.Close()
		return nil, err
	}
	return r, nil
}

func initRing(mem []byte, slotSize, slots uint32, p Policy, base uint32) {
	h := (*ringHeader)(unsafe.Pointer(&mem[0]))
	hs := ringHeaderSize()
	total := ringSize(slotSize, slots)
	h.Version = ABIVersion
	h.HeaderSize = hs
	h.SlotSize = slotSize
	h.SlotCount = slots
	h.MaxPayload = slotSize - slotHeaderBytes
	h.Policy = uint32(p)
	h.MaxReaders = MaxReaders
	h.ReadersOff = headerBytes
	h.ReaderStride = readerStride
	h.BaseSeq = base
	h.TotalLo = uint32(total)
	h.TotalHi = uint32(total >> 32)
	h.CreatorPID = uint32(os.Getpid())
	for i := uint32(0); i < slots; i++ {
		sh := (*slotHeader)(unsafe.Pointer(&mem[uint64(hs)+uint64(i)*uint64(slotSize)]))
		sh.Stamp = stampWriting
	}
	atomic.StoreUint32(&h.Head, base)
	atomic.StoreUint32(&h.Magic, ringMagic)
	atomic.StoreUint32(&h.Ready, 1)
}

// Open maps an existing named ring after validating its header. A ring
// another process is still creating is waited for, up to a second. Its
// errors match os.ErrNotExist (no such ring yet: OpenContext waits for
// its creator), ErrInvalid (a bad name, or a segment that is not a ring),
// ErrForeignOwner (see SegmentOptions.Owners), or ErrCorrupt and
// ErrVersion (a header this build cannot use).
func Open(name string, opts *SegmentOptions) (*Ring, error) {
	seg, err := openSegment(name, opts, int64(ringHeaderSize()))
	if err != nil {
		return nil, err
	}
	r, err := newRing(seg)
	if err != nil {
		seg.Close()
		return nil, err
	}
	return r, nil
}

// OpenFile maps a ring received as a memfd descriptor (see CreateMemfd). It
// takes ownership of f.
func OpenFile(f *os.File, name string) (*Ring, error) {
	seg, err := OpenFd(f, name)
	if err != nil {
		return nil, err
	}
	r, err := newRing(seg)
	if err != nil {
		seg.Close()
		return nil, err
	}
	return r, nil
}

// OpenOrCreate opens the named ring if it exists with the same geometry and
// policy as cfg, and creates it otherwise. created reports which. An
// existing ring with another geometry is an error wrapping os.ErrExist:
// remove it first if it is stale. Without room to create it, it waits up
// to a second for a ring another process may be creating under the name
// (and holding the space for) before it reports ErrNoSpace.
func OpenOrCreate(name string, cfg Config) (r *Ring, created bool, err error) {
	if err := cfg.normalize(); err != nil {
		return nil, false, &OpError{"create", name, err}
	}
	for attempt := 0; attempt < 3; attempt++ {
		r, err = Open(name, &cfg.Segment)
		if err == nil {
			g := r.g
			if g.slotCount != uint32(cfg.Slots) || g.maxPayload != SlotSizeFor(cfg.SlotPayload)-slotHeaderBytes || g.policy != uint32(cfg.Policy) {
				r.Close()
				return nil, false, &OpError{"open", name, fmt.Errorf("existing ring has %d slots of %d bytes, policy %v; configured %d slots of %d bytes, policy %v; remove it with '%s': %w",
					g.slotCount, g.maxPayload, Policy(g.policy), cfg.Slots, SlotSizeFor(cfg.SlotPayload)-slotHeaderBytes, cfg.Policy, RemoveCommand(SegmentPath(name, &cfg.Segment)), os.ErrExist)}
			}
			return r, false, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, false, err
		}
		r, err = Create(name, cfg)
		if err == nil {
			return r, true, nil
		}
		if errors.Is(err, ErrNoSpace) && appears(SegmentPath(name, &cfg.Segment)) {
			continue // another process was creating it, and it holds the space
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, false, err
		}
		// Lost a creation race: open what the other process made.
	}
	return nil, false, err
}

// appears reports whether a file shows up at path within readyPolls times
// 10 ms. A ring another process is creating gets its name only once it is
// initialised (see createSegment), and until then it holds the space: a
// second creator that found no name and no room waits this long for it
// before it reports the lack of space.
func appears(path string) bool {
	for i := 0; i < int(readyPolls.Load()); i++ {
		if _, err := os.Lstat(path); err == nil {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// Remove unlinks a named ring's segment.
func Remove(name string, opts *SegmentOptions) error { return RemoveSegment(name, opts) }

func newRing(seg *Segment) (*Ring, error) {
	polls := int(readyPolls.Load())
	if seg.settled {
		polls = 0 // nobody is creating it: an incomplete header stays so
	}
	g, err := validateHeader(seg.mem, polls)
	if err != nil {
		return nil, &OpError{"open", seg.name, err}
	}
	return &Ring{
		seg: seg, mem: unsafe.Pointer(&seg.mem[0]), hdr: (*ringHeader)(unsafe.Pointer(&seg.mem[0])),
		g: g, name: seg.name, readers: map[*Reader]struct{}{},
	}, nil
}

// readyPolls is how many times, 10 ms apart, Open looks for the ready
// flag of a ring still being created (a second; a fuzz test shortens it).
var readyPolls atomic.Int32

func init() { readyPolls.Store(100) }

// validateHeader checks every header field against the v1 layout and the
// mapping's length. It waits up to polls times 10 ms for a creator that
// has not finished initialising.
func validateHeader(mem []byte, polls int) (geometry, error) {
	var g geometry
	if len(mem) >= 4 && atomic.LoadUint32((*uint32)(unsafe.Pointer(&mem[0]))) == semMagic {
		return g, fmt.Errorf("%w: segment is a semaphore, not a ring", ErrInvalid)
	}
	if len(mem) < int(ringHeaderSize()) {
		return g, corrupt("segment size", uint64(len(mem)), fmt.Sprintf(">= %d bytes (not a ring)", ringHeaderSize()))
	}
	h := (*ringHeader)(unsafe.Pointer(&mem[0]))
	for i := 0; ; i++ {
		m := atomic.LoadUint32(&h.Magic)
		if m == ringMagic && atomic.LoadUint32(&h.Ready) == 1 {
			break
		}
		if m == semMagic {
			return g, fmt.Errorf("%w: segment is a semaphore, not a ring", ErrInvalid)
		}
		if m != 0 && m != ringMagic {
			return g, fmt.Errorf("%w: magic %#08x is not an edgeipc ring (want %#08x)", ErrCorrupt, m, uint32(ringMagic))
		}
		if i >= polls {
			return g, fmt.Errorf("%w: ring header was never completed (creator pid %d died while creating it?); remove the segment", ErrCorrupt, atomic.LoadUint32(&h.CreatorPID))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if v := h.Version; v != ABIVersion {
		return g, fmt.Errorf("%w: ring ABI version %d, this build speaks version %d; use matching edgeipc versions", ErrVersion, v, ABIVersion)
	}
	if h.ReadersOff != headerBytes || h.ReaderStride != readerStride || h.MaxReaders != MaxReaders {
		return g, fmt.Errorf("%w: reader table at %d, stride %d, %d entries; v1 has %d, %d, %d (the segment was made by an incompatible build: recreate it with this one)",
			ErrVersion, h.ReadersOff, h.ReaderStride, h.MaxReaders, headerBytes, readerStride, MaxReaders)
	}
	g.headerSize = h.HeaderSize
	g.slotSize = h.SlotSize
	g.slotCount = h.SlotCount
	g.maxPayload = h.MaxPayload
	g.policy = h.Policy
	g.total = uint64(h.TotalLo) | uint64(h.TotalHi)<<32
	switch {
	case g.headerSize != ringHeaderSize():
		return g, corrupt("header_size", uint64(g.headerSize), fmt.Sprint(ringHeaderSize()))
	case g.slotCount < 2 || g.slotCount > MaxSlots || g.slotCount&(g.slotCount-1) != 0:
		return g, corrupt("slot_count", uint64(g.slotCount), "a power of two from 2 to 2^24")
	case g.slotSize < 2*slotHeaderBytes || g.slotSize%slotAlign != 0 || g.slotSize > MaxSlotPayload+slotHeaderBytes:
		return g, corrupt("slot_size", uint64(g.slotSize), "a multiple of 64 from 128 to 64 MiB + 64")
	case g.maxPayload != g.slotSize-slotHeaderBytes:
		return g, corrupt("max_payload", uint64(g.maxPayload), fmt.Sprint(g.slotSize-slotHeaderBytes))
	case g.policy != policyOverwrite && g.policy != policyBlock:
		return g, corrupt("policy", uint64(g.policy), "0 (overwrite) or 1 (block)")
	case g.total != ringSize(g.slotSize, g.slotCount):
		return g, corrupt("total_size", g.total, fmt.Sprint(ringSize(g.slotSize, g.slotCount)))
	case g.total > uint64(len(mem)):
		return g, corrupt("total_size", g.total, fmt.Sprintf("<= mapped size %d", len(mem)))
	}
	g.mask = g.slotCount - 1
	return g, nil
}

func (r *Ring) slot(seq uint32) (*slotHeader, unsafe.Pointer) {
	off := uintptr(r.g.headerSize) + uintptr(seq&r.g.mask)*uintptr(r.g.slotSize)
	p := unsafe.Add(r.mem, off)
	return (*slotHeader)(p), unsafe.Add(p, slotHeaderBytes)
}

func (r *Ring) reader(i int) *readerEntry {
	return (*readerEntry)(unsafe.Add(r.mem, headerBytes+i*readerStride))
}

// Name returns the ring's name.
func (r *Ring) Name() string { return r.name }

// Slots returns the number of slots.
func (r *Ring) Slots() int { return int(r.g.slotCount) }

// SlotPayload returns the largest payload a frame can carry.
func (r *Ring) SlotPayload() int { return int(r.g.maxPayload) }

// Policy returns the ring's full-ring policy.
func (r *Ring) Policy() Policy { return Policy(r.g.policy) }

// Size returns the segment's size in bytes.
func (r *Ring) Size() int64 { return int64(r.g.total) }

// Segment returns the underlying segment.
func (r *Ring) Segment() *Segment { return r.seg }

// File returns a duplicate of the ring's descriptor to hand to another
// process (useful for memfd rings).
func (r *Ring) File() (*os.File, error) { return r.seg.File() }

// Head returns the sequence number the next frame will get.
func (r *Ring) Head() uint32 { return atomic.LoadUint32(&r.hdr.Head) }

// Close closes every Writer and Reader opened from r, then unmaps the ring.
// The segment file stays; see Remove.
func (r *Ring) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	r.closed = true
	w := r.writer
	rs := make([]*Reader, 0, len(r.readers))
	for rd := range r.readers {
		rs = append(rs, rd)
	}
	r.mu.Unlock()
	if w != nil {
		w.close(false)
	}
	for _, rd := range rs {
		rd.close(false)
	}
	// A goroutine may still be inside a Reader or Writer method of this
	// ring (Close is how a blocked call is aborted, and a non-blocking one
	// can race it): leave zeros where the ring was rather than a hole it
	// could fault on, and unmap them once the Ring is garbage, when no such
	// goroutine can remain.
	return retireSegment(r, r.seg)
}

// retireSegment closes seg, which goroutines using owner may still be
// touching: the mapping becomes private zero pages (Segment.retire), which
// are unmapped once owner is garbage, when no such goroutine can remain.
func retireSegment[T any](owner *T, seg *Segment) error {
	mem, err := seg.retire()
	if mem != nil {
		runtime.AddCleanup(owner, unmapRetired, mem)
	}
	return err
}

// Remove unlinks the ring's segment file; open mappings stay valid.
func (r *Ring) Remove() error { return r.seg.Remove() }

// ReaderInfo describes one reader table entry.
type ReaderInfo struct {
	Index  int    `json:"index"`
	PID    int    `json:"pid"`
	Alive  bool   `json:"alive"`
	Cursor uint32 `json:"cursor"`
	Lag    uint32 `json:"lag"`
	Lost   uint32 `json:"lost"`
	Frames uint32 `json:"frames"`
	Event  bool   `json:"eventfd"`
	// Joining: the entry is claimed and its holder is still filling it
	// in (its cursor is not set yet). It holds the entry, so it counts
	// for a live ring, but it is not reading yet.
	Joining bool `json:"joining,omitempty"`
}

// Info is a snapshot of a ring's header and reader table.
type Info struct {
	Name        string       `json:"name"`
	ABIVersion  uint32       `json:"abi_version"`
	Slots       int          `json:"slots"`
	SlotSize    int          `json:"slot_size"`
	SlotPayload int          `json:"slot_payload"`
	Policy      string       `json:"policy"`
	Size        int64        `json:"size"`
	BaseSeq     uint32       `json:"base_seq"`
	Head        uint32       `json:"head"`
	Frames      uint32       `json:"frames"` // head - base (wraps)
	WriterPID   int          `json:"writer_pid"`
	WriterAlive bool         `json:"writer_alive"`
	WriterEpoch uint32       `json:"writer_epoch"`
	Sleepers    uint32       `json:"sleepers"`    // readers counted in FUTEX_WAIT on head (as found: garbage is shown, not fixed)
	EvSleepers  uint32       `json:"ev_sleepers"` // readers counted waiting on an eventfd (likewise)
	Readers     []ReaderInfo `json:"readers"`
}

// Inspect returns a snapshot of the ring's state. Values written by other
// processes are reported as found; Inspect never fails on them.
func (r *Ring) Inspect() Info {
	h := r.hdr
	head := atomic.LoadUint32(&h.Head)
	owner := atomic.LoadUint32(&h.LeaseOwner)
	info := Info{
		Name: r.name, ABIVersion: h.Version, Slots: int(r.g.slotCount), SlotSize: int(r.g.slotSize),
		SlotPayload: int(r.g.maxPayload), Policy: Policy(r.g.policy).String(), Size: int64(r.g.total),
		BaseSeq: h.BaseSeq, Head: head, Frames: head - h.BaseSeq,
		WriterPID: int(owner &^ claimBit), WriterEpoch: atomic.LoadUint32(&h.LeaseEpoch),
		Sleepers: atomic.LoadUint32(&h.Sleepers), EvSleepers: atomic.LoadUint32(&h.EvSleepers),
		Readers: []ReaderInfo{},
	}
	if owner != 0 {
		info.WriterAlive = holderAlive(owner, atomic.LoadUint32(&h.LeaseStart), atomic.LoadUint32(&h.LeasePidNS))
	}
	for i := 0; i < MaxReaders; i++ {
		e := r.reader(i)
		o := atomic.LoadUint32(&e.Owner)
		if o == 0 {
			continue
		}
		c := atomic.LoadUint32(&e.Cursor)
		info.Readers = append(info.Readers, ReaderInfo{
			Index: i, PID: int(o &^ claimBit),
			Alive:  holderAlive(o, atomic.LoadUint32(&e.Start), atomic.LoadUint32(&e.PidNS)),
			Cursor: c, Lag: lagOf(head, c), Lost: atomic.LoadUint32(&e.Lost), Frames: atomic.LoadUint32(&e.Frames),
			Event: atomic.LoadUint32(&e.Flags)&1 != 0, Joining: o&claimBit != 0,
		})
	}
	return info
}
