package shm

import (
	"fmt"
	"strings"
)

// ValidName reports whether name can name a segment: 1 to 200 characters
// from [A-Za-z0-9._-], not starting with '.' or '-'.
func ValidName(name string) error {
	if name == "" || len(name) > 200 {
		return fmt.Errorf("%w: name %q: must be 1 to 200 characters", ErrInvalid, name)
	}
	if name[0] == '.' || name[0] == '-' {
		return fmt.Errorf("%w: name %q: must not start with '.' or '-'", ErrInvalid, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: name %q: only letters, digits, '.', '_' and '-' are allowed", ErrInvalid, name)
		}
	}
	return nil
}

// joinDir is dir/file with dir as written. filepath.Join cleans the
// result, and takes "/x/lnk/../shm" for "/x/shm" where the kernel, after
// the symlink lnk, finds another directory; C and Python programs given
// the same directory look where the kernel does.
func joinDir(dir, file string) string {
	if strings.HasSuffix(dir, "/") {
		return dir + file
	}
	return dir + "/" + file
}

// pathDir is the directory part of path as written (see joinDir), "/" for
// a file at the root and "." for a bare name.
func pathDir(path string) string {
	switch i := strings.LastIndexByte(path, '/'); {
	case i < 0:
		return "."
	case i == 0:
		return "/"
	default:
		return path[:i]
	}
}
