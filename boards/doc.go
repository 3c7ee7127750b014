// Package boards detects the hardware the program runs on (Raspberry Pi
// models, generic arm64/armv7 boards, x86 PCs) and exposes its GPIO and I²C
// buses as frame sources through periph.io.
//
// Detection reads /proc and /sys; on a board-less machine it reports every
// driver as skipped with a reason, never as an error.
package boards
