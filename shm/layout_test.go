package shm

import (
	"testing"
	"unsafe"
)

// abiOffset is one offset or size of the Go structs and the value
// docs/abi.md gives it.
type abiOffset struct {
	name      string // the field's name in docs/abi.md, prefixed reader., slot. or sem.
	got, want uintptr
}

// abiOffsets lists the offsets and sizes of the Go structs with the values
// docs/abi.md gives them (TestABIDocMatchesLayout reads them from there).
func abiOffsets() []abiOffset {
	var h ringHeader
	var e readerEntry
	var s slotHeader
	var sem semHeader
	return []abiOffset{
		{"magic", unsafe.Offsetof(h.Magic), 0},
		{"abi_version", unsafe.Offsetof(h.Version), 4},
		{"header_size", unsafe.Offsetof(h.HeaderSize), 8},
		{"slot_size", unsafe.Offsetof(h.SlotSize), 12},
		{"slot_count", unsafe.Offsetof(h.SlotCount), 16},
		{"max_payload", unsafe.Offsetof(h.MaxPayload), 20},
		{"policy", unsafe.Offsetof(h.Policy), 24},
		{"max_readers", unsafe.Offsetof(h.MaxReaders), 28},
		{"readers_off", unsafe.Offsetof(h.ReadersOff), 32},
		{"reader_stride", unsafe.Offsetof(h.ReaderStride), 36},
		{"base_seq", unsafe.Offsetof(h.BaseSeq), 40},
		{"ready", unsafe.Offsetof(h.Ready), 44},
		{"total_size_lo", unsafe.Offsetof(h.TotalLo), 48},
		{"total_size_hi", unsafe.Offsetof(h.TotalHi), 52},
		{"creator_pid", unsafe.Offsetof(h.CreatorPID), 56},
		{"flags", unsafe.Offsetof(h.Flags), 60},
		{"lease_owner", unsafe.Offsetof(h.LeaseOwner), 64},
		{"lease_start", unsafe.Offsetof(h.LeaseStart), 68},
		{"lease_pidns", unsafe.Offsetof(h.LeasePidNS), 72},
		{"lease_epoch", unsafe.Offsetof(h.LeaseEpoch), 76},
		{"head", unsafe.Offsetof(h.Head), 128},
		{"sleepers", unsafe.Offsetof(h.Sleepers), 132},
		{"ev_sleepers", unsafe.Offsetof(h.EvSleepers), 136},
		{"reader_joins", unsafe.Offsetof(h.Joins), 140},
		{"space_value", unsafe.Offsetof(h.SpaceValue), 192},
		{"space_waiters", unsafe.Offsetof(h.SpaceWaiters), 196},
		{"writer_waiting", unsafe.Offsetof(h.WriterWaiting), 200},
		{"header size", unsafe.Sizeof(h), 256},
		{"reader.owner", unsafe.Offsetof(e.Owner), 0},
		{"reader.start", unsafe.Offsetof(e.Start), 4},
		{"reader.pidns", unsafe.Offsetof(e.PidNS), 8},
		{"reader.cursor", unsafe.Offsetof(e.Cursor), 12},
		{"reader.lost", unsafe.Offsetof(e.Lost), 16},
		{"reader.frames", unsafe.Offsetof(e.Frames), 20},
		{"reader.flags", unsafe.Offsetof(e.Flags), 24},
		{"reader size", unsafe.Sizeof(e), 64},
		{"slot.stamp", unsafe.Offsetof(s.Stamp), 0},
		{"slot.length", unsafe.Offsetof(s.Length), 4},
		{"slot.type", unsafe.Offsetof(s.Type), 8},
		{"slot.flags", unsafe.Offsetof(s.Flags), 12},
		{"slot.timestamp_ns", unsafe.Offsetof(s.Time), 16},
		{"slot.seq", unsafe.Offsetof(s.Seq), 24},
		{"slot header size", unsafe.Sizeof(s), 64},
		{"sem.magic", unsafe.Offsetof(sem.Magic), 0},
		{"sem.version", unsafe.Offsetof(sem.Version), 4},
		{"sem.value", unsafe.Offsetof(sem.Value), 8},
		{"sem.waiters", unsafe.Offsetof(sem.Waiters), 12},
		{"header_size value", uintptr(ringHeaderSize()), 8192},
	}
}

// TestLayoutMatchesABI pins the Go structs to the offsets in docs/abi.md.
func TestLayoutMatchesABI(t *testing.T) {
	for _, c := range abiOffsets() {
		if c.got != c.want {
			t.Errorf("%s at %d, docs/abi.md says %d", c.name, c.got, c.want)
		}
	}
	if ringMagic != 0x52504945 || semMagic != 0x53504945 || ABIVersion != 1 {
		t.Errorf("magics %#x %#x, version %d; docs/abi.md says 0x52504945, 0x53504945, 1", ringMagic, semMagic, ABIVersion)
	}
	if SlotSizeFor(1) != 128 || SlotSizeFor(64) != 128 || SlotSizeFor(65) != 192 {
		t.Errorf("SlotSizeFor: got %d %d %d", SlotSizeFor(1), SlotSizeFor(64), SlotSizeFor(65))
	}
}
