// Package atomicx has the one atomic operation sync/atomic lacks and the
// frame path needs: a store with release ordering only.
//
// sync/atomic's Store is sequentially consistent. On amd64 that is a
// locked XCHG, which waits for every earlier store to leave the store
// buffer; where a store only has to publish what was written before it
// (a seqlock stamp, a spin flag, a cursor nobody sleeps on), a plain MOV
// does, because x86 keeps stores in order. The difference is measurable
// between two cores: see docs/performance.md ("Go's own share").
//
// Use StoreRelease only where no later load has to be ordered after the
// store; a store that a sleeper's check depends on (a ring's head before
// the load of its sleeper count) must stay sequentially consistent.
package atomicx
