//go:build linux

package shm

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func init() { children["creator"] = childCreator }

// childCreator creates ring EDGEIPC_RING, commits one frame "hello" and
// keeps the ring until its stdin closes.
func childCreator() int {
	r, err := Create(os.Getenv("EDGEIPC_RING"), Config{Slots: 8, SlotPayload: 64})
	if err != nil {
		os.Stderr.WriteString("child: " + err.Error() + "\n")
		return 1
	}
	defer r.Close()
	w, err := r.NewWriter()
	if err != nil {
		os.Stderr.WriteString("child: " + err.Error() + "\n")
		return 1
	}
	if _, err := w.Write([]byte("hello")); err != nil {
		os.Stderr.WriteString("child: " + err.Error() + "\n")
		return 1
	}
	io.Copy(io.Discard, os.Stdin)
	return 0
}

type openResult struct {
	rd  *Reader
	err error
}

// openReaderAsync runs OpenReaderContext in a goroutine.
func openReaderAsync(ctx context.Context, name string, sopts *SegmentOptions) <-chan openResult {
	ch := make(chan openResult, 1)
	go func() {
		rd, err := OpenReaderContext(ctx, name, sopts, &ReaderOptions{From: Oldest})
		ch <- openResult{rd, err}
	}()
	return ch
}

// TestOpenReaderContextWaitsForCreator starts a reader before its ring
// exists and a process that creates the ring afterwards: the reader must
// wait, then join and read the creator's first frame.
func TestOpenReaderContextWaitsForCreator(t *testing.T) {
	dir := testDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), scale(20*time.Second))
	defer cancel()
	ch := openReaderAsync(ctx, "late", nil)
	// Files that are not the ring come and go meanwhile.
	if err := os.WriteFile(filepath.Join(dir, "edgeipc.other"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-ch:
		t.Fatalf("OpenReaderContext returned before the ring existed: %v", res.err)
	case <-time.After(100 * time.Millisecond):
	}

	cmd := child(t, "creator", "EDGEIPC_RING=late")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	startChild(t, cmd)
	defer stdin.Close()
	res := <-ch
	if res.err != nil {
		t.Fatalf("OpenReaderContext: %v", res.err)
	}
	defer res.rd.Close()
	f, err := res.rd.Next(ctx)
	if err != nil || string(f.Data) != "hello" {
		t.Fatalf("first frame: %q, %v; want \"hello\"", f.Data, err)
	}
	res.rd.Release()
}

// TestOpenContextErrors checks what OpenContext does not wait for: a
// cancelled or expired wait returns the context's error, and a missing
// directory (before or during the wait) or a file that is no ring is an
// error at once, not a wait.
func TestOpenContextErrors(t *testing.T) {
	t.Run("cancel", func(t *testing.T) {
		testDir(t)
		ctx, cancel := context.WithCancel(context.Background())
		ch := openReaderAsync(ctx, "never", nil)
		time.Sleep(50 * time.Millisecond)
		cancel()
		if res := <-ch; !errors.Is(res.err, context.Canceled) {
			t.Fatalf("after cancel: %v, want context.Canceled", res.err)
		}
		dctx, dcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer dcancel()
		if _, err := OpenContext(dctx, "never", nil); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("after the deadline: %v, want context.DeadlineExceeded", err)
		}
	})
	// Each case below must return well before this context ends.
	limit := scale(10 * time.Second)
	t.Run("missing-dir", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		defer cancel()
		_, err := OpenContext(ctx, "r", &SegmentOptions{Dir: filepath.Join(t.TempDir(), "none")})
		if !errors.Is(err, os.ErrNotExist) || ctx.Err() != nil {
			t.Fatalf("missing directory: %v, want an error at once matching os.ErrNotExist", err)
		}
	})
	t.Run("dir-removed", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "shm")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		defer cancel()
		ch := openReaderAsync(ctx, "r", &SegmentOptions{Dir: dir})
		time.Sleep(50 * time.Millisecond)
		if err := os.Remove(dir); err != nil {
			t.Fatal(err)
		}
		if res := <-ch; !errors.Is(res.err, os.ErrNotExist) || ctx.Err() != nil {
			t.Fatalf("directory removed during the wait: %v, want an error at once matching os.ErrNotExist", res.err)
		}
	})
	t.Run("not-a-ring", func(t *testing.T) {
		testDir(t)
		s, err := CreateSemaphore("sem", 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		defer cancel()
		if _, err := OpenContext(ctx, "sem", nil); err == nil || errors.Is(err, os.ErrNotExist) || ctx.Err() != nil {
			t.Fatalf("a semaphore opened as a ring: %v, want its error at once", err)
		}
	})
	t.Run("bad-name", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		defer cancel()
		if _, err := OpenContext(ctx, "../x", nil); !errors.Is(err, ErrInvalid) || ctx.Err() != nil {
			t.Fatalf("bad name: %v, want ErrInvalid at once", err)
		}
	})
}
