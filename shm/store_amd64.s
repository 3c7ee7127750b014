#include "textflag.h"

// func ntFence()
TEXT ·ntFence(SB),NOSPLIT,$0-0
	MFENCE
	RET
