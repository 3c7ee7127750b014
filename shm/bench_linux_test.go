package shm

import (
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestBenchmarksUseSharedMemory checks that the benchmarks' rings are
// segments in shared memory (tmpfs under DefaultDir), as edgeipc's are:
// they were made in b.TempDir(), on disk here, and measured a file's page
// cache under writeback.
func TestBenchmarksUseSharedMemory(t *testing.T) {
	var st unix.Statfs_t
	if err := unix.Statfs(DefaultDir, &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		t.Skipf("%s is not a tmpfs here (%v): nothing to check", DefaultDir, err)
	}
	r := benchRing(t, 64, 8, Overwrite)
	files, err := filepath.Glob(filepath.Join(DefaultDir, "edgeipc-shm-bench-*", FilePrefix+r.Name()))
	if err != nil || len(files) != 1 {
		t.Fatalf("the segment of benchmark ring %s is not under %s (found %v, %v)", r.Name(), DefaultDir, files, err)
	}
	if err := unix.Statfs(files[0], &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		t.Errorf("%s is not on a tmpfs (%v)", files[0], err)
	}
}
