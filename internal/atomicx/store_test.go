package atomicx

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// The store writes exactly the 32-bit word it is given: not its
// neighbours (a wrong operand width in the assembly would clobber them).
func TestStoreReleaseWritesOneWord(t *testing.T) {
	w := [3]uint32{0xaaaaaaaa, 0xbbbbbbbb, 0xcccccccc}
	StoreRelease(&w[1], 0x12345678)
	if w != [3]uint32{0xaaaaaaaa, 0x12345678, 0xcccccccc} {
		t.Fatalf("after StoreRelease(&w[1]): %#x", w)
	}
}

// Message passing, the use it exists for: a reader that sees the flag
// also sees the data stored before it.
func TestStoreReleasePublishes(t *testing.T) {
	const n = 100000
	var data [n]uint64
	var flag uint32
	done := make(chan error, 1)
	go func() {
		for i := uint32(1); i <= n; i++ {
			for atomic.LoadUint32(&flag) < i {
			}
			if got := atomic.LoadUint64(&data[i-1]); got != uint64(i)*3 {
				done <- fmt.Errorf("message %d: data read %d after its flag, want %d", i, got, uint64(i)*3)
				return
			}
		}
		done <- nil
	}()
	for i := uint32(1); i <= n; i++ {
		atomic.StoreUint64(&data[i-1], uint64(i)*3)
		StoreRelease(&flag, i)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
