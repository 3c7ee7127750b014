package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeipc/edgeipc/internal/mq"
	"github.com/edgeipc/edgeipc/shm"
)

// Frame types used between the bench and its peer on rings.
const (
	typeData  = 0
	typeStop  = 1 // the measuring side is done (ping-pong) / the producer is done (stream)
	typeReady = 2 // the peer has joined (ping-pong)
)

// pingPongSlots is the slot count of the ping and pong rings (one frame is
// ever in flight).
const pingPongSlots = 8

// streamBytes bounds the memory of a streaming ring: up to 256 slots, fewer
// for big frames (1 MiB frames get 16 slots). The C ring uses the same
// geometry.
const streamBytes = 16 << 20

// streamSlots is the slot count of the ring-stream ring (and of the C ring)
// for frames of size bytes.
func streamSlots(size int) int {
	ss := int(shm.SlotSizeFor(size))
	n := 256
	for n > 8 && n*ss > streamBytes {
		n /= 2
	}
	return n
}

func init() {
	cases = []*caseDef{
		{name: "ring-spin", kind: PingPong, c: "c-spin", cLike: "c-spin-ts", desc: "two rings, readers busy-poll (Spin: -1)",
			run: ringPingPong("ring-spin", -1, false), child: ringEcho(-1, false)},
		{name: "ring-wait", kind: PingPong, c: "c-futex", desc: "two rings, readers sleep on the futex (Spin: 0)",
			run: ringPingPong("ring-wait", 0, false), child: ringEcho(0, false)},
		{name: "ring-eventfd", kind: PingPong, c: "c-futex", desc: "two rings, readers sleep on eventfds (netpoller)",
			run: ringPingPong("ring-eventfd", 0, true), child: ringEcho(0, true)},
		{name: "pipe", kind: PingPong, c: "c-futex", desc: "two anonymous pipes",
			run: pipePingPong, child: pipeEcho},
		{name: "unix", kind: PingPong, c: "c-futex", desc: "Unix stream socket",
			run: sockPingPong("unix"), child: sockEcho("unix")},
		{name: "tcp", kind: PingPong, c: "c-futex", desc: "TCP over 127.0.0.1 (TCP_NODELAY)",
			run: sockPingPong("tcp"), child: sockEcho("tcp")},
		{name: "mq", kind: PingPong, c: "c-futex", desc: "two POSIX message queues (sizes capped by msgsize_max)",
			run: mqPingPong, child: mqEcho},
		{name: "ring-stream", kind: Stream, c: "c-ring", cLike: "c-ring-ts", desc: "one ring, block policy (lossless), both sides busy-poll",
			run: ringStream, child: ringProduce},
		{name: "pipe-stream", kind: Stream, c: "c-ring", desc: "anonymous pipe, one write per frame",
			run: pipeStream, child: pipeProduce},
		{name: "unix-stream", kind: Stream, c: "c-ring", desc: "Unix stream socket, one write per frame",
			run: unixStream, child: unixProduce},
		{name: "fifo", kind: Stream, c: "c-ring", desc: "named pipe (mkfifo), one write per frame",
			run: fifoStream, child: fifoProduce},
		{name: "go-spin", kind: PingPong, c: "c-spin", desc: "c-spin written in Go: what the language costs, without a ring",
			run: goSpinPingPong(false), child: goSpinEcho(false)},
		{name: "go-spin-ts", kind: PingPong, c: "c-spin-ts", desc: "c-spin-ts written in Go: the floor for a Go ring that stamps frames",
			run: goSpinPingPong(true), child: goSpinEcho(true)},
		{name: "c-spin", kind: PingPong, impl: "c", desc: "C: spin-flag ping-pong through shared memory",
			run: cPingPong("spin")},
		{name: "c-spin-ts", kind: PingPong, impl: "c", desc: "C: c-spin plus a CLOCK_MONOTONIC stamp per hop, as each ring commit does",
			run: cPingPong("spin", "stamp")},
		{name: "c-futex", kind: PingPong, impl: "c", desc: "C: futex ping-pong (FUTEX_WAIT/WAKE, shared)",
			run: cPingPong("futex")},
		{name: "c-ring", kind: Stream, impl: "c", desc: "C: memcpy SPSC ring, both sides busy-poll",
			run: cRing},
		{name: "c-ring-ts", kind: Stream, impl: "c", desc: "C: c-ring plus a CLOCK_MONOTONIC stamp per frame, as the ring ABI does",
			run: cRingStamped},
	}
}

func payloadOf(size int) []byte {
	p := make([]byte, size)
	for i := range p {
		p[i] = byte(i*7 + 1)
	}
	return p
}

// failed prefers the peer's error (the cause) over the measuring side's.
// A peer that failed may still be on its way out (its abort callback runs
// before its error is recorded), so it gets a second to report.
func failed(p *peer, err error) error {
	if p != nil {
		select {
		case <-p.done:
			if p.err != nil {
				return fmt.Errorf("%w (measuring side: %v)", p.err, err)
			}
		case <-time.After(time.Second):
			p.kill()
		}
	}
	return err
}

// ---- rings: ping-pong ------------------------------------------------------

func ringPingPong(name string, spin int, eventfd bool) func(ctx context.Context, h *harness, size int) (Result, error) {
	return func(ctx context.Context, h *harness, size int) (Result, error) {
		r := Result{Policy: "overwrite", Wake: wakeName(spin, eventfd)}
		so := shm.SegmentOptions{Dir: h.dir}
		base := h.name("rpp")
		cfg := shm.Config{Slots: pingPongSlots, SlotPayload: size, Policy: shm.Overwrite, Segment: so}
		ping, err := shm.Create(base+".ping", cfg)
		if err != nil {
			return r, err
		}
		defer ping.Remove()
		defer ping.Close()
		pong, err := shm.Create(base+".pong", cfg)
		if err != nil {
			return r, err
		}
		defer pong.Remove()
		defer pong.Close()
		w, err := ping.NewWriter()
		if err != nil {
			return r, err
		}
		ropts := &shm.ReaderOptions{Spin: spin}
		var extra []*os.File
		if eventfd {
			evPing, err := shm.NewEventfd()
			if err != nil {
				return r, err
			}
			defer evPing.Close()
			evPong, err := shm.NewEventfd()
			if err != nil {
				return r, err
			}
			defer evPong.Close()
			if err := w.AddNotifier(evPing); err != nil {
				return r, err
			}
			ropts.Notifier = evPong
			for _, e := range []*shm.Eventfd{evPing, evPong} {
				f, err := e.File()
				if err != nil {
					return r, err
				}
				defer f.Close()
				extra = append(extra, f)
			}
		}
		rd, err := pong.NewReader(ropts)
		if err != nil {
			return r, err
		}
		p, err := h.start(ctx, name, size, extra, func() { rd.Close() }, "name", base)
		if err != nil {
			return r, err
		}
		for _, f := range extra {
			f.Close()
		}
		dl := time.Now().Add(h.timeout())
		buf := make([]byte, size)
		f, err := rd.ReadIntoDeadline(dl, buf)
		if err != nil {
			return r, failed(p, fmt.Errorf("waiting for the peer to join: %w", err))
		}
		if f.Type != typeReady {
			return r, failed(p, fmt.Errorf("peer sent frame type %d, want ready", f.Type))
		}
		payload := payloadOf(size)
		s, err := h.pingPong(func() error {
			b, err := w.Reserve(size)
			if err != nil {
				return err
			}
			shm.Copy(b, payload)
			if _, err := w.Commit(); err != nil {
				return err
			}
			_, err = rd.ReadIntoDeadline(dl, buf)
			return err
		})
		if err != nil {
			return r, failed(p, err)
		}
		if _, err := w.Reserve(0); err != nil {
			return r, failed(p, err)
		}
		if _, err := w.CommitWith(typeStop, 0); err != nil {
			return r, failed(p, err)
		}
		if err := p.wait(10 * time.Second); err != nil {
			return r, err
		}
		fillRTT(&r, s)
		return r, nil
	}
}

func wakeName(spin int, eventfd bool) string {
	switch {
	case eventfd:
		return "eventfd"
	case spin < 0:
		return "spin"
	}
	return "futex"
}

func ringEcho(spin int, eventfd bool) func(ctx context.Context, c *childCfg) error {
	return func(ctx context.Context, c *childCfg) error {
		so := &shm.SegmentOptions{Dir: c.dir}
		ping, err := shm.Open(c.name+".ping", so)
		if err != nil {
			return err
		}
		defer ping.Close()
		pong, err := shm.Open(c.name+".pong", so)
		if err != nil {
			return err
		}
		defer pong.Close()
		w, err := pong.NewWriter()
		if err != nil {
			return err
		}
		ropts := &shm.ReaderOptions{Spin: spin}
		if eventfd {
			evPing, err := shm.EventfdFromFile(os.NewFile(3, "eventfd-ping"))
			if err != nil {
				return err
			}
			defer evPing.Close()
			evPong, err := shm.EventfdFromFile(os.NewFile(4, "eventfd-pong"))
			if err != nil {
				return err
			}
			defer evPong.Close()
			ropts.Notifier = evPing
			if err := w.AddNotifier(evPong); err != nil {
				return err
			}
		}
		rd, err := ping.NewReader(ropts)
		if err != nil {
			return err
		}
		if _, err := w.Reserve(0); err != nil {
			return err
		}
		if _, err := w.CommitWith(typeReady, 0); err != nil {
			return err
		}
		for {
			f, err := rd.NextDeadline(c.deadline)
			if err != nil {
				return err
			}
			if f.Type == typeStop {
				return nil
			}
			b, err := w.Reserve(len(f.Data))
			if err != nil {
				return err
			}
			shm.Copy(b, f.Data)
			if err := rd.Release(); err != nil {
				return err
			}
			if _, err := w.Commit(); err != nil {
				return err
			}
		}
	}
}

// ---- rings: streaming ------------------------------------------------------

func ringStream(ctx context.Context, h *harness, size int) (Result, error) {
	r := Result{Policy: "block", Wake: "spin"}
	base := h.name("rst")
	ring, err := shm.Create(base, shm.Config{Slots: streamSlots(size), SlotPayload: size, Policy: shm.Block,
		Segment: shm.SegmentOptions{Dir: h.dir}})
	if err != nil {
		return r, err
	}
	defer ring.Remove()
	defer ring.Close()
	rd, err := ring.NewReader(&shm.ReaderOptions{Spin: -1})
	if err != nil {
		return r, err
	}
	p, err := h.start(ctx, "ring-stream", size, nil, func() { rd.Close() }, "name", base)
	if err != nil {
		return r, err
	}
	dl := time.Now().Add(h.timeout())
	buf := make([]byte, size)
	var frames, t0 int64
	for {
		f, err := rd.ReadIntoDeadline(dl, buf)
		if err != nil {
			return r, failed(p, err)
		}
		if t0 == 0 {
			t0 = shm.Now()
		}
		if f.Type == typeStop {
			break
		}
		frames++
	}
	t1 := shm.Now()
	if err := p.wait(10 * time.Second); err != nil {
		return r, err
	}
	lost := int64(rd.Stats().Lost)
	r.Lost = &lost
	return r, fillRate(&r, frames, t1-t0, size)
}

// produceLoop calls write until the frame count or the duration is reached.
func produceLoop(c *childCfg, write func() error) error {
	end := shm.Now() + int64(c.duration)
	for i := 0; ; i++ {
		if err := write(); err != nil {
			return err
		}
		if c.iters > 0 {
			if i+1 >= c.iters {
				return nil
			}
		} else if i&255 == 0 && shm.Now() >= end {
			return nil
		}
	}
}

func ringProduce(ctx context.Context, c *childCfg) error {
	w, err := shm.OpenWriter(c.name, &shm.SegmentOptions{Dir: c.dir})
	if err != nil {
		return err
	}
	defer w.Close()
	w.SetSpin(-1) // a full ring is polled, not slept on: both sides poll, like c-ring
	payload := payloadOf(c.size)
	err = produceLoop(c, func() error {
		b, err := w.ReserveDeadline(c.deadline, c.size)
		if err != nil {
			return err
		}
		shm.Copy(b, payload)
		_, err = w.Commit()
		return err
	})
	if err != nil {
		return err
	}
	if _, err := w.ReserveDeadline(c.deadline, 0); err != nil {
		return err
	}
	_, err = w.CommitWith(typeStop, 0)
	return err
}

// ---- byte streams: ping-pong ----------------------------------------------

type deadliner interface{ SetDeadline(time.Time) error }

func bytePingPong(h *harness, r io.Reader, w io.Writer, size int) ([]int64, error) {
	payload := payloadOf(size)
	buf := make([]byte, size)
	return h.pingPong(func() error {
		if _, err := w.Write(payload); err != nil {
			return err
		}
		_, err := io.ReadFull(r, buf)
		return err
	})
}

func echo(r io.Reader, w io.Writer, size int) error {
	buf := make([]byte, size)
	for {
		if _, err := io.ReadFull(r, buf); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
}

func pipePingPong(ctx context.Context, h *harness, size int) (Result, error) {
	var r Result
	pingR, pingW, err := os.Pipe()
	if err != nil {
		return r, err
	}
	defer pingW.Close()
	pongR, pongW, err := os.Pipe()
	if err != nil {
		pingR.Close()
		return r, err
	}
	defer pongR.Close()
	p, err := h.start(ctx, "pipe", size, []*os.File{pingR, pongW}, nil)
	pingR.Close()
	pongW.Close()
	if err != nil {
		return r, err
	}
	dl := time.Now().Add(h.timeout())
	pingW.SetDeadline(dl)
	pongR.SetDeadline(dl)
	s, err := bytePingPong(h, pongR, pingW, size)
	if err != nil {
		return r, failed(p, err)
	}
	pingW.Close()
	if err := p.wait(10 * time.Second); err != nil {
		return r, err
	}
	fillRTT(&r, s)
	return r, nil
}

func pipeEcho(ctx context.Context, c *childCfg) error {
	r, w := os.NewFile(3, "ping"), os.NewFile(4, "pong")
	defer r.Close()
	defer w.Close()
	return echo(r, w, c.size)
}

// listen opens the listening socket for a unix or tcp case.
func (h *harness) listen(network string) (net.Listener, error) {
	if network == "unix" {
		return net.Listen("unix", filepath.Join(h.dir, h.name("sock")))
	}
	return net.Listen("tcp", "127.0.0.1:0")
}

// accept waits for the peer's connection.
func accept(ln net.Listener, dl time.Time) (net.Conn, error) {
	ln.(deadliner).SetDeadline(dl)
	c, err := ln.Accept()
	if err != nil {
		return nil, err
	}
	c.SetDeadline(dl)
	return c, nil
}

func sockPingPong(network string) func(ctx context.Context, h *harness, size int) (Result, error) {
	return func(ctx context.Context, h *harness, size int) (Result, error) {
		var r Result
		ln, err := h.listen(network)
		if err != nil {
			return r, err
		}
		defer ln.Close()
		p, err := h.start(ctx, network, size, nil, func() { ln.Close() }, "addr", ln.Addr().String())
		if err != nil {
			return r, err
		}
		conn, err := accept(ln, time.Now().Add(h.timeout()))
		if err != nil {
			return r, failed(p, err)
		}
		defer conn.Close()
		s, err := bytePingPong(h, conn, conn, size)
		if err != nil {
			return r, failed(p, err)
		}
		conn.Close()
		if err := p.wait(10 * time.Second); err != nil {
			return r, err
		}
		fillRTT(&r, s)
		return r, nil
	}
}

func sockEcho(network string) func(ctx context.Context, c *childCfg) error {
	return func(ctx context.Context, c *childCfg) error {
		var d net.Dialer
		conn, err := d.DialContext(ctx, network, c.addr)
		if err != nil {
			return err
		}
		defer conn.Close()
		conn.SetDeadline(c.deadline)
		return echo(conn, conn, c.size)
	}
}

// ---- byte streams: streaming ----------------------------------------------

// consume reads size-byte frames until EOF and returns the frame count and
// the time from the first frame to EOF.
func consume(r io.Reader, size int) (frames int64, ns int64, err error) {
	buf := make([]byte, size)
	var t0 int64
	for {
		if _, err := io.ReadFull(r, buf); err != nil {
			if err == io.EOF {
				break
			}
			return frames, 0, err
		}
		if t0 == 0 {
			t0 = shm.Now()
		}
		frames++
	}
	if frames == 0 {
		return 0, 0, errors.New("no frames received")
	}
	return frames, shm.Now() - t0, nil
}

func produce(c *childCfg, w io.Writer) error {
	payload := payloadOf(c.size)
	return produceLoop(c, func() error {
		_, err := w.Write(payload)
		return err
	})
}

func pipeStream(ctx context.Context, h *harness, size int) (Result, error) {
	var r Result
	pr, pw, err := os.Pipe()
	if err != nil {
		return r, err
	}
	defer pr.Close()
	p, err := h.start(ctx, "pipe-stream", size, []*os.File{pw}, nil)
	pw.Close()
	if err != nil {
		return r, err
	}
	pr.SetDeadline(time.Now().Add(h.timeout()))
	n, ns, err := consume(pr, size)
	if err != nil {
		return r, failed(p, err)
	}
	if err := p.wait(10 * time.Second); err != nil {
		return r, err
	}
	return r, fillRate(&r, n, ns, size)
}

func pipeProduce(ctx context.Context, c *childCfg) error {
	w := os.NewFile(3, "stream")
	defer w.Close()
	return produce(c, w)
}

func unixStream(ctx context.Context, h *harness, size int) (Result, error) {
	var r Result
	ln, err := h.listen("unix")
	if err != nil {
		return r, err
	}
	defer ln.Close()
	p, err := h.start(ctx, "unix-stream", size, nil, func() { ln.Close() }, "addr", ln.Addr().String())
	if err != nil {
		return r, err
	}
	conn, err := accept(ln, time.Now().Add(h.timeout()))
	if err != nil {
		return r, failed(p, err)
	}
	defer conn.Close()
	n, ns, err := consume(conn, size)
	if err != nil {
		return r, failed(p, err)
	}
	if err := p.wait(10 * time.Second); err != nil {
		return r, err
	}
	return r, fillRate(&r, n, ns, size)
}

func unixProduce(ctx context.Context, c *childCfg) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(c.deadline)
	return produce(c, conn)
}

func fifoStream(ctx context.Context, h *harness, size int) (Result, error) {
	var r Result
	path := filepath.Join(h.dir, h.name("fifo"))
	if err := unix.Mkfifo(path, 0o600); err != nil {
		return r, os.NewSyscallError("mkfifo", err)
	}
	defer os.Remove(path)
	p, err := h.start(ctx, "fifo", size, nil, nil, "name", path)
	if err != nil {
		return r, err
	}
	type opened struct {
		f   *os.File
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		f, err := os.OpenFile(path, os.O_RDONLY, 0)
		ch <- opened{f, err}
	}()
	var o opened
	select {
	case o = <-ch:
	case <-p.done:
		if p.err == nil {
			// A peer that succeeded opened the FIFO, wrote everything
			// (it fits in the pipe) and left: our open has returned too.
			o = <-ch
			break
		}
		// The peer died before opening the FIFO: open it for writing
		// ourselves so the blocked open returns, then report the peer.
		if w, err := os.OpenFile(path, os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
		if o := <-ch; o.f != nil {
			o.f.Close()
		}
		return r, fmt.Errorf("peer exited before opening the FIFO: %v", p.err)
	}
	if o.err != nil {
		return r, failed(p, o.err)
	}
	f := o.f
	defer f.Close()
	f.SetDeadline(time.Now().Add(h.timeout()))
	n, ns, err := consume(f, size)
	if err != nil {
		return r, failed(p, err)
	}
	if err := p.wait(10 * time.Second); err != nil {
		return r, err
	}
	return r, fillRate(&r, n, ns, size)
}

func fifoProduce(ctx context.Context, c *childCfg) error {
	w, err := os.OpenFile(c.name, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer w.Close()
	return produce(c, w)
}

// ---- POSIX message queues --------------------------------------------------

func mqPingPong(ctx context.Context, h *harness, size int) (Result, error) {
	var r Result
	base := h.name("mq")
	opts := mq.Options{MaxMsg: 4, MsgSize: size, Exclusive: true}
	ping, err := mq.Create(base+".ping", opts)
	if err != nil {
		return r, mqSkip(err, size)
	}
	defer mq.Unlink(base + ".ping")
	defer ping.Close()
	pong, err := mq.Create(base+".pong", opts)
	if err != nil {
		return r, mqSkip(err, size)
	}
	defer mq.Unlink(base + ".pong")
	defer pong.Close()
	p, err := h.start(ctx, "mq", size, nil, func() { pong.Close() }, "name", base)
	if err != nil {
		return r, err
	}
	payload := payloadOf(size)
	buf := make([]byte, pong.MsgSize())
	rt := func() error {
		if err := ping.Send(ctx, payload, 0); err != nil {
			return err
		}
		n, _, err := pong.Receive(ctx, buf)
		if err == nil && n != size {
			err = fmt.Errorf("echo has %d bytes, want %d", n, size)
		}
		return err
	}
	// The first echo means the peer has opened both queues: their names
	// go now, so that a bench killed in the middle of the case (SIGKILL,
	// a crash) leaves no queue in /dev/mqueue, where it would count
	// against queues_max for ever. The deferred unlinks are for a
	// failure before this.
	if err := rt(); err != nil {
		return r, failed(p, err)
	}
	mq.Unlink(base + ".ping")
	mq.Unlink(base + ".pong")
	s, err := h.pingPong(rt)
	if err != nil {
		return r, failed(p, err)
	}
	if err := ping.Send(ctx, nil, 0); err != nil { // empty message: stop
		return r, failed(p, err)
	}
	if err := p.wait(10 * time.Second); err != nil {
		return r, err
	}
	fillRTT(&r, s)
	return r, nil
}

// mqSkip turns a queue limit into a skip that says which limit and how to
// raise it; anything else is an error.
func mqSkip(err error, size int) error {
	var le *mq.LimitError
	if errors.As(err, &le) {
		return skipf("mq cannot carry %d-byte messages here: %v", size, le)
	}
	return err
}

func mqEcho(ctx context.Context, c *childCfg) error {
	ping, err := mq.Open(c.name+".ping", os.O_RDONLY)
	if err != nil {
		return err
	}
	defer ping.Close()
	pong, err := mq.Open(c.name+".pong", os.O_WRONLY)
	if err != nil {
		return err
	}
	defer pong.Close()
	buf := make([]byte, ping.MsgSize())
	for {
		n, _, err := ping.Receive(ctx, buf)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if err := pong.Send(ctx, buf[:n], 0); err != nil {
			return err
		}
	}
}
