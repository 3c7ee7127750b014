//go:build !linux

package shm

import "os"

// DefaultDir is where named segments live on Linux.
const DefaultDir = "/dev/shm"

// FilePrefix starts the file name of every named edgeipc segment.
const FilePrefix = "edgeipc."

// SegmentOptions controls how named segments are created and found (Linux
// only: see the Linux documentation of its fields).
type SegmentOptions struct {
	Dir    string
	Group  string
	Mode   os.FileMode
	Owners []int
}

// Segment is a mapped shared-memory object; Linux only.
type Segment struct {
	name    string
	mem     []byte
	settled bool
}

// Name returns the segment's name.
func (s *Segment) Name() string { return s.name }

// Path returns a zero value: Linux only.
func (s *Segment) Path() string { return "" }

// Bytes returns a zero value: Linux only.
func (s *Segment) Bytes() []byte { return nil }

// Size returns a zero value: Linux only.
func (s *Segment) Size() int { return 0 }

// File is Linux only: it returns an error matching ErrNotSupported.
func (s *Segment) File() (*os.File, error) { return nil, ErrNotSupported }

// Close is Linux only: it returns an error matching ErrNotSupported.
func (s *Segment) Close() error { return ErrNotSupported }

// Remove is Linux only: it returns an error matching ErrNotSupported.
func (s *Segment) Remove() error { return ErrNotSupported }

// Removed is Linux only: it returns an error matching ErrNotSupported.
func (s *Segment) Removed() (bool, error) { return false, ErrNotSupported }

// SegmentInfo describes one named segment found by ListSegments; Linux only.
type SegmentInfo struct {
	Name string
	Path string
	Kind string
	Size int64
	Mode os.FileMode
	UID  int
	GID  int
}

// SegmentPath returns "": Linux only.
func SegmentPath(name string, opts *SegmentOptions) string { return "" }

// SegmentDir returns "": Linux only.
func SegmentDir(opts *SegmentOptions) string { return "" }

// CreateSegment is Linux only: it returns an error matching ErrNotSupported.
func CreateSegment(string, int, *SegmentOptions) (*Segment, error) { return nil, ErrNotSupported }
func createSegment(string, int, *SegmentOptions, func([]byte)) (*Segment, error) {
	return nil, ErrNotSupported
}

// OpenSegment is Linux only: it returns an error matching ErrNotSupported.
func OpenSegment(string, *SegmentOptions) (*Segment, error) { return nil, ErrNotSupported }

// LookupGroup is Linux only: it returns an error matching ErrNotSupported.
func LookupGroup(string) (int, error)                              { return 0, ErrNotSupported }
func openSegment(string, *SegmentOptions, int64) (*Segment, error) { return nil, ErrNotSupported }

// RemoveSegment is Linux only: it returns an error matching ErrNotSupported.
func RemoveSegment(string, *SegmentOptions) error { return ErrNotSupported }

// CheckSpace is Linux only: it returns an error matching ErrNotSupported.
func CheckSpace(string, uint64) error { return ErrNotSupported }

// CheckDir is Linux only: it returns an error matching ErrNotSupported.
func CheckDir(string) error { return ErrNotSupported }

// ListSegments is Linux only: it returns an error matching ErrNotSupported.
func ListSegments(*SegmentOptions) ([]SegmentInfo, error) { return nil, ErrNotSupported }

// NewMemfd is Linux only: it returns an error matching ErrNotSupported.
func NewMemfd(string, int) (*Segment, error) { return nil, ErrNotSupported }

// OpenFd is Linux only: it returns an error matching ErrNotSupported.
func OpenFd(*os.File, string) (*Segment, error) { return nil, ErrNotSupported }

func (s *Segment) retire() ([]byte, error) { return nil, ErrNotSupported }
func unmapRetired([]byte)                  {}
