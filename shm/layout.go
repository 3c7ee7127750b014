package shm

import (
	"sync/atomic"
	"time"
	"unsafe"
)

// Ring ABI v1. docs/abi.md describes these bytes for C and Python; the
// layout test checks that the Go structs match the documented offsets.
//
// All integers are little-endian (every supported target is), all
// cross-process coordination uses aligned 32-bit atomics, and sequence
// numbers are uint32 compared with wrap-safe subtraction.
const (
	ringMagic  = 0x52504945 // "EIPR" as bytes on disk: 45 49 50 52
	semMagic   = 0x53504945 // "EIPS"
	ABIVersion = 1

	headerBytes     = 256  // fixed header before the reader table
	readerStride    = 64   // bytes per reader entry
	slotHeaderBytes = 64   // bytes before each slot's payload
	slotAlign       = 64   // slot size and payload alignment
	pageBytes       = 4096 // slot 0 starts on a page boundary

	// MaxReaders is the number of reader entries in every v1 ring.
	MaxReaders = 64
	// MaxSlots bounds the slot count (a power of two).
	MaxSlots = 1 << 24
	// MaxSlotPayload bounds the payload bytes per slot (64 MiB).
	MaxSlotPayload = 64 << 20

	policyOverwrite = 0
	policyBlock     = 1

	// owner words (writer lease, reader entries): 0 free, PID when held,
	// PID|claimBit while the holder is filling in the rest of the entry.
	claimBit = 0x80000000

	// reader entry flags
	readerEventfd = 1 // waits on an eventfd rather than the futex
	readerAsleep  = 2 // in (or entering) a sleep

	// a writer whose wakes found nobody this many times in a row (or that
	// signalled eventfds this many times) checks, at most once per
	// staleCheckEvery, whether dead readers left sleeper counts behind.
	staleWakes      = 64
	staleCheckEvery = int64(time.Second)

	// stamp of a slot: seq<<1 when frame seq is committed, odd while the
	// writer is filling it.
	stampWriting = 1
)

// maxSleep bounds one sleep of a reader: a wake-up lost to a count that was
// repaired at the wrong moment, or to a foreign writer that broke the
// protocol, costs at most this much latency, never a hang. It is long
// enough that an idle reader's re-check costs nothing measurable (a test
// shortens it).
func maxSleep() time.Duration { return time.Duration(maxSleepNs.Load()) }

var maxSleepNs atomic.Int64

func init() { maxSleepNs.Store(int64(10 * time.Second)) }

// ringHeader is the first 256 bytes of a ring segment.
type ringHeader struct {
	Magic        uint32 // 0
	Version      uint32 // 4
	HeaderSize   uint32 // 8: offset of slot 0
	SlotSize     uint32 // 12: bytes per slot including its 64-byte header
	SlotCount    uint32 // 16: power of two
	MaxPayload   uint32 // 20: SlotSize - 64
	Policy       uint32 // 24: 0 overwrite, 1 block
	MaxReaders   uint32 // 28
	ReadersOff   uint32 // 32: offset of the reader table (256)
	ReaderStride uint32 // 36: 64
	BaseSeq      uint32 // 40: sequence number of the first frame
	Ready        uint32 // 44: 1 once the creator finished initialising
	TotalLo      uint32 // 48: total segment bytes, low word
	TotalHi      uint32 // 52: high word
	CreatorPID   uint32 // 56
	Flags        uint32 // 60: reserved, 0

	LeaseOwner uint32 // 64: writer PID (| claimBit while claiming), 0 free
	LeaseStart uint32 // 68: writer start time (clock ticks since boot less its boottime offset, low 32 bits; docs/abi.md)
	LeasePidNS uint32 // 72: inode of the writer's PID namespace (low 32 bits)
	LeaseEpoch uint32 // 76: incremented on every lease take
	_          [48]byte

	Head       uint32 // 128: next sequence to publish; the futex word readers sleep on
	Sleepers   uint32 // 132: readers in (or entering) futex wait
	EvSleepers uint32 // 136: readers waiting on an eventfd
	Joins      uint32 // 140: incremented by every reader that joins (see Writer.slowest)
	_          [48]byte

	SpaceValue    uint32 // 192: block policy: semaphore the writer sleeps on
	SpaceWaiters  uint32 // 196: writers in futex wait on SpaceValue
	WriterWaiting uint32 // 200: 1 while the writer waits for space
	_             uint32
	_             [48]byte
}

// readerEntry is one 64-byte line of the reader table.
type readerEntry struct {
	Owner  uint32 // 0: reader PID (| claimBit while claiming), 0 free
	Start  uint32 // 4: reader start time (as LeaseStart)
	PidNS  uint32 // 8: inode of the reader's PID namespace (low 32 bits)
	Cursor uint32 // 12: next sequence this reader will read
	Lost   uint32 // 16: frames this reader lost (wraps)
	Frames uint32 // 20: frames this reader consumed (wraps)
	Flags  uint32 // 24: bit 0: waits on an eventfd; bit 1: asleep
	_      uint32
	_      [32]byte
}

// slotHeader is the first 64 bytes of every slot.
type slotHeader struct {
	Stamp  uint32 // 0: seq<<1 committed, odd while writing
	Length uint32 // 4: payload bytes
	Type   uint32 // 8: application frame type
	Flags  uint32 // 12: application flags
	Time   int64  // 16: CLOCK_MONOTONIC nanoseconds at commit
	Seq    uint32 // 24: full sequence number
	_      uint32
	_      [32]byte
}

var (
	_ [headerBytes - unsafe.Sizeof(ringHeader{})]byte
	_ [unsafe.Sizeof(ringHeader{}) - headerBytes]byte
	_ [readerStride - unsafe.Sizeof(readerEntry{})]byte
	_ [unsafe.Sizeof(readerEntry{}) - readerStride]byte
	_ [slotHeaderBytes - unsafe.Sizeof(slotHeader{})]byte
	_ [unsafe.Sizeof(slotHeader{}) - slotHeaderBytes]byte
)

// geometry is the validated, process-local copy of a ring's layout. Nothing
// here is re-read from shared memory after Open.
type geometry struct {
	headerSize uint32
	slotSize   uint32
	slotCount  uint32
	mask       uint32
	maxPayload uint32
	policy     uint32
	total      uint64
}

func ringSize(slotSize, slotCount uint32) uint64 {
	return uint64(ringHeaderSize()) + uint64(slotSize)*uint64(slotCount)
}

func ringHeaderSize() uint32 {
	n := uint32(headerBytes + MaxReaders*readerStride)
	return (n + pageBytes - 1) &^ (pageBytes - 1)
}

// SlotSizeFor returns the slot size (header included, rounded to 64 bytes)
// needed for payloads of up to maxPayload bytes.
func SlotSizeFor(maxPayload int) uint32 {
	return uint32(slotHeaderBytes + (maxPayload+slotAlign-1)&^(slotAlign-1))
}
