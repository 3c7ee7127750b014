package sys

import "errors"

// ErrNotSupported is returned on systems where a facility does not exist.
var ErrNotSupported = errors.New("edgeipc: not supported on this operating system")
