// Package boards is reserved for hardware support and has no API yet.
//
// Planned (no issue has asked for it so far): detect the hardware the
// program runs on (Raspberry Pi models, generic arm64/armv7 boards, x86 PCs)
// and expose its GPIO and I²C buses as frame sources through periph.io,
// reading /proc and /sys, and on a board-less machine reporting every driver
// as skipped with a reason, never as an error. periph.io is not linked until
// then.
package boards
