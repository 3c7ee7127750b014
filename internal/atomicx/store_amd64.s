#include "textflag.h"

// func StoreRelease(addr *uint32, v uint32)
// On amd64 (TSO) a plain MOV is a release store: no earlier load or store
// passes it. Being assembly, the call is also a compiler barrier.
TEXT ·StoreRelease(SB),NOSPLIT,$0-12
	MOVQ	addr+0(FP), AX
	MOVL	v+8(FP), BX
	MOVL	BX, 0(AX)
	RET
