//go:build !linux

package shm

import "os"

const DefaultDir = "/dev/shm"
const FilePrefix = "edgeipc."

type SegmentOptions struct {
	Dir    string
	Group  string
	Mode   os.FileMode
	Owners []int
}

type Segment struct {
	name    string
	mem     []byte
	settled bool
}

func (s *Segment) Name() string            { return s.name }
func (s *Segment) Path() string            { return "" }
func (s *Segment) Bytes() []byte           { return nil }
func (s *Segment) Size() int               { return 0 }
func (s *Segment) File() (*os.File, error) { return nil, ErrNotSupported }
func (s *Segment) Close() error            { return ErrNotSupported }
func (s *Segment) Remove() error           { return ErrNotSupported }
func (s *Segment) Removed() (bool, error)  { return false, ErrNotSupported }

type SegmentInfo struct {
	Name string
	Path string
	Kind string
	Size int64
	Mode os.FileMode
	UID  int
	GID  int
}

func SegmentPath(name string, opts *SegmentOptions) string         { return "" }
func CreateSegment(string, int, *SegmentOptions) (*Segment, error) { return nil, ErrNotSupported }
func createSegment(string, int, *SegmentOptions, func([]byte)) (*Segment, error) {
	return nil, ErrNotSupported
}
func OpenSegment(string, *SegmentOptions) (*Segment, error)        { return nil, ErrNotSupported }
func LookupGroup(string) (int, error)                              { return 0, ErrNotSupported }
func openSegment(string, *SegmentOptions, int64) (*Segment, error) { return nil, ErrNotSupported }
func RemoveSegment(string, *SegmentOptions) error                  { return ErrNotSupported }
func CheckSpace(string, uint64) error                              { return ErrNotSupported }
func CheckDir(string) error                                        { return ErrNotSupported }
func ListSegments(*SegmentOptions) ([]SegmentInfo, error)          { return nil, ErrNotSupported }
func NewMemfd(string, int) (*Segment, error)                       { return nil, ErrNotSupported }
func OpenFd(*os.File, string) (*Segment, error)                    { return nil, ErrNotSupported }

func (s *Segment) retire() ([]byte, error) { return nil, ErrNotSupported }
func unmapRetired([]byte)                  {}
