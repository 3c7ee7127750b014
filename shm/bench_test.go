package shm

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"
)

// Benchmarks of the frame path. Run with
//
//	go test -run '^$' -bench . -benchmem ./shm
//
// Every one must report 0 allocs/op: the write and read paths allocate
// nothing. Cross-process figures (and ratios to C) come from `edgeipc
// bench`; these measure the code path itself.

var benchSizes = []int{64, 4 << 10, 64 << 10, 1 << 20}

// benchDir is a fresh directory for a benchmark's segments in shared
// memory (DefaultDir), where edgeipc's rings live. b.TempDir() is under
// $TMPDIR, a disk on many machines: the benchmarks then measured a ring
// in a file's page cache, written back to disk while they ran.
func benchDir(b testing.TB) string {
	b.Helper()
	d, err := os.MkdirTemp(DefaultDir, "edgeipc-shm-bench-")
	if err != nil {
		b.Fatalf("benchmark segments belong in %s: %v", DefaultDir, err)
	}
	b.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func benchRing(b testing.TB, size int, slots int, p Policy) *Ring {
	b.Helper()
	r, err := Create(fmt.Sprintf("bench-%d-%d", size, time.Now().UnixNano()), Config{
		Slots: slots, SlotPayload: size, Policy: p, Segment: SegmentOptions{Dir: benchDir(b)}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Remove(); r.Close() })
	return r
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// BenchmarkWrite: Reserve, fill, Commit with no reader (overwrite).
func BenchmarkWrite(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(sizeName(size), func(b *testing.B) {
			r := benchRing(b, size, 64, Overwrite)
			w, err := r.NewWriter()
			if err != nil {
				b.Fatal(err)
			}
			p := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				buf, err := w.Reserve(size)
				if err != nil {
					b.Fatal(err)
				}
				copy(buf, p)
				if _, err := w.Commit(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWriteRead: one frame written and read back through each read
// API, on one goroutine (the cost of the path without cache transfers).
func BenchmarkWriteRead(b *testing.B) {
	for _, api := range []string{"TryNext", "TryReadInto", "ReadIntoDeadline", "ReadIntoContext"} {
		for _, size := range []int{64, 4 << 10} {
			b.Run(api+"/"+sizeName(size), func(b *testing.B) {
				r := benchRing(b, size, 64, Overwrite)
				w, err := r.NewWriter()
				if err != nil {
					b.Fatal(err)
				}
				rd, err := r.NewReader(nil)
				if err != nil {
					b.Fatal(err)
				}
				p := make([]byte, size)
				buf := make([]byte, size)
				dl := time.Now().Add(time.Hour)
				ctx := context.Background()
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := w.Write(p); err != nil {
						b.Fatal(err)
					}
					var err error
					switch api {
					case "TryNext":
						if _, err = rd.TryNext(); err == nil {
							err = rd.Release()
						}
					case "TryReadInto":
						_, err = rd.TryReadInto(buf)
					case "ReadIntoDeadline":
						_, err = rd.ReadIntoDeadline(dl, buf)
					case "ReadIntoContext":
						_, err = rd.ReadInto(ctx, buf)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkStream: a writer goroutine and a spinning reader on two threads,
// block policy (lossless), copying every frame in and out.
func BenchmarkStream(b *testing.B) {
	if runtime.GOMAXPROCS(0) < 2 {
		b.Skip("needs GOMAXPROCS >= 2: writer and reader spin on separate threads")
	}
	for _, size := range benchSizes {
		b.Run(sizeName(size), func(b *testing.B) {
			slots := 256
			if size >= 64<<10 {
				slots = max(8, (16<<20)/size)
			}
			r := benchRing(b, size, slots, Block)
			w, err := r.NewWriter()
			if err != nil {
				b.Fatal(err)
			}
			w.SetSpin(-1) // both sides poll, like the C ring
			rd, err := r.NewReader(&ReaderOptions{Spin: -1})
			if err != nil {
				b.Fatal(err)
			}
			p := make([]byte, size)
			buf := make([]byte, size)
			n := b.N
			errc := make(chan error, 1)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			go func() {
				for i := 0; i < n; i++ {
					if _, err := w.Write(p); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			dl := time.Now().Add(time.Minute)
			for i := 0; i < n; i++ {
				if _, err := rd.ReadIntoDeadline(dl, buf); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkSemaphore: an uncontended Post and TryWait pair.
func BenchmarkSemaphore(b *testing.B) {
	s, err := CreateSemaphore(fmt.Sprintf("bench-sem-%d", time.Now().UnixNano()), 0, &SegmentOptions{Dir: benchDir(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := s.Post(); err != nil {
			b.Fatal(err)
		}
		if err := s.TryWait(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPingPong: one round trip per op through two rings between two
// goroutines whose readers busy-poll (the in-process form of ring-spin).
func BenchmarkPingPong(b *testing.B) {
	if runtime.GOMAXPROCS(0) < 2 {
		b.Skip("needs GOMAXPROCS >= 2: both sides spin on separate threads")
	}
	for _, size := range []int{64, 4 << 10} {
		b.Run(sizeName(size), func(b *testing.B) {
			ping, pong := benchRing(b, size, 8, Overwrite), benchRing(b, size, 8, Overwrite)
			pw, _ := ping.NewWriter()
			qw, _ := pong.NewWriter()
			pr, _ := ping.NewReader(&ReaderOptions{Spin: -1})
			qr, _ := pong.NewReader(&ReaderOptions{Spin: -1})
			n := b.N
			dl := time.Now().Add(time.Minute)
			errc := make(chan error, 1)
			go func() {
				for i := 0; i < n; i++ {
					f, err := pr.NextDeadline(dl)
					if err == nil {
						var p []byte
						if p, err = qw.Reserve(len(f.Data)); err == nil {
							copy(p, f.Data)
							pr.Release()
							_, err = qw.Commit()
						}
					}
					if err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			payload, buf := make([]byte, size), make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < n; i++ {
				if _, err := pw.Write(payload); err != nil {
					b.Fatal(err)
				}
				if _, err := qr.ReadIntoDeadline(dl, buf); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
		})
	}
}
