//go:build !linux

package qemuwatch

// Marker: see watch_linux.go.
const Marker = "QEMU-FORK-DEADLOCK"

// Start does nothing off Linux.
func Start() {}

// Emulated reports false off Linux.
func Emulated() bool { return false }
