package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/internal/atomicx"
	"github.com/edgeipc/edgeipc/shm"
)

// go-spin and go-spin-ts are c-spin and c-spin-ts written in Go: the same
// layout (a sequence word and a timestamp on one cache line per
// direction, the payload buffers after them), the same copies and the
// same spin with the CPU's pause hint. They measure what Go itself costs
// on this machine, so that ring-spin's distance from C can be split into
// the language's share (go-spin against c-spin) and the ring's
// (ring-spin against go-spin-ts). The sequence words are published with
// a release store (atomicx.StoreRelease), as c-spin's st() does and as the
// ring publishes its slot stamps: sync/atomic's sequentially consistent
// store is a locked XCHG on amd64, and between two cores that alone made
// this case about 1.5x c-spin (docs/performance.md, "Go's own share").

// goSpinStop is the sequence value that tells the echo side to exit (STOP
// in c/common.h).
const goSpinStop = 0xffffffff

// goSpinMap is the shared mapping of a go-spin exchange, laid out as in
// c/spin.c.
type goSpinMap struct {
	mem              []byte
	ping, pong       *uint32
	pingTS, pongTS   *int64
	pingBuf, pongBuf []byte
}

// goSpinBuf is the room each payload buffer takes: size rounded up to a
// cache line.
func goSpinBuf(size int) int { return (size + 63) &^ 63 }

func goSpinBytes(size int) int { return 128 + 2*goSpinBuf(size) }

// mapGoSpin maps the exchange file f (goSpinBytes(size) long).
func mapGoSpin(f *os.File, size int) (*goSpinMap, error) {
	mem, err := unix.Mmap(int(f.Fd()), 0, goSpinBytes(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", f.Name(), err)
	}
	b := unsafe.Pointer(&mem[0])
	off := 128 + goSpinBuf(size)
	return &goSpinMap{
		mem:     mem,
		ping:    (*uint32)(b),
		pingTS:  (*int64)(unsafe.Add(b, 8)),
		pong:    (*uint32)(unsafe.Add(b, 64)),
		pongTS:  (*int64)(unsafe.Add(b, 64+8)),
		pingBuf: mem[128 : 128+size],
		pongBuf: mem[off : off+size],
	}, nil
}

func (m *goSpinMap) unmap() { unix.Munmap(m.mem) }

//go:linkname procyield runtime.procyield
func procyield(cycles uint32)

// spinUntil polls *w until (*w == v) == eq, looking at stop every 64Ki
// polls (a peer that died or a deadline that passed); stop returns the
// error that ends the wait.
func spinUntil(w *uint32, v uint32, eq bool, stop func() error) (uint32, error) {
	for i := 1; ; i++ {
		if x := atomic.LoadUint32(w); (x == v) == eq {
			return x, nil
		}
		procyield(1)
		if i&0xffff == 0 {
			if err := stop(); err != nil {
				return 0, err
			}
		}
	}
}

func goSpinPingPong(stamp bool) func(ctx context.Context, h *harness, size int) (Result, error) {
	return func(ctx context.Context, h *harness, size int) (Result, error) {
		r := Result{Wake: "spin"}
		path := filepath.Join(h.dir, h.name("gospin"))
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			return r, err
		}
		defer os.Remove(path)
		defer f.Close()
		if err := f.Truncate(int64(goSpinBytes(size))); err != nil {
			return r, err
		}
		m, err := mapGoSpin(f, size)
		if err != nil {
			return r, err
		}
		defer m.unmap()
		name := "go-spin"
		if stamp {
			name = "go-spin-ts"
		}
		p, err := h.start(ctx, name, size, nil, nil, "name", path)
		if err != nil {
			return r, err
		}
		dl := time.Now().Add(h.timeout())
		stop := func() error {
			select {
			case <-p.done:
				return errors.New("peer exited")
			default:
			}
			if time.Now().After(dl) {
				return os.ErrDeadlineExceeded
			}
			return nil
		}
		payload, buf := payloadOf(size), make([]byte, size)
		i := uint32(0)
		s, err := h.pingPong(func() error {
			i++
			copy(m.pingBuf, payload)
			if stamp {
				*m.pingTS = shm.Now()
			}
			atomicx.StoreRelease(m.ping, i)
			if _, err := spinUntil(m.pong, i, true, stop); err != nil {
				return err
			}
			copy(buf, m.pongBuf)
			return nil
		})
		atomic.StoreUint32(m.ping, goSpinStop)
		if err == nil && !bytes.Equal(buf, payload) {
			err = errors.New("the echoed payload differs from the one sent")
		}
		if err != nil {
			return r, failed(p, err)
		}
		if err := p.wait(10 * time.Second); err != nil {
			return r, err
		}
		fillRTT(&r, s)
		return r, nil
	}
}

func goSpinEcho(stamp bool) func(ctx context.Context, c *childCfg) error {
	return func(ctx context.Context, c *childCfg) error {
		f, err := os.OpenFile(c.name, os.O_RDWR|unix.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		m, err := mapGoSpin(f, c.size)
		if err != nil {
			return err
		}
		defer m.unmap()
		stop := func() error {
			if time.Now().After(c.deadline) {
				return os.ErrDeadlineExceeded
			}
			return ctx.Err()
		}
		last := uint32(0)
		for {
			s, err := spinUntil(m.ping, last, false, stop)
			if err != nil {
				return err
			}
			if s == goSpinStop {
				return nil
			}
			copy(m.pongBuf, m.pingBuf)
			if stamp {
				*m.pongTS = shm.Now()
			}
			atomicx.StoreRelease(m.pong, s)
			last = s
		}
	}
}
