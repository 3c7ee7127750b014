package qemuwatch

import "testing"

// Run is the whole TestMain of a package that needs nothing else:
// func TestMain(m *testing.M) { os.Exit(qemuwatch.Run(m)) }.
func Run(m *testing.M) int {
	Start()
	return m.Run()
}
