package runtime

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/edgeipc/edgeipc/internal/sys"
	"github.com/edgeipc/edgeipc/runtime/control"
	"github.com/edgeipc/edgeipc/shm"
)

// Sink reads frames out of a ring inside the runtime. Run reads until ctx
// is done; when drain is closed first, it finishes the frames already in
// the ring (what it can read without waiting) and returns.
type Sink interface {
	Run(ctx context.Context, ring *shm.Ring, drain <-chan struct{}) error
}

// sinkCounters are what a sink's reader counts, for the control plane's
// "sinks" command. Atomics: the sink's goroutine adds to them for every
// frame (no lock, no allocation) while a control request reads them.
type sinkCounters struct {
	frames  atomic.Uint64 // frames read whole (recorder: written whole to the file)
	bytes   atomic.Uint64 // payload bytes of those frames
	lost    atomic.Uint64 // frames the reader lost to overwrite
	skipped atomic.Uint64 // recorder: frames read but not recorded past max_bytes
}

// sinkState supervises one sink.
type sinkState struct {
	rt       *Runtime
	cfg      *SinkConfig
	ring     *ringState
	implicit bool
	stats    *statsReader
	sink     Sink
	cnt      sinkCounters

	mu     sync.Mutex
	cancel context.CancelFunc
	drain  chan struct{}
	done   chan struct{}
	// For the "sinks" command: state is StateRunning, StateBackoff (the
	// sink failed and is started again after a delay) or StateStopped;
	// restarts counts the starts after a failure, lastError is the error
	// of the last one.
	state     string
	restarts  int
	lastError string
}

func newSink(rt *Runtime, sc *SinkConfig, rs *ringState, implicit bool) *sinkState {
	sk := &sinkState{rt: rt, cfg: sc, ring: rs, implicit: implicit, state: StateStopped}
	switch sc.Kind {
	case SinkStats:
		sk.stats = newStatsReader()
		sk.sink = statsSink{sk.stats, rt, &sk.cnt}
	case SinkRecorder:
		sk.sink = &Recorder{Path: sc.Path, MaxBytes: sc.MaxBytes, Log: rt.log, cnt: &sk.cnt}
	}
	return sk
}

func (sk *sinkState) set(f func(sk *sinkState)) {
	sk.mu.Lock()
	f(sk)
	sk.mu.Unlock()
}

func (sk *sinkState) start() {
	ctx, cancel := context.WithCancel(context.Background())
	sk.mu.Lock()
	sk.cancel, sk.drain, sk.done = cancel, make(chan struct{}), make(chan struct{})
	done, drain := sk.done, sk.drain
	sk.state = StateRunning
	sk.mu.Unlock()
	go func() {
		defer close(done)
		defer sk.set(func(sk *sinkState) { sk.state = StateStopped })
		// A sink that fails (a recorder's disk full, its directory
		// missing) is started again with backoff, as exec sources are:
		// the condition may pass, and a sink that just stopped would lose
		// everything from then on with only a log line to show for it.
		bo := backoff{min: sinkBackoffMin, max: sinkBackoffMax}
		var failed error // the last run's error, when the stop finds it failed
		defer func() {
			if rec, ok := sk.sink.(*Recorder); ok && failed != nil {
				why := fmt.Sprintf("after a failure (%v)", failed)
				if errors.Is(failed, context.Canceled) {
					// (ctx ends a run only in its check of a file)
					why = "while it checked the records already in its file"
				}
				rec.failedAtStop(sk.ring.ring, why)
			}
		}()
		for {
			started := time.Now()
			err := sk.sink.Run(ctx, sk.ring.ring, drain)
			if err == nil {
				return
			}
			if ctx.Err() != nil || closed(drain) {
				failed = err // (its drain failed: a full disk)
				return
			}
			if time.Since(started) >= sinkBackoffMax {
				bo.reset()
			}
			d := bo.next()
			sk.set(func(sk *sinkState) { sk.state, sk.lastError = StateBackoff, err.Error() })
			sk.rt.log.Error(fmt.Sprintf("sink %s (%s on ring %s) stopped; starting it again in %v", sk.cfg.Name, sk.cfg.Kind, sk.cfg.Ring, d), "err", err)
			select {
			case <-ctx.Done():
				failed = err
				return
			case <-drain:
				failed = err
				return
			case <-time.After(d):
			}
			sk.set(func(sk *sinkState) { sk.state = StateRunning; sk.restarts++ })
			// A recorder goes on at the first frame its file does not
			// hold whole, not at the newest: the frames of the failed
			// write and those published while it waited are recorded if
			// the ring still holds them, and counted lost if not.
			if rec, ok := sk.sink.(*Recorder); ok && rec.nextOK {
				rec.resume, rec.resumeAt = true, rec.next
			}
		}
	}()
}

// stat is the sink's row of the "sinks" command.
func (sk *sinkState) stat() control.SinkStat {
	sk.mu.Lock()
	state, restarts, lastError := sk.state, sk.restarts, sk.lastError
	sk.mu.Unlock()
	st := control.SinkStat{
		Name: sk.cfg.Name, Kind: sk.cfg.Kind, Ring: sk.cfg.Ring, Implicit: sk.implicit, State: state,
		Frames: sk.cnt.frames.Load(), Bytes: sk.cnt.bytes.Load(), Lost: sk.cnt.lost.Load(), Skipped: sk.cnt.skipped.Load(),
		Restarts: restarts, LastError: lastError,
	}
	if sk.cfg.Kind == SinkRecorder {
		st.Path = sk.cfg.Path
	}
	return st
}

// The delay before a failed sink is started again doubles from
// sinkBackoffMin to sinkBackoffMax.
const (
	sinkBackoffMin = time.Second
	sinkBackoffMax = 30 * time.Second
)

// reloadDrain bounds the drain of a sink a reload stops: a reload waits
// for it, and a recorder replaced by one of the same name on the same
// ring hands over to it at the first frame it did not record.
const reloadDrain = 2 * time.Second

// stop drains the sink until by at the latest and stops it. A recorder
// whose drain by cuts short, or that the stop finds failed (waiting to
// start again, or failing in its drain), leaves the count of the frames
// it did not record in its left.
func (sk *sinkState) stop(by time.Time) {
	sk.mu.Lock()
	cancel, drain, done := sk.cancel, sk.drain, sk.done
	sk.mu.Unlock()
	if cancel == nil {
		return
	}
	close(drain)
	t := time.NewTimer(time.Until(by))
	select {
	case <-done:
	case <-t.C:
	}
	t.Stop()
	cancel()
	<-done
}

type statsSink struct {
	s   *statsReader
	rt  *Runtime
	cnt *sinkCounters
}

func (s statsSink) Run(ctx context.Context, ring *shm.Ring, drain <-chan struct{}) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-drain:
			cancel()
		case <-ctx.Done():
		}
	}()
	return s.s.run(ctx, ring, s.rt.log, s.cnt)
}

// noteCorrupt logs, at most once a second, that a sink's reader skipped
// err, a slot whose header breaks the ring ABI (a buggy or hostile writer
// with access to the segment): the sink counts it lost and reads on, as
// edgeipc sub and hz do.
func noteCorrupt(lim *limiter, log interface{ Warn(string, ...any) }, who string, err error) {
	if log == nil {
		return
	}
	if ok, n := lim.allow(time.Second); ok {
		more := ""
		if n > 0 {
			more = fmt.Sprintf(" (%d more not logged)", n)
		}
		log.Warn(fmt.Sprintf("%s: skipped a corrupt slot, counted as lost: %v%s", who, err, more))
	}
}

// watchPath watches the file at rec.Path for losing its link or moving
// (watchLinks). Without a watch the periodic check is all there is, and
// the log says why (not when the path is already gone, ENOENT or ENOTDIR:
// the check sees that).
func (rec *Recorder) watchPath() *sys.Watch {
	w, err := watchLinks(rec.Path)
	if err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) && rec.Log != nil {
		rec.Log.Warn(fmt.Sprintf("recorder %s: cannot watch it with inotify (%v%s); checking every %v instead that the path still names it", rec.Path, err, inotifyHint(err), recorderCheckInterval))
	}
	return w
}

// recorderCheckInterval is how often a recorder checks that its path
// still names the file it appends to, when inotify does not wake it
// first. (A variable for tests.)
var recorderCheckInterval = time.Second

// RecordHeaderSize is the size of the per-frame header in a recorder file.
const RecordHeaderSize = 24

// Recorder is the "recorder" sink: it appends every frame it reads to a
// file as a len32 record (a 4-byte little-endian length L, then L bytes)
// whose bytes are a 24-byte header followed by the payload:
//
//	offset 0  u32 seq
//	offset 4  u32 type
//	offset 8  u32 flags
//	offset 12 u32 lost   (frames this reader missed just before this one)
//	offset 16 i64 time   (CLOCK_MONOTONIC ns at commit)
//
// all little-endian. The file can be replayed through a fifo or exec source
// with framing = "len32" (the header then is part of each payload).
type Recorder struct {
	Path     string
	MaxBytes int64 // stop appending at this file size (0 = no limit)
	Log      interface {
		Info(msg string, args ...any)
		Warn(msg string, args ...any)
	}

	cnt *sinkCounters // what the runtime's "sinks" command shows; nil: not counted
	// A recorder that takes over from another on the same ring (a reload
	// that changed its path or max_bytes) starts at resumeAt, the first
	// frame the other did not record, instead of at the newest frame;
	// frames the ring no longer holds are counted as lost in its first
	// record. next is, once Run has returned, the first frame that is not
	// whole in its file (nextOK: Run got that far).
	resume   bool
	resumeAt uint32
	next     uint32
	nextOK   bool
	// left is, once Run has returned, the count of frames that were in
	// the ring when its drain began and that it did not read because ctx
	// ended the drain first (leftFrom is the first of them). Once the
	// sink is stopped after a failure, or in the check of its file
	// (leftWhy says which), it is the count of the frames from the first
	// its file does not hold whole to the ring's head: none of them
	// recorded, some perhaps no longer in the ring.
	left, leftFrom uint32
	leftWhy        string

	corruptLog limiter // "skipped a corrupt slot", at most once a second
	evictLog   limiter // "evicted from the reader table", at most once a second
}

// Run implements Sink.
func (rec *Recorder) Run(ctx context.Context, ring *shm.Ring, drain <-chan struct{}) error {
	// The check of an existing file below can take a while (a large file
	// of small records on an SD card): the recording starts with the
	// frames published from now on, those the ring no longer holds when
	// the reader joins counted as lost in its first record.
	// (A run that fails before it joins leaves the next run to start
	// afresh, as before: not to count what was published meanwhile.)
	joined := false
	rec.left, rec.leftWhy = 0, ""
	if !rec.resume {
		rec.resume, rec.resumeAt = true, ring.Head()
		defer func() {
			if !joined {
				rec.resume = false
				if ctx.Err() != nil {
					// Stopped before it joined (in the check of its
					// file): the frames from its start are its to
					// record, and the stop says it did not.
					rec.next, rec.nextOK = rec.resumeAt, true
				}
			}
		}()
	}
	f, fi, size, err := rec.open(ctx)
	if err != nil {
		return err
	}
	defer func() { f.Close() }() // the file appended to last (see reopen)
	if afterRecorderScan != nil {
		afterRecorderScan()
	}
	// The path is checked at once when inotify says the file lost a link
	// (removed, renamed over) or moved, or else every second: a removed
	// file loses the frames appended to it meanwhile. (Without inotify,
	// the periodic check alone.) The watch is made after the file was
	// opened and scanned, which can take long: a move in between woke no
	// watch, so the first flush checks too (lastCheck below).
	watch := rec.watchPath()
	defer func() { watch.Close() }()
	from := shm.Newest
	if rec.resume {
		from = shm.Oldest // and skip to resumeAt
	}
	rd, err := ring.NewReader(&shm.ReaderOptions{From: from})
	if err != nil {
		return err
	}
	joined = true
	// Whichever reader is current when Run returns: after an eviction it
	// is the one joined again.
	defer func() { rd.Close() }()
	next := rd.Cursor() // the first frame not yet whole in the file
	if rec.resume {
		next = rec.resumeAt
	}
	// A write that fails (a full disk) can leave part of a record at the
	// end of the file, and what is appended later (the next run of the
	// runtime) would be read as its rest: the file is then cut back to
	// the end of the last record that is whole in it.
	cw := &countingWriter{w: f, n: size}
	bw := bufio.NewWriterSize(cw, 256<<10)
	whole := size       // the end of the last record known to be whole in the file
	var ends recordEnds // the records after it: their ends, and the frame after each
	cnt := rec.cnt
	if cnt == nil {
		cnt = new(sinkCounters)
	}
	// advance moves whole past the records bw has written to the file,
	// and counts them: a record is counted once it is whole in the file,
	// and so is the loss its header carries. (A record cut off after a
	// failed write is read again when the recorder starts again, with its
	// loss in the lost of the first record after the cut: counted when
	// read, it was counted twice.)
	advance := func() {
		ends.advance(cw.n, func(end int64, after, lost uint32) {
			cnt.frames.Add(1)
			cnt.bytes.Add(uint64(end - whole - 4 - RecordHeaderSize))
			cnt.lost.Add(uint64(lost))
			whole, next = end, after
		})
	}
	flush := func() error {
		err := bw.Flush()
		advance()
		if err != nil {
			f.Truncate(whole)
			return fmt.Errorf("recorder: %w", err)
		}
		return nil
	}
	defer func() { rec.next, rec.nextOK = next, true }() // after the flush below
	defer flush()
	buf := make([]byte, ring.SlotPayload())
	var hdr [4 + RecordHeaderSize]byte
	// The drain reads the frames published before it began (up to end),
	// not those a writer the runtime does not stop (another process, or a
	// source a reload keeps) goes on publishing: a writer faster than the
	// file would keep it going for ever, and ctx ends it too.
	draining := false
	var end uint32
	startDrain := func() { draining, end = true, ring.Head() }
	// stopped returns as ctx ends Run: it leaves in left the frames of
	// the drain not read (those before resumeAt are in another file).
	stopped := func() error {
		if !draining {
			startDrain()
		}
		from := rd.Cursor()
		if rec.resume && int32(rec.resumeAt-from) > 0 {
			from = rec.resumeAt
		}
		if d := int32(end - from); d > 0 {
			rec.left, rec.leftFrom = uint32(d), from
		}
		return flush()
	}
	full := false
	var corrupt uint32 // slots skipped as corrupt since the last frame read
	// (lastCheck zero: the first flush checks.)
	lastFlush, lastCheck := time.Now(), time.Time{}
	checkErr := "" // why the path could not be checked last time ("": it could)
	// flushCheck flushes and, every recorderCheckInterval or when the
	// watch woke, checks that the path still names the file: one moved
	// away (a rotation: mv env.rec env.rec.1) or removed goes on being
	// appended to, the frames recorded into a file that is not at the
	// path, or no longer in any directory, filling the disk unseen. Then
	// the recorder goes on in a new file at the path, every frame in one
	// file or the other.
	flushCheck := func() error {
		if err := flush(); err != nil {
			return err
		}
		select {
		case <-watch.C():
		default:
			if time.Since(lastCheck) < recorderCheckInterval {
				return nil
			}
		}
		lastCheck = time.Now()
		cur, err := os.Lstat(rec.Path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			// The path cannot be checked (a directory on it replaced
			// by a file, a permission, a loop of symlinks): that says
			// nothing of the file, and it may pass. The recorder goes
			// on appending to its file, as it would if the path still
			// named it, and checks again in a second; it logs when
			// the reason changes.
			if msg := err.Error(); msg != checkErr {
				checkErr = msg
				if rec.Log != nil {
					rec.Log.Warn(fmt.Sprintf("recorder %s: cannot check that the path still names the file recorded to: %v; appending to that file still, checking again every second", rec.Path, err))
				}
			}
			return nil
		}
		if checkErr != "" {
			checkErr = ""
			if rec.Log != nil {
				rec.Log.Info(fmt.Sprintf("recorder %s: the path can be checked again", rec.Path))
			}
		}
		if err == nil && os.SameFile(cur, fi) {
			return nil
		}
		what := "was removed"
		if err == nil {
			what = "names another file (the file was moved away or replaced)"
		}
		if rec.Log != nil {
			rec.Log.Warn(fmt.Sprintf("recorder %s: the path %s; recording into a new file there, from frame %d", rec.Path, what, next))
		}
		f.Close()
		watch.Close()
		if f, fi, size, err = rec.open(ctx); err != nil {
			return err // started again with backoff, at next
		}
		watch = rec.watchPath()
		lastCheck = time.Time{} // (the new file was opened before the watch was made)
		cw.w, cw.n, whole, full = f, size, size, false
		bw.Reset(cw)
		return nil
	}
	for {
		// Checked before every frame: a ring that always has a frame to
		// read (a busy writer; frames skipped past max_bytes) must not
		// hide drain or ctx.
		if !draining {
			select {
			case <-drain:
				startDrain()
			default:
			}
		}
		if ctx.Err() != nil {
			return stopped()
		}
		if draining && int32(rd.Cursor()-end) >= 0 {
			return flush()
		}
		var fr shm.Frame
		if draining {
			fr, err = rd.TryReadInto(buf)
			if errors.Is(err, shm.ErrWouldBlock) {
				return flush()
			}
		} else {
			// Wake at least every 200 ms to flush and to notice drain.
			fr, err = rd.ReadIntoDeadline(time.Now().Add(200*time.Millisecond), buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if err := flushCheck(); err != nil {
					return err
				}
				continue
			}
		}
		if errors.Is(err, shm.ErrCorrupt) {
			// The reader moved past the slot: it is lost, counted in
			// the next record's lost (stopping here, the recorder would
			// start again at this slot, and meet it again).
			corrupt++
			noteCorrupt(&rec.corruptLog, rec.Log, "recorder "+rec.Path, err)
			continue
		}
		if errors.Is(err, shm.ErrEvicted) && ctx.Err() == nil {
			// A writer freed this reader's entry (it believed it
			// dead, or a process with write access to the segment
			// did): join again at once and go on at the first frame
			// not read, as a recorder started again would, without
			// its backoff: the frames the ring still holds are
			// recorded, the others counted lost in the next record.
			at := rd.Cursor() - corrupt // (the corrupt slots are read, and counted, again)
			rd.Close()
			again, err := ring.NewReader(&shm.ReaderOptions{From: shm.Oldest})
			if err != nil {
				return err // (closing rd again is harmless)
			}
			rd, corrupt = again, 0
			if !rec.resume {
				rec.resume, rec.resumeAt = true, at
			}
			if rec.Log != nil {
				if ok, n := rec.evictLog.allow(time.Second); ok {
					more := ""
					if n > 0 {
						more = fmt.Sprintf(" (%d more not logged)", n)
					}
					rec.Log.Warn(fmt.Sprintf("recorder %s: evicted from the reader table of ring %s (a writer believed it dead); joined again, going on at frame %d%s", rec.Path, ring.Name(), rec.resumeAt, more))
				}
			}
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return stopped()
			}
			if errors.Is(err, shm.ErrClosed) {
				return flush()
			}
			return err
		}
		if rec.resume {
			// Frames before resumeAt are in the file of the recorder
			// this one took over from; those between it and the first
			// frame read here are in neither.
			d := fr.Seq - rec.resumeAt
			if int32(d) < 0 {
				continue
			}
			fr.Lost, rec.resume = d, false
		} else {
			fr.Lost += corrupt
		}
		corrupt = 0
		n := len(fr.Data)
		// Once a frame did not fit, nothing more is appended: a smaller
		// frame after it would leave a hole in the file that no lost
		// count shows.
		if full || rec.MaxBytes > 0 && size+int64(len(hdr)+n) > rec.MaxBytes {
			if !full && rec.Log != nil {
				rec.Log.Warn(fmt.Sprintf("recorder %s reached max_bytes (%d); not recording further frames", rec.Path, rec.MaxBytes))
			}
			full = true
			cnt.lost.Add(uint64(fr.Lost))
			cnt.skipped.Add(1)
		} else {
			if testHookRecord != nil {
				testHookRecord()
			}
			binary.LittleEndian.PutUint32(hdr[0:], uint32(RecordHeaderSize+n))
			binary.LittleEndian.PutUint32(hdr[4:], fr.Seq)
			binary.LittleEndian.PutUint32(hdr[8:], fr.Type)
			binary.LittleEndian.PutUint32(hdr[12:], fr.Flags)
			binary.LittleEndian.PutUint32(hdr[16:], fr.Lost)
			binary.LittleEndian.PutUint64(hdr[20:], uint64(fr.Time))
			bw.Write(hdr[:])
			if _, err := bw.Write(fr.Data); err != nil {
				return flush() // the error sticks: Flush returns it
			}
			size += int64(len(hdr) + n)
			ends.push(size, fr.Seq+1, fr.Lost)
			advance() // the records bw wrote on its own
		}
		// (Also past max_bytes: a full file moved away is noticed while
		// frames come.)
		if now := time.Now(); now.Sub(lastFlush) >= 200*time.Millisecond {
			lastFlush = now
			if err := flushCheck(); err != nil {
				return err
			}
		}
	}
}

// failedAtStop is called once a stop (the shutdown, a reload) has ended
// the recorder after a failure (waiting to start again, or failing in
// its drain) or in the check of its file; why says which. The frames
// from the first its file does not hold whole to the ring's head are in
// no file, and no lost count shows them (a run started again would have
// counted them): they go in left, as those of a drain cut short. A
// recorder that failed before it ever joined its ring recorded nothing
// yet, and a run started again would start afresh: none.
func (rec *Recorder) failedAtStop(ring *shm.Ring, why string) {
	rec.left, rec.leftWhy = 0, ""
	if !rec.nextOK {
		return
	}
	if d := int32(ring.Head() - rec.next); d > 0 {
		rec.left, rec.leftFrom, rec.leftWhy = uint32(d), rec.next, why
	}
}

// open opens the recorder's file for appending, after checking it: a
// regular file of the runtime's user that no other recorder appends to,
// cut back to its last whole record. It returns the file, what it is (to
// notice when the path no longer names it) and its size. The check ends
// with ctx (the stop of the sink), leaving the file as it was.
func (rec *Recorder) open(ctx context.Context) (_ *os.File, _ os.FileInfo, _ int64, err error) {
	// O_NONBLOCK: opening a FIFO (or a device) for writing would block
	// until a reader comes, beyond the reach of ctx, and the stop of this
	// sink (a reload, the shutdown) with it. A FIFO without a reader fails
	// with ENXIO; anything but a regular file is refused below.
	// O_RDWR: the records already in the file are checked (wholeRecords).
	// O_NOCTTY: a terminal at the path (a serial line named by mistake)
	// would otherwise become the controlling terminal of a runtime that
	// is a session leader without one (as systemd starts it), and a
	// hangup on it would signal the runtime.
	// And first, anything but a regular file at the path is refused
	// without being opened: opening a device can act (/dev/watchdog arms
	// the board's watchdog, which then reboots it). The check after the
	// open still catches one put there in between.
	if fi, err := os.Lstat(rec.Path); err == nil && !fi.Mode().IsRegular() {
		return nil, nil, 0, fmt.Errorf("recorder: %s is %s, not a regular file", rec.Path, fileType(fi.Mode()))
	}
	f, err := os.OpenFile(rec.Path, os.O_RDWR|os.O_CREATE|os.O_APPEND|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0o600)
	if errors.Is(err, syscall.ENXIO) {
		return nil, nil, 0, fmt.Errorf("recorder: %s is not a regular file", rec.Path)
	}
	if err != nil {
		return nil, nil, 0, fmt.Errorf("recorder: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, 0, fmt.Errorf("recorder: %s is not a regular file", rec.Path)
	}
	// A file another user made at the path (in a directory others may
	// write, such as /tmp) would hand that user every frame: as with ring
	// segments, the runtime appends only to files it owns.
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return nil, nil, 0, fmt.Errorf("recorder: %s belongs to uid %d, not to this runtime (uid %d): that user could read every frame recorded into it, so it is not appended to; remove it, or record to a path in a directory only the runtime's user may write", rec.Path, st.Uid, os.Geteuid())
	}
	// Two recorders appending to one file (two sinks whose paths name it
	// through a symlinked directory or a hard link, or another runtime's
	// recorder) would interleave their buffered writes, which end in the
	// middle of records, and each would cut the file back to its own idea
	// of its last whole record: a file no replay can read. The lock is
	// taken before anything is cut, and the kernel drops it when the file
	// is closed or the runtime dies.
	if err := withFd(f, func(fd int) error {
		ok, err := tryLock(fd)
		if err == nil && !ok {
			err = fmt.Errorf("%s is appended to by another recorder (it holds the file's lock: another sink of this runtime whose path names the same file, or another edgeipc runtime); two recorders would interleave their records: give each recorder its own file", rec.Path)
		}
		return err
	}); err != nil {
		return nil, nil, 0, fmt.Errorf("recorder: %w", err)
	}
	size := fi.Size()
	// An interrupted write (a power loss, a kill in the middle of a
	// buffered write) can have left part of a record at the end: appending
	// after it would misframe every later record.
	whole, err := wholeRecords(ctx, f, f.Name(), size)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("recorder: %w", err)
	}
	if whole < size {
		if err := f.Truncate(whole); err != nil {
			return nil, nil, 0, fmt.Errorf("recorder: cutting a partial last record: %w", err)
		}
		if rec.Log != nil {
			rec.Log.Warn(fmt.Sprintf("recorder %s: cut %d bytes of a partial last record (an interrupted write) before appending", rec.Path, size-whole))
		}
		size = whole
	}
	return f, fi, size, nil
}

// wholeRecords walks the len32 records of the file f (size bytes, named
// name) and returns the end of the last whole one: less than size when
// the last record is cut short. A file whose first record is not whole,
// or with a record shorter than its header, is not a recorder file: an
// error, so that nothing is appended to (or cut from) a file the path
// names by mistake.
//
// It reads the file in windows of scanWindow bytes and jumps over a
// payload that ends beyond the window instead of reading it: a recording
// of camera frames (hundreds of KiB each, the files that grow to
// gigabytes on an SD card) costs one window per record, not the file.
// A file of small records is read whole, which can take minutes: the
// check stops with ctx's error once ctx is done (a shutdown or a reload
// stops the sink, and is not to wait for it).
func wholeRecords(ctx context.Context, f io.ReaderAt, name string, size int64) (int64, error) {
	notRec := func(off int64, why string) error {
		return fmt.Errorf("%s is not a recorder file (%s at offset %d): move it away or choose another path", name, why, off)
	}
	buf := make([]byte, scanWindow)
	var win []byte // the file's bytes from wOff
	var wOff int64 // where win starts
	var off int64  // the record being checked
	for off < size {
		if size-off < 4 {
			break // cut short in its length
		}
		if off < wOff || off+4 > wOff+int64(len(win)) {
			if err := ctx.Err(); err != nil {
				return 0, fmt.Errorf("checking the records of %s: %w", name, err)
			}
			if testHookScanWindow != nil {
				testHookScanWindow()
			}
			n := int(min(int64(len(buf)), size-off))
			if _, err := f.ReadAt(buf[:n], off); err != nil {
				return 0, err
			}
			win, wOff = buf[:n], off
		}
		n := int64(binary.LittleEndian.Uint32(win[off-wOff:]))
		if n < RecordHeaderSize {
			return 0, notRec(off, fmt.Sprintf("a record of %d bytes", n))
		}
		if size-off-4 < n {
			break // cut short in its payload
		}
		off += 4 + n
	}
	if off < size && off == 0 {
		return 0, notRec(0, "no whole record")
	}
	return off, nil
}

// afterRecorderScan, if set (by tests), runs when a recorder has checked
// its file and not yet joined its ring.
var afterRecorderScan func()

// testHookScanWindow, if set (by tests), runs before wholeRecords reads a
// window of the file: a sleep there stands for a slow disk.
var testHookScanWindow func()

// testHookRecord, if set (by tests), runs before a recorder writes a
// record: a sleep there stands for a slow disk.
var testHookRecord func()

// scanWindow is how much of a recorder file wholeRecords reads at once.
const scanWindow = 64 << 10

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// recordEnds lists, in ascending order, the file offsets where records end
// that are buffered but not yet known to be whole in the file, each with
// the sequence of the frame after its record and the lost count in its
// header. It keeps its array: a slice trimmed from the front and appended
// to at the back moves to a new array every few hundred frames, an
// allocation on the frame path.
type recordEnds struct{ ends []recordEnd }

type recordEnd struct {
	end   int64
	after uint32
	lost  uint32 // the lost field of the record's header
}

func (e *recordEnds) push(end int64, after, lost uint32) {
	e.ends = append(e.ends, recordEnd{end, after, lost})
}

// advance calls whole for each record ending at or below written, in
// order, and drops them.
func (e *recordEnds) advance(written int64, whole func(end int64, after, lost uint32)) {
	k := 0
	for k < len(e.ends) && e.ends[k].end <= written {
		whole(e.ends[k].end, e.ends[k].after, e.ends[k].lost)
		k++
	}
	if k > 0 {
		e.ends = e.ends[:copy(e.ends, e.ends[k:])]
	}
}
