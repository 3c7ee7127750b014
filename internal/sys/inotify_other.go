//go:build !linux

package sys

// The masks of WatchInode (Linux-only).
const (
	WatchEntries = 0
	WatchLinks   = 0
)

// Watch is Linux-only: WatchInode fails, and callers look periodically.
type Watch struct{}

func WatchInode(path string, mask uint32, name string) (*Watch, error) { return nil, ErrNotSupported }
func (w *Watch) C() <-chan struct{}                                    { return nil }
func (w *Watch) Err() error                                            { return ErrNotSupported }
func (w *Watch) Close()                                                {}
func InotifyWatches() int                                              { return 0 }
func InotifyReaders() int                                              { return 0 }
func HoldInotifyEvents() (release func())                              { return func() {} }
