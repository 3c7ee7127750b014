package runtime

// checkOS reports whether the runtime can run on this system: on Linux it
// can (runtime_other.go has the error for the others).
func checkOS() error { return nil }
