package sys

import (
	"bufio"
	"errors"
	"os"
	"strconv"
	"strings"
)

// HasCapability reports whether this process has capability c (a
// unix.CAP_* number) in its effective set, from /proc/self/status. Being
// root is not the same thing: containers drop capabilities from root.
func HasCapability(c int) (bool, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return false, errors.New("sys: bad CapEff line in /proc/self/status")
			}
			return c >= 0 && c < 64 && caps&(1<<c) != 0, nil
		}
	}
	return false, errors.New("sys: no CapEff line in /proc/self/status")
}
