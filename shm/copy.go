package shm

// copyChunk keeps each piece of a Copy under 1 MiB, where Go's memmove on
// amd64 switches to non-temporal stores.
const copyChunk = 512 << 10

// Copy is the built-in copy for frames: it returns min(len(dst), len(src))
// after copying that many bytes, but keeps the bytes it writes in the CPU
// cache. From 1 MiB up, Go's copy on amd64 writes around the cache
// (non-temporal stores), which sends a frame the reader is about to read
// out to memory and makes the reader fetch it back; Copy copies in pieces
// below that size. Writer.Write and Reader.ReadInto use it; use it to fill
// the slot returned by Reserve.
func Copy(dst, src []byte) int {
	n := min(len(dst), len(src))
	if n < 1<<20 {
		return copy(dst, src)
	}
	for off := 0; off < n; off += copyChunk {
		end := min(off+copyChunk, n)
		copy(dst[off:end], src[off:end])
	}
	return n
}
