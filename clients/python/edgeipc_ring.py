"""edgeipc_ring: pure-Python client for edgeipc rings (ring ABI v1, docs/abi.md).

Open a ring, join it as a reader (copying, never returning a torn frame) or
take its writer lease and publish frames. Only the standard library is used:
mmap, struct, os, and ctypes for three things Python itself lacks.

Atomicity and ordering (read this before trusting the module)
-------------------------------------------------------------
Python has no atomic operations. The module reads and writes the ABI's 32-bit
words through ``memoryview(mmap).cast('I')``: every word is 4-byte aligned,
and CPython loads/stores such an element with one 32-bit machine access,
which is single-copy atomic on x86 and ARM (ARMv6 and later). Payloads are
copied with plain slices; a reader re-checks the slot stamp after the copy
and drops a frame whose stamp changed (counted as lost), so a torn frame is
never returned.

What plain loads and stores cannot do is read-modify-write and ordering:

* compare-and-swap (owner-word claims for reader entries and the writer
  lease) and atomic add (``sleepers``, ``lease_epoch``, ``lost``,
  ``space_value``) come from libatomic (``__atomic_compare_exchange_4``,
  ``__atomic_fetch_add_4``) through ctypes. These are real lock-free CPU
  instructions on the shared mapping, so they interoperate with Go and C.
* memory barriers are libatomic's ``atomic_thread_fence(memory_order_seq_cst)``
  (a real full fence: ``dmb ish`` on ARM, a locked instruction on x86, so it
  also orders a store before a later load, which the sleepers handshake
  needs). With a libatomic older than GCC 7, which lacks that function, a
  sequentially consistent ``__atomic_fetch_add_4`` on a private word stands
  in for it.
* sleeping uses ``syscall(SYS_futex, FUTEX_WAIT)`` through libc (no
  FUTEX_PRIVATE_FLAG: the words are shared between processes).
* a KeyboardInterrupt (or any exception a signal handler raises) in a
  wait leaves no count raised: ``sleepers``, the asleep bit and
  ``space_waiters`` are raised and lowered by the __enter__ and __exit__
  of a ``with`` block, each one libatomic call (_Native.guard), not by an
  add followed by try/finally, between which a handler can run.

If libatomic (Debian: ``apt install libatomic1``) or libc cannot be loaded,
the module degrades instead of pretending: ``Writer`` refuses to open
(the lease needs CAS), ``Reader`` refuses to open on CPUs other than x86
(without barriers the stamp re-check after a copy proves nothing there),
and on x86 ``Reader`` works *unregistered*: it takes no entry
in the reader table (invisible to ``edgeipc ring inspect`` and ignored by a
block-policy writer, so under the block policy it may see frames overwritten,
which are counted as lost), and it waits by polling every ``poll_interval``
seconds. ``NATIVE`` tells which mode you have.

Example::

    import edgeipc_ring as er
    ring = er.Ring("cam0")                  # $EDGEIPC_SHM_DIR or /dev/shm
    rd = ring.reader(oldest=True)
    f = rd.read_wait(timeout=1.0)           # Frame or None on timeout
    if f: print(f.seq, f.type, f.lost, len(f.data))
    rd.close(); ring.close()

    w = er.Ring("cam0").writer()
    seq = w.write(b"hello", type=1)
"""

import ctypes
import ctypes.util
import functools
import mmap
import operator
import os
import platform
import stat
import threading
import time
import weakref
from collections import namedtuple

__all__ = [
    "Ring", "Reader", "Writer", "Frame", "RingError", "NotRingError", "VersionError",
    "CorruptError", "BusyError", "ForeignOwnerError", "FullError", "EvictedError", "TooLargeError", "NATIVE",
]

# ---- ABI v1 constants (docs/abi.md) ------------------------------------

MAGIC = 0x52504945  # "EIPR"
SEM_MAGIC = 0x53504945
ABI_VERSION = 1
HEADER_SIZE = 8192
READERS_OFF = 256
READER_STRIDE = 64
MAX_READERS = 64
SLOT_HEADER = 64
MAX_SLOTS = 1 << 24
MAX_SLOT_SIZE = (64 << 20) + 64  # 64 MiB payload + the slot header
MIN_FILE = 8192  # header_size: a shorter file is still being created
CLAIM = 0x80000000
OVERWRITE, BLOCK = 0, 1
MASK32 = 0xFFFFFFFF

# header
H_MAGIC, H_VERSION, H_HEADER_SIZE, H_SLOT_SIZE, H_SLOT_COUNT = 0, 4, 8, 12, 16
H_MAX_PAYLOAD, H_POLICY, H_MAX_READERS, H_READERS_OFF, H_READER_STRIDE = 20, 24, 28, 32, 36
H_BASE_SEQ, H_READY, H_TOTAL_LO, H_TOTAL_HI, H_CREATOR_PID = 40, 44, 48, 52, 56
H_LEASE_OWNER, H_LEASE_START, H_LEASE_PIDNS, H_LEASE_EPOCH = 64, 68, 72, 76
H_HEAD, H_SLEEPERS, H_EV_SLEEPERS, H_READER_JOINS = 128, 132, 136, 140
H_SPACE_VALUE, H_SPACE_WAITERS, H_WRITER_WAITING = 192, 196, 200
# reader entry
R_OWNER, R_START, R_PIDNS, R_CURSOR, R_LOST, R_FRAMES, R_FLAGS = 0, 4, 8, 12, 16, 20, 24
RF_EVENTFD, RF_ASLEEP = 1, 2  # reader entry flags: waits on an eventfd; counted in a sleeper count
# slot header
S_STAMP, S_LENGTH, S_TYPE, S_FLAGS, S_TIME_LO, S_TIME_HI, S_SEQ = 0, 4, 8, 12, 16, 20, 24

FUTEX_WAIT, FUTEX_WAKE = 0, 1  # never | FUTEX_PRIVATE_FLAG
MAX_SLEEP = 10.0  # seconds: every futex sleep is bounded, then the head is checked again
STALE_WAKES = 64  # a writer whose wakes reached nobody this many times in a row ...
STALE_CHECK_EVERY = 1.0  # ... checks for sleepers that died asleep, at most this often (seconds)


def _sys_futex():
    """SYS_futex for the ABI this process runs in, or None if unknown.

    platform.machine() is the kernel's name (uname -m), not this process's
    ABI: a 32-bit Python on a 64-bit kernel (Raspberry Pi OS's 32-bit
    userland on its 64-bit kernel says aarch64) or a 64-bit one under
    ``setarch linux32`` (i686) would take the other ABI's number, which is
    another system call. So machine() gives the family and the pointer
    size the width. (x32 is not told apart from i386 and is not supported.)
    """
    m = platform.machine().lower()
    wide = ctypes.sizeof(ctypes.c_void_p) == 8
    if m in ("x86_64", "amd64", "i386", "i486", "i586", "i686"):
        return 202 if wide else 240
    if m in ("aarch64", "arm64") or m.startswith("arm"):
        return 98 if wide else 240
    if m == "riscv64" and wide:
        return 98
    return None


class RingError(Exception):
    """Base class of this module's errors."""


class NotRingError(RingError):
    """The segment is not an edgeipc ring (bad magic, not a regular file, too small, never ready)."""


class VersionError(RingError):
    """The ring uses another ABI version or reader-table layout."""


class CorruptError(RingError):
    """Shared memory violates the ABI (header field or slot length)."""


class BusyError(RingError):
    """A live process holds the writer lease (``pid`` says which)."""

    def __init__(self, pid):
        super().__init__("ring already has a live writer (pid %d)" % pid)
        self.pid = pid


class ForeignOwnerError(RingError):
    """The segment belongs to a user that ``owners`` does not list (``uid`` says which)."""

    def __init__(self, path, uid):
        super().__init__("%s belongs to uid %d, a user not trusted here: it could read every frame "
                         "written into it, forge frames and truncate it" % (path, uid))
        self.path = path
        self.uid = uid


class FullError(RingError):
    """All 64 reader entries are held by live readers."""


class EvictedError(RingError):
    """Our reader entry or writer lease was taken over by another process."""


class TooLargeError(RingError):
    """The payload does not fit the ring's slots."""


Frame = namedtuple("Frame", "seq type flags timestamp_ns lost data")
Frame.__doc__ = """One frame: lost is the number of frames missed just before this one."""


# ---- native helpers (ctypes) --------------------------------------------

class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _load(short, soname, use_errno=False):
    """Load a shared library by its usual soname first: ctypes.util.find_library
    runs ldconfig or a compiler, which costs about a second per process."""
    try:
        return ctypes.CDLL(soname, use_errno=use_errno)
    except OSError:
        found = ctypes.util.find_library(short)
        if not found:
            raise
        return ctypes.CDLL(found, use_errno=use_errno)


# x86 keeps loads in program order (TSO): there a reader needs no barrier to
# re-check a slot's stamp after copying its payload. Elsewhere (ARM) it does.
_TSO = platform.machine() in ("x86_64", "amd64", "i386", "i686")


class _Native:
    def __init__(self):
        self.ok = False
        self.why = ""
        try:
            if os.environ.get("EDGEIPC_PY_NO_NATIVE"):
                raise OSError("disabled by EDGEIPC_PY_NO_NATIVE")
            nr = _sys_futex()
            if nr is None:
                raise OSError("unknown SYS_futex number for %s (%d-bit)"
                              % (platform.machine(), 8 * ctypes.sizeof(ctypes.c_void_p)))
            libc = _load("c", "libc.so.6", use_errno=True)
            la = _load("atomic", "libatomic.so.1")
            self._syscall = libc.syscall
            self._syscall.restype = ctypes.c_long
            self._cas = getattr(la, "__atomic_compare_exchange_4")  # getattr: no name mangling
            self._cas.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32), ctypes.c_uint32,
                                  ctypes.c_int, ctypes.c_int]
            self._cas.restype = ctypes.c_bool
            self._add = getattr(la, "__atomic_fetch_add_4")
            self._add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int]
            self._add.restype = ctypes.c_uint32
            # For guard(): the same read-modify-writes as __enter__ (no
            # arguments) and as __exit__ (the exception triple, passed on
            # as three extra pointers that the function does not read).
            rmw = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int
            self._enter_ops, self._exit_ops = {}, {}
            for op in ("add", "or", "and"):
                f = la["__atomic_fetch_%s_4" % op]  # la[...]: a new function object each time
                f.argtypes, f.restype = rmw, None
                self._enter_ops[op] = f
                f = la["__atomic_fetch_%s_4" % op]
                f.argtypes, f.restype = rmw + (ctypes.py_object,) * 3, None
                self._exit_ops[op] = f
            self._nr = nr
            try:
                self._thread_fence = la.atomic_thread_fence  # libatomic >= GCC 7
                self._thread_fence.argtypes = [ctypes.c_int]
                self._thread_fence.restype = None
                self.fence = self._real_fence
            except AttributeError:
                if not _TSO:
                    # On ARM a seq_cst read-modify-write orders the accesses
                    # to its own word, not the loads and stores around it
                    # (LDAXR/STLXR: a later load may pass the store-release).
                    raise OSError("libatomic has no atomic_thread_fence (it is older than GCC 7), and on %s "
                                  "no other call gives a full barrier: install libatomic1 from GCC 7 or later"
                                  % platform.machine())
                # x86: the locked instruction of any read-modify-write is a
                # full barrier.
                self._fence_word = ctypes.c_uint32(0)
                self._fence_addr = ctypes.addressof(self._fence_word)
                self.fence = self._rmw_fence
            self.ok = True
        except (OSError, AttributeError) as e:
            self.why = str(e)

    def cas(self, addr, old, new):
        exp = ctypes.c_uint32(old)
        return bool(self._cas(addr, ctypes.byref(exp), new & MASK32, 5, 5))  # __ATOMIC_SEQ_CST

    def add(self, addr, delta):
        return self._add(addr, delta & MASK32, 5)

    def guard(self, addr, enter, exit):
        """A context manager for ``with``: its __enter__ applies enter, its
        __exit__ exit, each an (op, operand) pair ("add", "or" or "and"),
        to the u32 at addr with one seq_cst libatomic read-modify-write.

        Why not try/finally: a Python signal handler runs between bytecodes
        after a call returns (CPython checks after calls, on loop back
        edges and at function entry), and the exception it raises (Ctrl-C's
        KeyboardInterrupt) can come after ``count += 1`` in shared memory
        and before the ``try`` that takes it back, or in the ``finally``
        before the decrement; the count then stays raised for good. Here
        __enter__ and __exit__ are C callables (functools.partial of a
        ctypes function, no Python frame), and CPython calls __enter__ and
        sets up the block in one step (SETUP_WITH, BEFORE_WITH): no handler
        runs between the raise and the block, nor inside either call.
        (CPython before 3.11 also checks for signals between most other
        bytecodes, so around the block's start and end, and 3.14 releases
        without the fix for gh-148874 right after __enter__: there a window
        of a few bytecodes remains.)

        __exit__ passes the exception triple on as three extra arguments,
        which the C function does not read: the caller pops arguments in
        the C calling conventions of every ABI this module runs on."""
        op_in, v_in = enter
        op_out, v_out = exit
        ns = {
            "__slots__": (),
            # staticmethod: a partial looked up on the class is not bound
            # to the instance (nor does it warn, as Python 3.13's does)
            "__enter__": staticmethod(functools.partial(self._enter_ops[op_in], addr, v_in & MASK32, 5)),
            "__exit__": staticmethod(functools.partial(self._exit_ops[op_out], addr, v_out & MASK32, 5)),
        }
        return type("_Guard", (), ns)()

    def _real_fence(self):
        """Full barrier: atomic_thread_fence(memory_order_seq_cst)."""
        self._thread_fence(5)

    def _rmw_fence(self):
        """Full barrier from a seq_cst read-modify-write on a private word
        (a locked instruction: x86 only, see __init__)."""
        self._add(self._fence_addr, 0, 5)

    def futex_wait(self, addr, val, timeout):
        ts = None
        if timeout is not None:
            t = max(timeout, 0.0)
            ts = ctypes.byref(_Timespec(int(t), int((t - int(t)) * 1e9)))
        self._syscall(ctypes.c_long(self._nr), ctypes.c_void_p(addr), ctypes.c_int(FUTEX_WAIT),
                      ctypes.c_uint32(val), ts, None, ctypes.c_int(0))

    def futex_wake(self, addr, n):
        """Wake up to n waiters; returns how many woke (-1 on error)."""
        return self._syscall(ctypes.c_long(self._nr), ctypes.c_void_p(addr), ctypes.c_int(FUTEX_WAKE),
                             ctypes.c_int(n), None, None, ctypes.c_int(0))


_native = _Native()
NATIVE = _native.ok
"""True when libc and libatomic are loaded: CAS, atomic add, barriers and futex are available."""


# ---- process identity -----------------------------------------------------

def _proc_stat(pid):
    """(state letter, start time low 32 bits, threads) from the stat line of
    PID's main thread, /proc/PID/task/PID/stat (the line /proc/PID/stat
    shows), or None. Not /proc/PID/stat: qemu-user answers a process's reads
    of its own with a line of its own making, whose start time is qemu's
    estimate, ticks off the kernel's, and every other process would take
    this one for dead."""
    try:
        with open("/proc/%d/task/%d/stat" % (pid, pid), "rb") as f:
            b = f.read()
    except OSError:
        return None
    i = b.rfind(b")")
    if i < 0:
        return None
    fields = b[i + 1:].split()
    if len(fields) < 20:
        return None
    return fields[0][:1].decode(), int(fields[19]) & MASK32, int(fields[17])


def _self_pidns():
    try:
        link = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
        return int(link[link.index("[") + 1:link.index("]")]) & MASK32
    except (OSError, ValueError):
        return 0


_boot_offset_cache = []


def _boot_offset():
    """The boottime offset of this process's time namespace in clock ticks
    (USER_HZ = 100), rounded down, low 32 bits; 0 outside one. The kernel
    adds the reader's offset to the start times in /proc/PID/stat: start
    times are stored and compared with it taken off (docs/abi.md)."""
    if not _boot_offset_cache:
        ticks = 0
        try:
            with open("/proc/self/timens_offsets", "rb") as f:
                for line in f.read().split(b"\n"):
                    w = line.split()
                    if len(w) == 3 and w[0] == b"boottime":
                        ticks = (int(w[1]) * 1000000000 + int(w[2])) // 10000000
        except (OSError, ValueError):
            ticks = 0
        _boot_offset_cache.append(ticks & MASK32)
    return _boot_offset_cache[0]


def _self_start():
    st = _proc_stat(os.getpid())
    return (st[1] - _boot_offset()) & MASK32 if st else 0


def holder_alive(owner, start, pidns):
    """Whether an owner word (with its stored start time and pid namespace)
    names a live process. Another pid namespace cannot be checked: alive.
    Where /proc/PID/stat cannot be read (hidepid, no /proc) the kernel is
    asked: alive unless kill(PID, 0) fails with ESRCH."""
    pid = owner & ~CLAIM & MASK32
    if pid == 0 or pid > 1 << 22:
        return False
    self_ns = _self_pidns()
    if pidns and self_ns and pidns != self_ns:
        return True
    st = _proc_stat(pid)
    if st is None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:  # ESRCH
            return False
        except OSError:  # EPERM: it exists
            pass
        return True
    # A zombie has one thread left; a Z with more is a live process whose
    # main thread called pthread_exit.
    if st[0] == "X" or (st[0] == "Z" and st[2] <= 1):
        return False
    if owner & CLAIM or start == 0:  # start 0: the holder could not read its own
        return True
    # Within a tick: time namespaces whose offsets are not whole ticks.
    return (st[1] - _boot_offset() - start) & MASK32 in (0, 1, MASK32)


def _u32(what, v):
    """v as a u32 field of a frame: an integer from 0 to 2^32-1, else
    TypeError or ValueError (never silently cut to 32 bits)."""
    v = operator.index(v)
    if not 0 <= v <= MASK32:
        raise ValueError("frame %s %d does not fit a u32 (0 to %d)" % (what, v, MASK32))
    return v


def _valid_name(name):
    if not name or len(name) > 200 or name[0] in ".-":
        return False
    return all(c.isascii() and (c.isalnum() or c in "._-") for c in name)


# ---- ring ------------------------------------------------------------------

class Ring:
    """A mapped ring: ``Ring(name, dir=None, owners=None)`` or ``Ring(fd=fd)`` (takes the fd).

    ``owners``, if given, are the uids the named segment may belong to:
    another user's is refused with ForeignOwnerError before it is mapped.
    In /dev/shm anyone may create a file under a ring's name, and its owner
    reads what a writer writes into it, can forge frames, and can truncate
    it under the mapping (SIGBUS). A writer should pass its own uid, root's
    (0) and the ring's known owner: ``owners={os.geteuid(), 0}``.
    ``owners=None`` (the default) accepts any owner. An empty collection
    is refused with ValueError: it would trust nobody and refuse every
    ring, which is never what a caller means (C's edgeipc_open_owned
    answers EDGEIPC_EINVAL for a non-NULL owners with n == 0 for the same
    reason). ``owners`` does not apply to ``Ring(fd=fd)``.
    """

    def __init__(self, name=None, dir=None, fd=None, owners=None):
        if fd is None:
            if owners is not None:
                owners = frozenset(owners)
                if not owners:
                    raise ValueError("owners is empty: no uid would be trusted and every ring refused; "
                                     "list the uids to trust (owners={os.geteuid(), 0}) or pass owners=None "
                                     "to accept any owner")
            if not _valid_name(name):
                raise ValueError("ring name %r: 1-200 characters of [A-Za-z0-9._-], not starting with . or -" % name)
            d = dir or os.environ.get("EDGEIPC_SHM_DIR") or "/dev/shm"
            path = os.path.join(d, "edgeipc." + name)
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0))
            if owners is not None:
                uid = os.fstat(fd).st_uid
                if uid not in owners:
                    os.close(fd)
                    raise ForeignOwnerError(path, uid)
        self.name = name
        self._fd = fd
        self._mm = None
        self._w = None
        self._cobj = None
        self._users = weakref.WeakSet()  # open Readers and Writers: close() closes them first
        self._mu = threading.Lock()  # guards _closed and adding to _inside
        self._closed = False
        # The calls of this ring's Readers and Writers in progress: a token
        # per call -> (thread ident, Reader or Writer). close() does not
        # unmap the ring under them. See _enter.
        self._inside = {}
        try:
            # A file shorter than the header is still being created (the
            # creator makes it empty, then sizes and fills it): like magic
            # or ready still 0, wait for it, up to 1 s in all.
            deadline = time.monotonic() + 1.0
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO under the ring's name: nobody is creating it
                raise NotRingError("segment is not a regular file")
            while True:
                size = os.fstat(fd).st_size
                if size >= MIN_FILE:
                    break
                # Magic first: a named semaphore (4096 bytes) or anything
                # else with a magic is not a ring being created.
                b = os.pread(fd, 4, 0) if size >= 4 else b""
                m = int.from_bytes(b, "little") if len(b) == 4 else 0
                if m == SEM_MAGIC:
                    raise NotRingError("segment is a semaphore, not a ring")
                if m not in (0, MAGIC):
                    raise NotRingError("magic %#010x is not an edgeipc ring" % m)
                if time.monotonic() >= deadline:
                    raise NotRingError("ring header never completed (segment still %d bytes after 1 s: "
                                       "creator died?); remove the segment" % size)
                time.sleep(0.01)
            if size < HEADER_SIZE:
                raise NotRingError("segment of %d bytes is too small for a ring" % size)
            try:
                self._mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            except (OverflowError, OSError) as e:  # e.g. over 2 GiB in a 32-bit process
                raise RingError("cannot map the %d-byte segment: %s" % (size, e))
            # Whole words only: the file may end on any byte after the ring.
            self._w = memoryview(self._mm)[:size - size % 4].cast("I")
            self.map_size = size
            self._validate(deadline)
            if _native.ok:
                self._cobj = ctypes.c_char.from_buffer(self._mm)
                self._addr = ctypes.addressof(self._cobj)
                # with self._sleeping: counted in sleepers; with
                # self._space_waiting: in space_waiters (see _Native.guard)
                self._sleeping = _native.guard(self._addr + H_SLEEPERS, ("add", 1), ("add", -1))
                self._space_waiting = _native.guard(self._addr + H_SPACE_WAITERS, ("add", 1), ("add", -1))
        except BaseException:
            self.close()
            raise

    # word access: aligned 32-bit loads/stores
    def _ld(self, off):
        return self._w[off >> 2]

    def _st(self, off, v):
        self._w[off >> 2] = v & MASK32

    def _validate(self, deadline):
        while True:
            m = self._ld(H_MAGIC)
            if m == MAGIC and self._ld(H_READY) == 1:
                break
            if m == SEM_MAGIC:
                raise NotRingError("segment is a semaphore, not a ring")
            if m not in (0, MAGIC):
                raise NotRingError("magic %#010x is not an edgeipc ring" % m)
            if time.monotonic() >= deadline:
                raise NotRingError("ring header never completed (creator pid %d died?); remove the segment"
                                   % self._ld(H_CREATOR_PID))
            time.sleep(0.01)
        v = self._ld(H_VERSION)
        if v != ABI_VERSION:
            raise VersionError("ring ABI version %d, this module speaks %d" % (v, ABI_VERSION))
        if (self._ld(H_READERS_OFF), self._ld(H_READER_STRIDE), self._ld(H_MAX_READERS)) != (
                READERS_OFF, READER_STRIDE, MAX_READERS):
            raise VersionError("reader table layout differs from v1")
        self.header_size = self._ld(H_HEADER_SIZE)
        self.slot_size = self._ld(H_SLOT_SIZE)
        self.slot_count = self._ld(H_SLOT_COUNT)
        self.max_payload = self._ld(H_MAX_PAYLOAD)
        self.policy = self._ld(H_POLICY)
        self.base_seq = self._ld(H_BASE_SEQ)
        self.total_size = self._ld(H_TOTAL_LO) | self._ld(H_TOTAL_HI) << 32
        n = self.slot_count
        checks = [
            ("header_size", self.header_size == HEADER_SIZE),
            ("slot_count", 2 <= n <= MAX_SLOTS and n & (n - 1) == 0),
            ("slot_size", 128 <= self.slot_size <= MAX_SLOT_SIZE and self.slot_size % 64 == 0),
            ("max_payload", self.max_payload == self.slot_size - SLOT_HEADER),
            ("policy", self.policy in (OVERWRITE, BLOCK)),
            ("total_size", self.total_size == self.header_size + n * self.slot_size),
            ("total_size <= file size", self.total_size <= self.map_size),
        ]
        for field, ok in checks:
            if not ok:
                raise CorruptError("ring header field %s is invalid" % field)
        self.mask = n - 1

    def _slot(self, seq):
        return self.header_size + (seq & self.mask) * self.slot_size

    def head(self):
        """Sequence number the next frame will get."""
        return self._ld(H_HEAD)

    # RMW helpers (need _native.ok)
    def _cas(self, off, old, new):
        return _native.cas(self._addr + off, old, new)

    def _add(self, off, delta):
        return _native.add(self._addr + off, delta)

    def _claim(self, owner_off, start_off, ns_off, me):
        """Owner-word claim (docs/abi.md): (True, previous value: 0 or a dead
        holder) when the word holds me|CLAIM, else (False, live holder's PID)."""
        while True:
            v = self._ld(owner_off)
            if v and holder_alive(v, self._ld(start_off), self._ld(ns_off)):
                return False, v & ~CLAIM & MASK32
            if self._cas(owner_off, v, me | CLAIM):
                return True, v

    def _unwrap(self, off):
        """Add back the 1 that a guard's exit subtracted from the count at off
        if that wrapped it below 0 (2^31 and up: docs/abi.md, Sleeping). A
        writer's repair can take a live sleeper's count; the guard subtracts
        plainly (only a C call runs there without a signal window, and
        libatomic has no "subtract unless 0"), and a wrapped count, once the
        next sleeper's add made it 0, made every later sleep last its bound.
        A sleeper that adds between the guard's exit and this CAS still gets
        one late wake."""
        while True:
            v = self._ld(off)
            if v < 0x80000000 or self._cas(off, v, v + 1):
                return

    def _forget_sleeper(self, e):
        """Take back the sleeper count a dead holder may have left in reader
        entry e (docs/abi.md, Sleeping); only with the entry claimed. Once:
        CAS flags to clear the asleep bit, and if that succeeded subtract 1
        from ev_sleepers (eventfd bit set) or sleepers, unless already 0 (a
        count above 64 is garbage and is reset)."""
        f = self._ld(e + R_FLAGS)
        if not f & RF_ASLEEP or not self._cas(e + R_FLAGS, f, f & ~RF_ASLEEP):
            return
        word = H_EV_SLEEPERS if f & RF_EVENTFD else H_SLEEPERS
        while True:
            v = self._ld(word)
            if v == 0 or self._cas(word, v, 0 if v > MAX_READERS else v - 1):
                return

    def _sem_post(self):
        # Add 1 unless the value is already 2^31-1 or more (garbage from
        # another process must not wrap the count to 0).
        while True:
            v = self._ld(H_SPACE_VALUE)
            if v >= 0x7FFFFFFF:
                return
            if self._cas(H_SPACE_VALUE, v, v + 1):
                break
        if self._ld(H_SPACE_WAITERS):
            _native.futex_wake(self._addr + H_SPACE_VALUE, 1)

    def reader(self, oldest=False, register=None, poll_interval=0.001):
        """Join as a reader (see Reader)."""
        return Reader(self, oldest=oldest, register=register, poll_interval=poll_interval)

    def writer(self):
        """Take the writer lease (see Writer)."""
        return Writer(self)

    def _open(self, user, claim):
        """Run claim(), which takes a reader entry or the writer lease for
        user (a new Reader or Writer), as a call of user (see _enter); if
        anything raises, a KeyboardInterrupt included, user._abandon gives
        back what the claim may hold (the pop's return too: after it the
        object is lost)."""
        tok = object()
        try:
            try:
                self._enter(user, tok)
                claim()
            finally:
                self._inside.pop(tok, None)
        except BaseException:
            user._abandon(self)
            raise

    def _enter(self, user, tok):
        """Record a call of user (a Reader or Writer of this ring) that
        touches the mapping, in the calling thread, under the token tok;
        RingError once the ring is closed. A call does::

            tok = object()
            try:
                r._enter(self, tok)
                ...
            finally:
                r._inside.pop(tok, None)

        Not a count raised before the try: a signal handler's exception
        between the two would leave it raised (see _Native.guard). The
        pop is one C call, first in the finally, and does nothing if the
        exception came before _enter recorded the token."""
        t = threading.get_ident()
        with self._mu:
            if self._closed:
                raise RingError("ring %s is closed" % self.name)
            self._inside[tok] = (t, user)

    def _drain(self, user=None, wake=None):
        """Wait up to a second until no other thread is in a call of user
        (None: of any Reader or Writer of the ring), calling wake (which
        ends their sleeps) meanwhile. Returns whether no thread, the
        calling one included, is left in one."""
        me = threading.get_ident()
        deadline = time.monotonic() + 1.0
        while True:
            with self._mu:
                calls = [t for t, u in list(self._inside.values()) if user is None or u is user]
                others = any(t != me for t in calls)
                mine = me in calls
            if not others or time.monotonic() >= deadline:
                return not others and not mine
            if wake is not None:
                wake()
            time.sleep(0.0005)

    def _check_open(self):
        if self._w is None or self._closed:
            raise RingError("ring %s is closed" % self.name)

    def close(self):
        """Close the Readers and Writers opened from the ring (as the Go
        Ring.Close does: they leave the reader table and release the writer
        lease, a call blocked in one of them in another thread is woken
        and raises RingError, and their methods raise RingError from then
        on), then unmap the ring. If a thread is still in one of their
        calls after a second (or close() runs in a signal handler that
        interrupted one), the ring stays mapped for it until a later
        close() or the Ring's end: unmapping it under the call would crash
        Python."""
        with self._mu:
            self._closed = True  # no new call gets in
        for u in list(self._users):
            u.close()
        if self._w is not None and not self._drain():
            self._close_fd()
            return
        for u in list(self._users):  # joined or opened while the first ones closed
            u.close()
        self._cobj = None
        if self._w is not None:
            self._w.release()
            self._w = None
        if self._mm is not None:
            self._mm.close()
            self._mm = None
        self._close_fd()

    def _close_fd(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- reader ------------------------------------------------------------------

class Reader:
    """A reader. ``register`` (default: when native helpers exist) takes a
    reader-table entry; an unregistered reader is invisible to writers."""

    def __init__(self, ring, oldest=False, register=None, poll_interval=0.001):
        self._closing = False  # close() has begun: a sleeping call stops
        self.r = None
        self.index = None
        self._trying = None  # the entry being claimed (see _abandon)
        ring._check_open()
        ring._open(self, lambda: self._join(ring, oldest, register, poll_interval))

    def _abandon(self, ring):
        """Free the entry a join that failed may hold: an exception (such
        as Ctrl-C's KeyboardInterrupt, raised by a signal handler between
        any two calls) after the claim left it held by this live process,
        for good (a block-policy writer waits for its cursor). Before the
        entry is recorded in index, only a claim (our PID | CLAIM) in the
        entry being tried can be ours (another thread's join that claimed
        the same entry at that moment would lose it too). An exception
        in the caller right after the constructor returned still loses the
        object with its entry (held until the process exits)."""
        ring._users.discard(self)
        self.r = None
        tok = object()
        try:
            ring._enter(self, tok)  # RingError if closed meanwhile: nothing to free in an unmapped ring
            if self.index is not None:
                e = self._e
                if not ring._cas(e + R_OWNER, self.me | CLAIM, 0):
                    ring._cas(e + R_OWNER, self.me, 0)
            elif self._trying is not None:
                ring._cas(self._trying + R_OWNER, self.me | CLAIM, 0)
        except RingError:
            pass
        finally:
            ring._inside.pop(tok, None)

    def _join(self, ring, oldest, register, poll_interval):
        self.r = self._ring = ring
        self.me = os.getpid()
        self.poll_interval = poll_interval
        self.max_sleep = MAX_SLEEP  # bound of one futex sleep (at most MAX_SLEEP)
        self.frames = self.lost = self.corrupt = 0
        self._pending = 0
        self.index = None
        if register is None:
            register = _native.ok
        if register and not _native.ok:
            raise RingError("joining the reader table needs libatomic (%s); install libatomic1 or pass register=False"
                            % _native.why)
        if not _native.ok and not _TSO:
            raise RingError("reading on %s needs libatomic's barriers to tell a torn frame from a whole one (%s); "
                            "install libatomic1" % (platform.machine(), _native.why))
        if register:
            for i in range(MAX_READERS):
                e = READERS_OFF + i * READER_STRIDE
                self._trying = e
                ok, prev = ring._claim(e + R_OWNER, e + R_START, e + R_PIDNS, self.me)
                if ok:
                    self.index, self._e = i, e
                    # with self._asleep: the asleep bit of the entry set
                    self._asleep = _native.guard(ring._addr + e + R_FLAGS, ("or", RF_ASLEEP), ("and", ~RF_ASLEEP))
                    if prev:  # taken over from a dead holder, who may have died asleep
                        ring._forget_sleeper(e)
                    break
                self._trying = None  # held by another (maybe this process's other thread, claiming it)
            else:
                raise FullError("all %d reader entries are held by live readers" % MAX_READERS)
            ring._st(self._e + R_START, _self_start())
            ring._st(self._e + R_PIDNS, _self_pidns())
        head = ring.head()
        c = self._start(head, oldest)
        self.cursor = c
        if register:
            ring._st(self._e + R_CURSOR, self.cursor)
            ring._st(self._e + R_LOST, 0)
            ring._st(self._e + R_FRAMES, 0)
            ring._st(self._e + R_FLAGS, 0)
            _native.fence()  # the entry before the owner word
            ring._st(self._e + R_OWNER, self.me)
            # Tell a block-policy writer that caches its space check to scan
            # the table again: this reader may start behind what it last saw.
            ring._add(H_READER_JOINS, 1)
            # Frames committed since we read head were written while the
            # writer may not have seen us. From the oldest, the oldest may
            # be gone: start after them rather than report them lost. From
            # the newest, they are ours and still in their slots unless the
            # writer went a whole ring further.
            h2 = ring.head()
            if h2 != head and (oldest or (h2 - head) & MASK32 >= ring.slot_count):
                c2 = self._start(h2, oldest)
                if c2 != c and (c2 - c) & MASK32 < 0x80000000:
                    self.cursor = c2
                    ring._st(self._e + R_CURSOR, c2)
        ring._users.add(self)

    def _start(self, head, oldest):
        """The first frame a reader joining at head reads: head itself
        (newest), or the oldest frame still in the ring."""
        ring = self.r
        if not oldest:
            return head & MASK32
        if (head - ring.base_seq) & MASK32 < ring.slot_count:
            return ring.base_seq
        c = (head - ring.slot_count) & MASK32
        # A writer may already have opened this slot for frame head (odd
        # stamp): that frame is gone, start after it.
        if ring._ld(ring._slot(c) + S_STAMP) != (c << 1) & MASK32:
            c = (c + 1) & MASK32
        return c

    def _advance(self, c):
        r = self._ring
        self.cursor = c & MASK32
        if self.index is None:
            return
        r._st(self._e + R_CURSOR, self.cursor)
        if r.policy == BLOCK:
            # The store must be ordered before the load of writer_waiting
            # (seq_cst, docs/abi.md), as the writer stores writer_waiting
            # before it re-reads the cursors: otherwise each may miss the
            # other and the writer sleeps its 100 ms timeout.
            self._fence()
            if r._ld(H_WRITER_WAITING) == 1 and r._cas(H_WRITER_WAITING, 1, 0):
                r._sem_post()

    def _lose(self, n):
        self._pending += n
        self.lost += n
        if self.index is not None:
            self._ring._add(self._e + R_LOST, n)

    def _fence(self):
        if _native.ok:
            _native.fence()

    def read(self):
        """The next frame (a copy), or None if there is none yet. Frames
        overwritten while being copied are dropped and counted as lost."""
        r = self.r
        if r is None:
            raise RingError("reader is closed")
        tok = object()
        try:
            r._enter(self, tok)
            return self._read(r)
        finally:
            r._inside.pop(tok, None)  # first: see Ring._enter

    def _read(self, r):
        if self.index is not None and r._ld(self._e + R_OWNER) != self.me:
            raise EvictedError("reader entry %d was taken over" % self.index)
        for _ in range(64):
            c = self.cursor
            h = r.head()
            if h == c:
                return None
            lag = (h - c) & MASK32
            if lag > 0x80000000:  # head went backwards: follow it
                self._advance(h)
                return None
            if lag > r.slot_count:  # lapped by the writer
                self._lose(lag - r.slot_count)
                c = (h - r.slot_count) & MASK32
                self._advance(c)
            s = r._slot(c)
            st = r._ld(s + S_STAMP)
            self._fence()
            if st != (c << 1) & MASK32 or r._ld(s + S_SEQ) != c:
                self._lose(1)
                self._advance(c + 1)
                continue
            n = r._ld(s + S_LENGTH)
            if n > r.max_payload:
                self._fence()
                if r._ld(s + S_STAMP) == st:
                    self.corrupt += 1
                    self._advance(c + 1)
                    raise CorruptError("slot %d length %d > max payload %d" % (c & r.mask, n, r.max_payload))
                self._lose(1)
                self._advance(c + 1)
                continue
            typ, flags = r._ld(s + S_TYPE), r._ld(s + S_FLAGS)
            ts = r._ld(s + S_TIME_LO) | r._ld(s + S_TIME_HI) << 32
            if ts >= 1 << 63:
                ts -= 1 << 64
            data = r._mm[s + SLOT_HEADER:s + SLOT_HEADER + n]
            self._fence()  # load→load barrier before the re-check
            if r._ld(s + S_STAMP) != st:
                self._lose(1)
                self._advance(c + 1)
                continue
            f = Frame(c, typ, flags, ts, self._pending, data)
            self._pending = 0
            self.frames += 1
            self._advance(c + 1)
            if self.index is not None and self.frames % 64 == 0:
                r._st(self._e + R_FRAMES, self.frames)
            return f
        return None

    def wait(self, timeout=None):
        """Sleep until the head moves past the cursor (futex when native
        helpers exist and the reader is registered, else polling every
        poll_interval) or timeout seconds (None: forever)
        pass. Each futex sleep lasts at most max_sleep seconds (MAX_SLEEP,
        10 s, unless set lower), then the head is checked again: a lost
        wake-up costs one late frame, not a reader asleep forever.
        RingError if the reader is closed, also by another thread while
        this one waits."""
        r = self.r
        if r is None:
            raise RingError("reader is closed")
        tok = object()
        try:
            r._enter(self, tok)
            self._wait(r, timeout)
        finally:
            r._inside.pop(tok, None)  # first: see Ring._enter

    def _wait(self, r, timeout):
        c = self.cursor
        deadline = None if timeout is None else time.monotonic() + timeout
        while r.head() == c:
            if self._closing:
                raise RingError("reader is closed")
            t = min(self.max_sleep, MAX_SLEEP) if self.max_sleep > 0 else MAX_SLEEP
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                t = min(t, left)
            if not _native.ok or self.index is None:
                # Unregistered: no entry to mark asleep, so a count raised
                # here could never be taken back if this process died
                # asleep (every commit would then make a futex call): poll.
                time.sleep(min(self.poll_interval, t))
                continue
            e = self._e
            if r._ld(e + R_OWNER) != self.me:
                return  # evicted: read() raises EvictedError; the entry is not ours to mark
            # The asleep bit before raising the count, cleared after
            # lowering it: whoever finds us dead with it set takes the count
            # back. Both with guards, not try/finally: an exception from a
            # signal handler (Ctrl-C) must not leave the count raised, nor
            # the bit set (see _Native.guard).
            try:
                with self._asleep, r._sleeping:  # raise before re-checking head; the guards take back, not this try
                    _native.fence()  # store→load: the count before the head re-read (seq_cst)
                    if r.head() == c and not self._closing:  # close() wakes us after setting it
                        _native.futex_wait(r._addr + H_HEAD, c, t)
            finally:
                r._unwrap(H_SLEEPERS)

    def read_wait(self, timeout=None):
        """read() that waits up to timeout seconds (None: forever); None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            f = self.read()
            if f is not None:
                return f
            left = None
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
            self.wait(left)

    def close(self):
        """Leave the reader table. A read_wait or wait of this reader
        blocked in another thread is woken first and raises RingError."""
        r = self.r
        if r is None:
            return
        self._closing = True
        wake = None
        if self.index is not None:  # registered: its waits sleep on the head futex
            def wake():
                _native.futex_wake(r._addr + H_HEAD, 0x7FFFFFFF)
        r._drain(self, wake)
        if self.index is not None:
            if r._ld(self._e + R_OWNER) == self.me:  # evicted: the entry is another's now
                r._st(self._e + R_FRAMES, self.frames)
                r._st(self._e + R_FLAGS, 0)
            r._cas(self._e + R_OWNER, self.me, 0)
            if r.policy == BLOCK and r._cas(H_WRITER_WAITING, 1, 0):
                r._sem_post()
        r._users.discard(self)
        self.r = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- writer ------------------------------------------------------------------

EVICT_EVERY = 0.1  # seconds between dead-reader scans while blocked


class Writer:
    """The ring's single writer. Raises BusyError if a live process holds
    the lease; a dead holder's lease is reclaimed. A frame the previous
    writer committed but died before publishing (the slot of head stamped
    head << 1 with seq == head) is published, not reused: readers may
    already have taken it by its stamp. After STALE_WAKES commits in a row
    whose wake reached nobody (at most once a second) it takes back the
    sleeper counts of readers that died asleep and frees their entries."""

    def __init__(self, ring):
        if not _native.ok:
            raise RingError("the writer lease needs compare-and-swap from libatomic (%s); install libatomic1"
                            % _native.why)
        self._closing = False  # close() has begun: a write waiting for space stops
        self.r = None
        self.me = os.getpid()
        self._claiming = False  # the lease word may hold our claim (see _abandon)
        self._published = False  # the lease word holds our claim or our PID
        ring._check_open()
        ring._open(self, lambda: self._take(ring))

    def _abandon(self, ring):
        """Release the lease an open that failed may hold: an exception
        (such as Ctrl-C's KeyboardInterrupt, raised by a signal handler
        between any two calls) after the claim left it held by this live
        process, and every writer, this one's next try too, got BusyError.
        Before the lease is published only our claim (PID | CLAIM) can be
        ours, and only while we try to claim: our PID alone may be another
        Writer's of this process, PID | CLAIM another thread's claim (then
        ours failed with BusyError). An exception in the caller right
        after the constructor returned still loses the object with the
        lease (held until the process exits)."""
        ring._users.discard(self)
        self.r = None
        tok = object()
        try:
            ring._enter(self, tok)  # RingError if closed meanwhile: nothing to free in an unmapped ring
            if self._claiming and not ring._cas(H_LEASE_OWNER, self.me | CLAIM, 0) and self._published:
                ring._cas(H_LEASE_OWNER, self.me, 0)
        except RingError:
            pass
        finally:
            ring._inside.pop(tok, None)

    def _take(self, ring):
        self._claiming = True
        ok, got = ring._claim(H_LEASE_OWNER, H_LEASE_START, H_LEASE_PIDNS, self.me)
        if not ok:
            self._claiming = False  # held by another (maybe this process's other thread, claiming it)
            raise BusyError(got)
        ring._st(H_LEASE_START, _self_start())
        ring._st(H_LEASE_PIDNS, _self_pidns())
        ring._add(H_LEASE_EPOCH, 1)
        self._published = True
        ring._st(H_LEASE_OWNER, self.me)
        self.r = self._ring = ring
        ring._users.add(self)
        _native.fence()  # the lease before the loads below
        h = ring.head()
        off = ring._slot(h)
        st = ring._ld(off + S_STAMP)
        _native.fence()  # acquire: the stamp before the slot's seq
        if st == (h << 1) & MASK32 and ring._ld(off + S_SEQ) == h:
            # The last writer died between its commit's stamp and head stores.
            h = (h + 1) & MASK32
            ring._st(H_HEAD, h)
            _native.fence()  # seq_cst: the head store before the sleepers load
        # It may also have died between its head store and its wake: wake
        # the readers asleep on the head it moved.
        if ring._ld(H_SLEEPERS):
            _native.futex_wake(ring._addr + H_HEAD, 0x7FFFFFFF)
        self.seq = h
        self._idle_wakes = 0  # consecutive commits whose FUTEX_WAKE woke nobody
        self._stale_at = None  # time.monotonic() of the last stale-sleeper check
        # Block policy: no cached space check yet, so the first frame scans
        # the reader table (readers may be up to a ring behind head).
        self._min = (h - ring.slot_count) & MASK32
        self._joins = 0

    def _slowest(self, s):
        r = self._ring
        best = s
        for i in range(MAX_READERS):
            e = READERS_OFF + i * READER_STRIDE
            o = r._ld(e + R_OWNER)
            if o == 0 or o & CLAIM:
                continue
            c = r._ld(e + R_CURSOR)
            lag = (s - c) & MASK32
            # ignore a cursor ahead of s; one more than a ring behind (a
            # reader that joined while we went on) fills the ring
            if lag <= 0x80000000 and lag > (s - best) & MASK32:
                best = c
        return best

    def _scan(self, s):
        """Scan the reader table and cache the slowest cursor, with the value
        of reader_joins loaded before the scan."""
        r = self._ring
        self._joins = r._ld(H_READER_JOINS)
        _native.fence()  # acquire: reader_joins before the entries
        self._min = self._slowest(s)

    def _has_space(self, s):
        r = self._ring
        n = r.slot_count
        # The cached scan proves that frame s fits while its slowest cursor
        # is less than a ring behind s and no reader has joined since (one
        # that joins from the oldest frame starts behind every cursor the
        # scan saw); readers that advance or leave only make room.
        if (s - self._min) & MASK32 < n:
            j = r._ld(H_READER_JOINS)
            _native.fence()  # acquire: reader_joins before the slot is reused
            if j == self._joins:
                return True
        self._scan(s)
        return (s - self._min) & MASK32 < n

    def _reap_if_dead(self, e, o):
        """Free reader entry e, whose owner word read o, if its holder is
        dead (docs/abi.md, Owner words): claim first, take back the sleeper
        count the holder may have left, then free the entry. A reader that
        takes the entry over meanwhile keeps it: its claim or ours fails."""
        r = self._ring
        if o and not holder_alive(o, r._ld(e + R_START), r._ld(e + R_PIDNS)) \
                and r._cas(e + R_OWNER, o, self.me | CLAIM):
            r._forget_sleeper(e)
            r._st(e + R_OWNER, 0)

    def _evict_dead(self):
        """Free the entries of readers that died (block policy, ring full)."""
        for i in range(MAX_READERS):
            e = READERS_OFF + i * READER_STRIDE
            self._reap_if_dead(e, self._ring._ld(e + R_OWNER))

    def _repair_sleepers(self):
        """Take back the sleeper counts of readers that died asleep
        (docs/abi.md, Sleeping): without it every later commit would make a
        FUTEX_WAKE for nobody. A count above 64 is garbage and is reset;
        otherwise only what a dead entry is known to hold (its asleep bit)
        is subtracted, so a live reader that wakes and sleeps again during
        the scan keeps its count."""
        r = self._ring
        for word in (H_SLEEPERS, H_EV_SLEEPERS):
            v = r._ld(word)
            if v > MAX_READERS:
                r._cas(word, v, 0)
        for i in range(MAX_READERS):
            e = READERS_OFF + i * READER_STRIDE
            o = r._ld(e + R_OWNER)
            if o and r._ld(e + R_FLAGS) & RF_ASLEEP:
                self._reap_if_dead(e, o)

    def _wait_space(self, s, deadline):
        r = self._ring
        try:
            self._wait_space_flagged(r, s, deadline)
        finally:
            # writer_waiting = 0 however the wait ends (an exception too):
            # an inline store, no call a signal handler could come before
            r._w[H_WRITER_WAITING >> 2] = 0

    def _wait_space_flagged(self, r, s, deadline):
        next_evict = time.monotonic() + EVICT_EVERY
        while True:
            if self._closing:
                raise RingError("writer is closed")
            r._st(H_WRITER_WAITING, 1)
            _native.fence()
            if self._has_space(s):
                return
            # A unit taken from space_value need not bring space (another
            # process may have stored any count there): evict and check the
            # deadline below after it too, or a run of units never does.
            v = r._ld(H_SPACE_VALUE)
            if not (v > 0 and r._cas(H_SPACE_VALUE, v, v - 1)):
                now = time.monotonic()
                t = next_evict - now
                if deadline is not None:
                    t = min(t, deadline - now)
                if t > 0:
                    try:
                        with r._space_waiting:  # the guard takes the count back, not this try: see _Native.guard
                            if r._ld(H_SPACE_VALUE) == 0 and not self._closing:  # close() wakes us after setting it
                                _native.futex_wait(r._addr + H_SPACE_VALUE, 0, t)
                    finally:
                        r._unwrap(H_SPACE_WAITERS)
            now = time.monotonic()
            if now >= next_evict:
                self._evict_dead()
                self._scan(s)
                next_evict = now + EVICT_EVERY
            if deadline is not None and now >= deadline and not self._has_space(s):
                raise TimeoutError("ring full: a reader has not released a slot")

    def write(self, data, type=0, flags=0, timeout=None):
        """Publish one frame and return its sequence number. Under the block
        policy wait up to timeout seconds (None: forever) for space. type
        and flags are u32: ValueError outside 0 to 2^32-1. RingError if the
        writer is closed, also by another thread while this one waits."""
        r = self.r
        if r is None:
            raise RingError("writer is closed")
        tok = object()
        try:
            r._enter(self, tok)
            return self._write(r, data, type, flags, timeout)
        finally:
            r._inside.pop(tok, None)  # first: see Ring._enter

    def _write(self, r, data, type, flags, timeout):
        type, flags = _u32("type", type), _u32("flags", flags)
        data = memoryview(data).cast("B")
        n = len(data)
        if n > r.max_payload:
            raise TooLargeError("%d bytes, slots hold at most %d" % (n, r.max_payload))
        s = self.seq
        if r.policy == BLOCK and not self._has_space(s):
            self._wait_space(s, None if timeout is None else time.monotonic() + timeout)
        if r._ld(H_LEASE_OWNER) != self.me:
            raise EvictedError("writer lease was taken over by pid %d" % (r._ld(H_LEASE_OWNER) & ~CLAIM))
        off = r._slot(s)
        r._st(off + S_STAMP, (s << 1) | 1)
        _native.fence()  # store→store barrier before the payload
        r._mm[off + SLOT_HEADER:off + SLOT_HEADER + n] = data
        now = time.monotonic_ns()  # CLOCK_MONOTONIC
        r._st(off + S_LENGTH, n)
        r._st(off + S_TYPE, type)
        r._st(off + S_FLAGS, flags)
        r._st(off + S_TIME_LO, now)
        r._st(off + S_TIME_HI, now >> 32)
        r._st(off + S_SEQ, s)
        _native.fence()  # release: everything above before the even stamp
        r._st(off + S_STAMP, s << 1)
        _native.fence()  # the stamp before the head (a reader that sees head must see the frame)
        # The writer's own count first: an interrupt (Ctrl-C) between the
        # two then leaves frame s complete but unannounced, and the next
        # write publishes s+1 with it; the other way round, the next write
        # would overwrite the published frame s under the same head.
        self.seq = (s + 1) & MASK32
        r._st(H_HEAD, s + 1)
        _native.fence()  # seq_cst: store head before loading sleepers
        if r._ld(H_SLEEPERS):
            if _native.futex_wake(r._addr + H_HEAD, 0x7FFFFFFF) == 0:
                self._idle_wakes += 1
            else:
                self._idle_wakes = 0
        if self._idle_wakes >= STALE_WAKES:
            # Wakes for nobody: a reader may have died asleep, its count
            # left behind. Take such counts back, at most once a second.
            t = time.monotonic()
            if self._stale_at is None or t - self._stale_at >= STALE_CHECK_EVERY:
                self._idle_wakes = 0
                self._stale_at = t
                self._repair_sleepers()
        return s

    def close(self):
        """Release the writer lease. A write of this writer waiting for
        space in another thread is woken first and raises RingError."""
        r = self.r
        if r is None:
            return
        self._closing = True

        def wake():
            _native.futex_wake(r._addr + H_SPACE_VALUE, 0x7FFFFFFF)
        r._drain(self, wake)
        if not r._cas(H_LEASE_OWNER, self.me, 0):
            r._cas(H_LEASE_OWNER, self.me | CLAIM, 0)
        r._users.discard(self)
        self.r = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
