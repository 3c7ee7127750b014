package shm

// storeRelease stores v to *addr with release ordering only: earlier loads
// and stores are not reordered after it, but a later load may pass it.
// Use it where no store→load order is needed (seqlock stamps, a cursor no
// one sleeps on); sync/atomic's Store is sequentially consistent, which on
// amd64 costs a locked XCHG.
//
//go:noescape
func storeRelease(addr *uint32, v uint32)
