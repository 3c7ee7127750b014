package shm

import "fmt"

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
