"""sfp.torch: a PyTorch training step stashes its activations in sfpd.

    import sfp.torch
    off = sfp.torch.offload(mantissa=2, exponent=4)     # or offload() for lossless
    for x, y in loader:
        with off:
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step(); opt.zero_grad()

Inside the context every tensor autograd saves for the backward pass goes
through torch.autograd.graph.saved_tensors_hooks. A float32 or bfloat16 CPU
tensor of at least min_bytes is copied into shared memory with sfpd and put
asynchronously (sfpd encodes it into an sfp frame while the forward pass goes
on); autograd keeps only a small handle. In the backward pass the handle gets
the tensor back (sfpd prefetches in backward order). Everything else passes
through untouched. docs/PYTORCH.md is the full description: what is stashed,
how views are handled, how widths are chosen, what happens when sfpd is lost.
"""

import collections
import itertools
import mmap
import os
import socket as _socket
import threading
import time
import warnings
import weakref

import torch

from . import _sfp, Error

__all__ = ["offload", "OffloadWarning", "DaemonLostWarning", "DaemonLost", "StashLost"]


class OffloadWarning(RuntimeWarning):
    """Some tensors stay in process memory (sfpd refused them, or they do not
    fit the shared memory)."""


class DaemonLostWarning(OffloadWarning):
    """sfpd could not be reached or was lost: activations stay in process memory."""


class DaemonLost(Error):
    """sfpd was lost (or refused the connection) and on_loss="raise"."""


class StashLost(Error):
    """An activation was held only by an sfpd that is gone (or that could not
    return it); this backward pass cannot complete. PyTorch 1.13 re-raises
    errors of saved-tensor hooks as RuntimeError, so backward() raises a
    RuntimeError whose message starts with "StashLost:". Skip the step (zero
    the gradients) and go on: later steps keep their activations in process
    memory."""


# libsfpclient errors after which the connection is unusable, and daemon
# statuses that mean the daemon itself is going away or broken.
_LOSS_NAMES = {"SFPC_ETIMEDOUT", "SFPC_EDISCONNECTED", "SFPC_EPROTO", "SFPC_ECONNECT",
               "SFPC_ESYS", "SFPC_ENOMEM"}
_LOSS_STATUS = {"E_SHUTTING_DOWN", "E_INTERNAL", "E_HELLO_REQUIRED", "E_NO_SHM", "E_VERSION",
                "E_PERMISSION", "E_BUSY", "E_UNKNOWN_TYPE", "E_INVALID", "E_RANGE"}

_PAGE = mmap.PAGESIZE
_DTYPES = {torch.float32: ("float32", 4, 23), torch.bfloat16: ("bfloat16", 2, 7)}
_sessions = itertools.count()


def _is_loss(err):
    return err.name in _LOSS_NAMES or getattr(err, "status", None) in _LOSS_STATUS


def _layout(x):
    """How x's elements lie in memory: "contiguous", "dense" (a permutation
    of a contiguous layout, e.g. channels_last: one gap-free span that
    empty_strided can recreate), "gappy" (a view with holes: stored as a
    contiguous copy) or "overlapping" (expanded or aliased: passed through)."""
    if x.is_contiguous():
        return "contiguous"
    dims = sorted((st, sz) for st, sz in zip(x.stride(), x.shape) if sz != 1)
    expect, reach, dense = 1, 0, True
    for st, sz in dims:
        if st <= reach:
            return "overlapping"
        if st != expect:
            dense = False
        expect = st * sz
        reach += st * (sz - 1)
    return "dense" if dense else "gappy"


class _Stash:
    """What autograd keeps instead of a stashed tensor."""

    __slots__ = ("owner", "name", "step", "shape", "stride", "dtype", "dname", "count",
                 "nbytes", "off", "entry", "state", "tensor", "__weakref__")

    @property
    def in_ring(self):
        """Its bytes are still readable in the shared memory."""
        return self.entry is not None and self.entry[3]

    def __del__(self):
        # freed by autograd without being read (no backward, or an error):
        # sfpd still holds the frame; drop it at the next step boundary
        if self.state in ("pending", "stored"):
            self.owner._drops.append((self.name, self.step))


class offload:
    """offload(socket=None, mantissa=None, exponent=None, coder="gecko",
    min_bytes=65536, job=None, on_loss="fallback", *, policy=None,
    bitwave=None, rank=None, timeout=30.0, shm_size=1 GiB, recovery=64 MiB,
    prefetch=0, rounding="rne")

    A reusable context manager: tensors autograd saves while it is entered
    are stashed in sfpd (the node-local daemon at socket, None meaning
    $SFP_SOCKET, else /run/sfpd/sfpd.sock) and fetched back in backward,
    which may run inside or after the context.

    Widths: mantissa and exponent bits of the container (lossless when both
    are None; one of them None means all bits of that field), with the
    exponent coder "plain", "gecko" or "rans" and mantissa rounding "rne",
    "trunc" or "stochastic". policy="bitwave" lets the training loss move one
    network-wide width as sfp-train does: feed it with observe_loss(loss)
    once per step (mantissa/exponent are then the starting widths, bitwave a
    dict of sfp.BitWave settings). A width policy an operator sets for the
    job in sfpd (sfpctl policy set) bounds, pins or freezes the widths and
    may choose the coder.

    What is stashed: float32 and bfloat16 tensors on the CPU of at least
    min_bytes, except parameters and views of them (leaf tensors that
    require grad: they stay in memory anyway).
    Contiguous and gap-free permuted layouts (channels_last, transposes) come
    back with their strides; views with gaps are stored as a contiguous copy
    and come back contiguous; expanded or overlapping tensors, other dtypes,
    other devices (CUDA) and sparse tensors pass through untouched; tensors
    larger than shm_size stay in process memory.

    Memory: stashed tensors travel through shared memory with sfpd, shm_size
    bytes of address space (a sparse memfd: only pages in use are resident).
    The first `recovery` bytes are reused as a ring and stay resident; a
    tensor larger than that uses the space beyond, which is given back.

    Daemon loss: with on_loss="fallback" one DaemonLostWarning is issued and
    every later tensor stays in process memory; tensors sfpd held are read
    back from the shared memory while the ring has not overwritten them
    (up to the last `recovery` bytes put), else unpacking raises StashLost. With on_loss="raise" the failing call raises
    DaemonLost.

    job: the sfpd job id (default "torch-<host>-<pid>"), shown by sfpctl
    stats/tensors and on /metrics; rank: default the torch.distributed rank
    or 0; timeout: seconds any daemon call may take; prefetch: stashes sfpd
    keeps ahead in DRAM during backward (0: sfpd's prefetch_depth).
    """

    def __init__(self, socket=None, mantissa=None, exponent=None, coder="gecko",
                 min_bytes=65536, job=None, on_loss="fallback", *, policy=None,
                 bitwave=None, rank=None, timeout=30.0, shm_size=1 << 30,
                 recovery=64 << 20, prefetch=0, rounding="rne"):
        if on_loss not in ("fallback", "raise"):
            raise Error("invalid argument: on_loss must be 'fallback' or 'raise'")
        if policy not in (None, "fixed", "bitwave"):
            raise Error("invalid argument: policy must be None, 'fixed' or 'bitwave'")
        if bitwave is not None and policy != "bitwave":
            raise Error("invalid argument: bitwave settings need policy='bitwave'")
        if min_bytes < 0 or recovery < 0:
            raise Error("invalid argument: min_bytes and recovery must be >= 0")
        # check the widths, coder and rounding the way every put will use them
        _sfp.encode(b"", mantissa, 8 if exponent is None else exponent, coder, rounding,
                    dtype="float32")
        self.socket = socket
        self.coder = coder
        self.rounding = rounding
        self.min_bytes = int(min_bytes)
        self.on_loss = on_loss
        self.timeout = float(timeout)
        self.shm_size = int(shm_size)
        self.prefetch = int(prefetch)
        self.policy = policy or "fixed"
        if rank is None:
            dist = getattr(torch, "distributed", None)
            rank = dist.get_rank() if dist and dist.is_available() and dist.is_initialized() else 0
        self.rank = int(rank)
        self.job = job or "torch-%s-%d" % (_socket.gethostname(), os.getpid())
        self._m = mantissa
        self._e = exponent
        self._bw = None
        self._bw_step = 0
        if self.policy == "bitwave":
            cfg = dict(bitwave or {})
            if mantissa is not None:
                cfg.setdefault("m_init", mantissa)
            if exponent is not None:
                cfg.setdefault("e_init", exponent)
            # the stashes are activations: they keep 3 mantissa bits, as
            # sfp-train's do under BitWave (--bw-m-min-act; docs/RESULTS.md)
            cfg.setdefault("m_min", min(3, cfg.get("m_init", 7)))
            self._bw = _sfp.BitWave(**cfg)
        self._lock = threading.RLock()
        self._hooks = []
        self._client = None
        self._sid = next(_sessions)
        self._prefix = "" if self._sid == 0 else "s%d." % self._sid
        # shared memory: a ring over [0, recovery) (see _alloc)
        self._pos = 0
        self._ring = collections.deque()   # [lap, off, end, readable] in order
        self._lap = 0
        self._high = 0                     # end of the ring's use beyond `recovery`
        self._recovery = (max(int(recovery), _PAGE) + _PAGE - 1) & ~(_PAGE - 1)
        self._pending = []                 # stashes whose put is not acknowledged
        self._drops = []                   # (name, step) freed unread
        self._recent = {}                  # id(tensor) -> (weakref, version, weakref)
        self._live = weakref.WeakSet()     # stashes sfpd holds
        self._step = 0
        self._seq = 0
        self._backward = False
        self._lost = None                  # the error that lost sfpd
        self._warned = set()
        self._policy_gen = 0
        self._op = None                    # operator policy dict
        self._spills0 = None
        self._closed = False
        self._s = dict(tensors=0, bytes_in=0, bytes_stored=0, in_process=0, passed=0,
                       recovered=0, refused=0, prefetch_hits=0, prefetch_misses=0,
                       put_seconds=0.0, get_seconds=0.0, steps=0)

    # ------------------------------------------------------------ context

    def __enter__(self):
        if self._closed:
            raise Error("invalid argument: this offload is closed")
        if self._lost is not None and self.on_loss == "raise":
            raise self._lost_error()
        with self._lock:
            if self._client is None and self._lost is None:
                self._connect()
        h = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
        h.__enter__()
        self._hooks.append(h)
        return self

    def __exit__(self, et, ev, tb):
        self._hooks.pop().__exit__(et, ev, tb)
        with self._lock:
            if self._client is not None and self._lost is None:
                try:
                    self._sync()
                    self._settle_drops()
                except DaemonLost:
                    if et is None:
                        raise
        # PyTorch re-raises what a hook raised as a RuntimeError: give the
        # with block the DaemonLost it stands for
        if et is not None and self._lost is not None and self.on_loss == "raise" and \
                not isinstance(ev, DaemonLost):
            raise self._lost_error() from ev
        return False

    def _connect(self):
        try:
            self._client = _sfp.Client(self.socket, self.job, self.rank, self.timeout,
                                       self.shm_size, "sfp.torch")
        except Error as e:
            self._lose(e)
            return
        self.socket = self._client.socket
        self._size = self._client.shm_size
        try:
            self._spills0 = self._client.stats()["spills"]
        except Error as e:
            self._lose(e)

    def close(self):
        """Waits for outstanding puts, frees this offload's stashes in sfpd
        and disconnects. Stashes not yet read can no longer be unpacked."""
        with self._lock:
            if self._client is not None and self._lost is None:
                self._sync()
                for h in list(self._live):
                    if h.state == "stored":
                        h.state = "gone"
                        self._drops.append((h.name, h.step))
                self._settle_drops()
            if self._client is not None:
                self._client.close()
            self._closed = True

    # ------------------------------------------------------------- policy

    def observe_loss(self, loss):
        """Feeds this step's training loss (a number or a 0-d tensor) to
        the BitWave controller (policy="bitwave"); a no-op otherwise."""
        if self._bw is None or (self._op and self._op["freeze"]):
            return
        self._bw.observe(self._bw_step, float(loss))
        self._bw_step += 1

    def widths(self, dtype=torch.float32):
        """(mantissa, exponent, coder) the next stash of dtype gets."""
        kmax = _DTYPES[dtype][2]
        if self._bw is not None:
            m, e = self._bw.mantissa, self._bw.exponent
        else:
            m = kmax if self._m is None else self._m
            e = 8 if self._e is None else self._e
        coder = self.coder
        op = self._op
        if op:
            if op["pin"]:
                m, e = op["pin_mantissa"], op["pin_exponent"]
            m = min(max(m, op["min_mantissa"]), op["max_mantissa"])
            e = min(max(e, op["min_exponent"]), op["max_exponent"])
            if op["coder"] >= 0:
                coder = _sfp.coders[op["coder"]]
        return min(m, kmax), e, coder

    # ---------------------------------------------------------------- stats

    def stats(self):
        """This offload's figures: tensors stashed in sfpd (acknowledged puts),
        bytes_in (their raw bytes), bytes_stored (their frame bytes), ratio,
        spills (sfpd's DRAM-to-disk spills since this offload connected, all
        jobs of the daemon), live (stashes sfpd holds now), in_process
        (tensors kept in process memory because sfpd refused or was lost, or
        held NaN/Inf), passed (tensors not eligible, passed through),
        recovered (read back from shared memory after a loss), refused,
        prefetch_hits/misses (gets that found the frame in DRAM or not),
        put_seconds/get_seconds (time the hooks spent), steps, mantissa,
        exponent, coder, lost (None or why sfpd was lost), job, rank, socket."""
        with self._lock:
            d = dict(self._s)
            d["ratio"] = d["bytes_in"] / d["bytes_stored"] if d["bytes_stored"] else 0.0
            d["live"] = len(self._live)
            d["spills"] = 0
            if self._client is not None and self._lost is None and not self._closed:
                try:
                    d["spills"] = self._client.stats()["spills"] - (self._spills0 or 0)
                except Error as e:
                    self._lose(e)
            d["mantissa"], d["exponent"], d["coder"] = self.widths()
            d["lost"] = None if self._lost is None else str(self._lost)
            d.update(job=self.job, rank=self.rank, socket=self.socket)
            return d

    # ---------------------------------------------------------- internals

    def _warn_once(self, key, msg, category=OffloadWarning):
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(msg, category, stacklevel=4)

    def _lose(self, err):
        """sfpd is gone (err is the failed call's sfp.Error): warn once, or
        raise DaemonLost with on_loss="raise"."""
        if self._lost is None:
            self._lost = err
            self._pending = []
        if self.on_loss == "raise":
            raise self._lost_error()
        self._warn_once("lost", "sfpd lost (%s); activations stay in process memory from "
                        "now on" % err, DaemonLostWarning)

    def _lost_error(self):
        err = self._lost
        exc = DaemonLost("sfpd lost: %s" % err)
        exc.code, exc.name = getattr(err, "code", -1), getattr(err, "name", "")
        exc.status = getattr(err, "status", None)
        exc.__cause__ = err
        return exc

    def _alloc(self, n):
        """Offset of n bytes (whole pages) of shared memory.

        The ring reuses the first `recovery` bytes, which stay resident (a
        page fault costs more than copying the page). It starts over when
        nothing in it is needed, or when the next range would pass
        `recovery` (then after the puts in flight have read it). A range
        larger than `recovery` starts at 0 and uses the sparse space beyond;
        those pages are given back when the ring starts over. Entries the
        new range overwrites are no longer readable. None when sfpd was
        lost while waiting (the ring is then left as it is, for recovery)."""
        n = (n + _PAGE - 1) & ~(_PAGE - 1)
        fresh = not self._live and not self._pending
        if fresh or (self._pos and self._pos + n > self._recovery):
            if not fresh:
                self._sync()        # the puts in flight read the ring
                if self._lost is not None:
                    return None
            self._lap += 1
            self._pos = 0
            ring = self._ring
            if fresh or self._high:
                # beyond `recovery`, or nothing needed: forget all of it
                for e in ring:
                    e[3] = False
                ring.clear()
                if self._high and self._client is not None and not self._client.closed:
                    self._client._release(self._recovery, self._high - self._recovery)
                self._high = 0
        off = self._pos
        self._pos = end = off + n
        if end > self._recovery:
            self._high = max(self._high, end)
        ring, lap = self._ring, self._lap
        while ring and (ring[0][0] < lap - 1 or (ring[0][0] == lap - 1 and ring[0][1] < end)):
            ring.popleft()[3] = False
        return off

    def _sync(self):
        """Collects the acknowledgements of the puts in flight. Tensors sfpd
        refused are copied back from the ring (they are still there)."""
        if not self._pending or self._lost is not None:
            return
        pend, self._pending = self._pending, []
        results, err = self._client._flush()
        gen = 0
        for h, (stored, tier, g) in zip(pend, results):
            if tier >= 0:
                if h.state == "pending":
                    h.state = "stored"
                self._s["tensors"] += 1
                self._s["bytes_in"] += h.nbytes
                self._s["bytes_stored"] += stored
                gen = max(gen, g)
            else:
                self._keep(h)
        if err is not None:
            if _is_loss(err):
                self._lose(err)
            else:
                self._s["refused"] += sum(1 for r in results if r[1] < 0)
                self._warn_once(("refused", err.status or err.name),
                                "sfpd refused a stash (%s); keeping such tensors in process "
                                "memory" % err)
        if gen > self._policy_gen and self._lost is None:
            self._policy_gen = gen
            try:
                self._op = self._client.policy()
            except Error as e:
                self._lose(e)

    def _keep(self, h):
        """Copies a stash whose bytes are still in the ring into process memory."""
        if h.tensor is None:
            t = self._empty(h)
            self._client._unstage(h.off, t.data_ptr(), h.nbytes)
            h.tensor = t
        h.state = "local"
        self._live.discard(h)
        self._s["in_process"] += 1

    @staticmethod
    def _empty(h):
        if h.stride is None:
            return torch.empty(h.shape, dtype=h.dtype)
        return torch.empty_strided(h.shape, h.stride, dtype=h.dtype)

    def _settle_drops(self):
        """Drops in sfpd the stashes autograd freed without reading them."""
        if not self._drops:
            return
        drops, self._drops = self._drops, []
        if self._lost is not None or self._client is None or self._client.closed:
            return
        self._sync()
        for name, step in drops:
            try:
                self._client.drop(name, step)
            except Error as e:
                if e.status != "E_NOT_FOUND":
                    if _is_loss(e):
                        self._lose(e)
                        return

    # ---------------------------------------------------------------- hooks

    def _pack(self, x):
        # What autograd keeps must not reference x itself: a saved output
        # holds its grad_fn, and node -> hook object -> x -> node is a
        # cycle through C++ that is never freed. x.detach() shares the data
        # and the version counter.
        h = self._stash(x)
        if h is None:
            self._s["passed"] += 1
        elif h is False:
            self._s["in_process"] += 1
        else:
            return h
        return x.detach()

    def _stash(self, x):
        """A _Stash for x; None if x is not eligible, False if it stays in
        process memory."""
        info = _DTYPES.get(x.dtype)
        if (info is None or x.device.type != "cpu" or x.layout != torch.strided or
                x.numel() * info[1] < self.min_bytes):
            return None
        base = x if x._base is None else x._base
        if base.is_leaf and base.requires_grad:
            return None     # a parameter, or a view of one: it stays alive anyway
        with self._lock:
            if self._backward:
                # first save after a backward pass: a new step
                self._backward = False
                self._step += 1
                self._seq = 0
                self._recent.clear()
                self._s["steps"] += 1
                self._settle_drops()
            if self._lost is not None or self._client is None:
                if self.on_loss == "raise" and self._lost is not None:
                    self._lose(self._lost)
                return False
            r = self._recent.get(id(x))
            if r is not None and r[0]() is x and r[1] == x._version:
                h = r[2]()
                if h is not None and h.state != "gone":
                    return h
            layout = _layout(x)
            nbytes = x.numel() * info[1]
            if layout == "overlapping":
                return None
            if (nbytes + _PAGE - 1) & ~(_PAGE - 1) > self._size:
                self._warn_once("large", "a %d-byte tensor does not fit the %d bytes of shared "
                                "memory; it stays in process memory (raise shm_size)"
                                % (nbytes, self._size))
                return False
            t0 = time.perf_counter()
            src = x.contiguous() if layout == "gappy" else x
            off = self._alloc(nbytes)
            if off is None:                   # lost while waiting for the ring
                return False
            if not self._client._stage(off, src.data_ptr(), nbytes, info[1]):
                return False                  # NaN or Inf: sfp refuses them
            h = _Stash()
            h.owner = self
            h.name = "%sa%d:%s" % (self._prefix, self._seq, "x".join(map(str, x.shape)))
            h.step = self._step
            h.shape = x.shape
            h.stride = x.stride() if layout == "dense" else None
            h.dtype = x.dtype
            h.dname = info[0]
            h.count = x.numel()
            h.nbytes = nbytes
            h.off = off
            h.entry = None
            h.tensor = None
            h.state = "local"
            self._seq += 1
            m, e, coder = self.widths(x.dtype)
            try:
                self._client._put_async(h.name, h.step, off, h.count, h.dname, m, e, coder,
                                        self.rounding, self._step)
            except Error as err:
                if not _is_loss(err):
                    raise
                self._lose(err)
                return False
            h.state = "pending"
            self._pending.append(h)
            self._live.add(h)
            h.entry = [self._lap, off, off + nbytes, True]
            self._ring.append(h.entry)
            self._recent[id(x)] = (weakref.ref(x), x._version, weakref.ref(h))
            if len(self._pending) >= _sfp._PENDING_MAX:
                self._sync()
            self._s["put_seconds"] += time.perf_counter() - t0
            return h

    def _unpack(self, h):
        if isinstance(h, torch.Tensor):
            return h
        with self._lock:
            if h.tensor is not None:
                return h.tensor
            t0 = time.perf_counter()
            if not self._backward:
                self._backward = True
                self._sync()
                if self._lost is None and self._client is not None:
                    try:
                        self._client.prefetch(self.prefetch)
                    except Error as e:
                        self._lose(e)
            elif h.state == "pending":
                self._sync()
            if h.state == "stored" and self._lost is None:
                self._get(h)
            if h.tensor is None:
                self._recover(h)
            self._s["get_seconds"] += time.perf_counter() - t0
            return h.tensor

    def _get(self, h):
        t = self._empty(h)
        own = h.in_ring
        off = h.off if own else self._alloc(h.nbytes)
        if off is None:
            return
        try:
            count, nb, dname, hit = self._client._get_shm(h.name, h.step, off, h.nbytes, True)
        except Error as e:
            if own and e.status not in ("E_NOT_FOUND", "E_CORRUPT", "E_LOST"):
                h.entry[3] = False  # a daemon that did not answer may still write there
            if _is_loss(e):
                self._lose(e)
            else:
                h.state = "gone"
                self._live.discard(h)
                self._warn_once(("get", e.status or e.name),
                                "sfpd could not return a stash (%s)" % e)
            return
        self._live.discard(h)
        if count != h.count or nb != h.nbytes or dname != h.dname:
            h.state = "gone"
            self._warn_once("mismatch", "sfpd returned a stash of another size or type")
            return
        self._client._unstage(off, t.data_ptr(), h.nbytes)
        if not own and off + h.nbytes > self._recovery:
            # a get target beyond the ring: nothing needs those pages now
            a = max(off, self._recovery)
            self._client._release(a, off + h.nbytes - a)
        h.tensor = t
        h.state = "got"
        self._s["prefetch_hits" if hit else "prefetch_misses"] += 1

    def _recover(self, h):
        """After a loss: the stash's bytes from the ring, or StashLost."""
        if h.in_ring and self._client is not None and not self._client.closed:
            self._keep(h)
            self._s["in_process"] -= 1
            self._s["recovered"] += 1
            return
        h.state = "gone"
        self._live.discard(h)
        raise StashLost("activation %s of step %d (%d bytes) was held only by sfpd (%s) and "
                        "is no longer in shared memory: this backward pass cannot complete"
                        % (h.name, h.step, h.nbytes, self._lost or "offload closed"))

    def __repr__(self):
        m, e, coder = self.widths()
        return "<sfp.torch.offload job=%r rank=%d widths=(%d, %d) %s %s>" % (
            self.job, self.rank, m, e, coder,
            "lost" if self._lost is not None else ("connected" if self._client else "idle"))
