package atomicx

// StoreRelease stores v to *addr with release ordering only: earlier loads
// and stores are not reordered after it, but a later load may pass it.
//
//go:noescape
func StoreRelease(addr *uint32, v uint32)
