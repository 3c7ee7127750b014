package units

import "testing"

func TestBytes(t *testing.T) {
	for _, tc := range []struct {
		n             float64
		spaced, tight string
	}{
		{0, "0 B", "0B"},
		{1023, "1023 B", "1023B"},
		{1024, "1.0 KiB", "1.0KiB"},
		{1536, "1.5 KiB", "1.5KiB"},
		{64 << 20, "64.0 MiB", "64.0MiB"},
		{3 << 30, "3.0 GiB", "3.0GiB"},
		{1 << 40, "1024.0 GiB", "1024.0GiB"},
	} {
		if got := Bytes(tc.n); got != tc.spaced {
			t.Errorf("Bytes(%v) = %q, want %q", tc.n, got, tc.spaced)
		}
		if got := BytesCompact(tc.n); got != tc.tight {
			t.Errorf("BytesCompact(%v) = %q, want %q", tc.n, got, tc.tight)
		}
	}
}
