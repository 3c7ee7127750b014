package shm

import (
	"bytes"
	"testing"
)

func TestCopy(t *testing.T) {
	src := make([]byte, 3<<20+123)
	for i := range src {
		src[i] = byte(i*131 + i>>16)
	}
	for _, c := range []struct{ dst, src int }{
		{0, 0}, {64, 64}, {64, 10}, {10, 64}, {1<<20 - 1, 1 << 20}, {1 << 20, 1 << 20},
		{1<<20 + 1, 3 << 20}, {3<<20 + 123, 3<<20 + 123}, {2 << 20, copyChunk*3 + 7},
	} {
		dst := bytes.Repeat([]byte{0xee}, c.dst+16)
		n := Copy(dst[:c.dst], src[:c.src])
		want := min(c.dst, c.src)
		if n != want {
			t.Fatalf("Copy(%d, %d) = %d, want %d", c.dst, c.src, n, want)
		}
		if !bytes.Equal(dst[:n], src[:n]) {
			t.Fatalf("Copy(%d, %d): bytes differ", c.dst, c.src)
		}
		for _, b := range dst[n:] {
			if b != 0xee {
				t.Fatalf("Copy(%d, %d) wrote past %d", c.dst, c.src, n)
			}
		}
	}
}

func BenchmarkCopy1MiB(b *testing.B) {
	src, dst := make([]byte, 1<<20), make([]byte, 1<<20)
	b.SetBytes(1 << 20)
	b.Run("Copy", func(b *testing.B) {
		b.SetBytes(1 << 20)
		for i := 0; i < b.N; i++ {
			Copy(dst, src)
		}
	})
	b.Run("builtin", func(b *testing.B) {
		b.SetBytes(1 << 20)
		for i := 0; i < b.N; i++ {
			copy(dst, src)
		}
	})
}
