//go:build linux

package runtime

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"unsafe"
)

// A ring's stats reader that is evicted (its reader-table entry freed, as a
// block-policy writer frees the entry of a reader it believes dead, or as
// a process with write access to the segment may) joins again, and when it
// stops it leaves the reader table as it found it: the reader it joined
// with again is closed too. (Only the first was closed: the second entry
// kept the runtime's PID for as long as the runtime lived, and on a
// block-policy ring a reader that never moves holds the writer back.)
func TestStatsReaderRejoinsAfterEvictionAndLeaves(t *testing.T) {
	e := newEnv(t)
	_, _, stop := inproc(t, reloadRingConfig(16, 64))
	f, err := os.OpenFile(filepath.Join(e.dir, "edgeipc.r"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The header and the reader table (docs/abi.md): 64-byte entries from
	// offset 256, each starting with its owner's PID.
	const headerSize, tableStart, entrySize = 8192, 256, 64
	mem, err := syscall.Mmap(int(f.Fd()), 0, headerSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(mem)
	owner := func(i int) *uint32 { return (*uint32)(unsafe.Pointer(&mem[tableStart+entrySize*i])) }
	pid := uint32(os.Getpid())
	mine := func() (held []int) {
		for i := 0; tableStart+entrySize*(i+1) <= headerSize; i++ {
			if atomic.LoadUint32(owner(i)) == pid {
				held = append(held, i)
			}
		}
		return held
	}
	eventually(t, "the stats reader to join", func() bool { return len(mine()) == 1 })
	first := mine()[0]
	atomic.StoreUint32(owner(first), 0)
	eventually(t, "the stats reader to join again", func() bool { return len(mine()) == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if held := mine(); len(held) != 0 {
		t.Fatalf("reader entries %v are still held by this process after the runtime stopped", held)
	}
}
