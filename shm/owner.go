package shm

import (
	"os"
	"sync/atomic"

	"github.com/edgeipc/edgeipc/internal/sys"
)

// maxPID bounds a plausible PID (PID_MAX_LIMIT on 64-bit Linux is 2^22).
const maxPID = 1 << 22

// holderAlive reports whether the owner word o (with start time and PID
// namespace as stored beside it) names a live process. A holder in another
// PID namespace cannot be checked and is assumed alive.
func holderAlive(o, start, ns uint32) bool {
	pid := o &^ claimBit
	if pid == 0 || pid > maxPID {
		return false
	}
	if self := sys.SelfPidNS(); ns != 0 && self != 0 && ns != self {
		return true
	}
	if o&claimBit != 0 {
		start = 0 // not written yet: the PID alone must do
	}
	return sys.ProcessAlive(int(pid), start)
}

// claim takes the owner word for this process if it is free or its holder
// is dead. It returns the PID that held it (0 if free) and whether the
// claim succeeded. start and ns are written before the owner word loses its
// claim bit, so other processes always read a consistent identity.
func claim(owner, start, ns *uint32) (prev uint32, ok bool) {
	me := uint32(os.Getpid())
	for {
		o := atomic.LoadUint32(owner)
		if o != 0 && holderAlive(o, atomic.LoadUint32(start), atomic.LoadUint32(ns)) {
			return o &^ claimBit, false
		}
		if atomic.CompareAndSwapUint32(owner, o, me|claimBit) {
			atomic.StoreUint32(start, sys.SelfStartTime())
			atomic.StoreUint32(ns, sys.SelfPidNS())
			return o &^ claimBit, true
		}
	}
}

// publish ends a claim: the entry is now visible as held by this process.
func publish(owner *uint32) {
	atomic.StoreUint32(owner, uint32(os.Getpid()))
}

// release frees an owner word held by this process.
func release(owner *uint32) bool {
	me := uint32(os.Getpid())
	return atomic.CompareAndSwapUint32(owner, me, 0) || atomic.CompareAndSwapUint32(owner, me|claimBit, 0)
}
