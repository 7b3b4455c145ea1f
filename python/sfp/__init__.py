"""sfp: adaptive floating-point containers (libsfp) and the sfpd stash daemon.

    import sfp
    frame = sfp.encode(x, mantissa=2, exponent=4)     # bytes, docs/FORMAT.md
    y = sfp.decode(frame, shape=x.shape)              # numpy float32
    sfp.info(frame)                                   # header fields, sizes

    with sfp.Client(job="demo") as c:                 # sfpd over $SFP_SOCKET
        c.put("act0", x, mantissa=7)
        y = c.get("act0", shape=x.shape, drop=True)

    import sfp.torch                                  # PyTorch offload
    with sfp.torch.offload():
        loss = model(batch).sum()
    loss.backward()

Errors raise sfp.Error, a ValueError carrying code, name and status.
The work happens in C (sfp._sfp over libsfp and libsfpclient) with the GIL
released. docs/PYTORCH.md describes the package.
"""

from . import _sfp
from ._sfp import Error, BitWave

__all__ = ["encode", "decode", "info", "Client", "Error", "BitWave", "coders"]
__version__ = _sfp.version()

#: exponent coders libsfp knows ("plain", "gecko", "rans")
coders = _sfp.coders


def _as_buffer(data, dtype):
    """(buffer, dtype) for data: torch tensors become numpy views of their
    memory (bfloat16 as its 16-bit patterns); everything else must have the
    buffer protocol."""
    mod = type(data).__module__ or ""
    if mod == "torch" or mod.startswith("torch."):
        import torch
        t = data.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        t = t.contiguous()
        if t.dtype == torch.float32:
            return t.numpy(), dtype
        if t.dtype == torch.bfloat16:
            if dtype not in (None, "bfloat16", "bf16"):
                raise Error("invalid argument: a bfloat16 tensor with dtype=%r" % (dtype,))
            return t.view(torch.int16).numpy(), "bfloat16"
        raise Error("invalid argument: sfp encodes float32 and bfloat16 tensors, not %s"
                    % t.dtype)
    return data, dtype


def encode(data, mantissa=None, exponent=8, coder="gecko", rounding="rne", *,
           dtype=None, group=0, seed=0, anchor=-1, zmap="bitmap"):
    """Encodes the values of data into one frame (bytes, docs/FORMAT.md).

    data: a float32 numpy array, a torch tensor (float32 or bfloat16), or any
    object with the buffer protocol. A buffer whose format is not 'f' (e.g.
    bytes, or a uint16 array holding bfloat16 bit patterns) needs dtype=
    "float32" or "bfloat16". Non-contiguous buffers are copied first.
    mantissa: kept mantissa bits (None: all, i.e. 23 for float32 and 7 for
    bfloat16); exponent: exponent window bits 1..8 (8 keeps every exponent);
    coder: "plain", "gecko", "rans", or "auto" (the smaller of a Gecko and a
    rANS frame); rounding: "rne", "trunc" or
    "stochastic" (with seed); group: Gecko group size (0: 16); anchor: -1 for
    the tensor's largest exponent, or a fixed biased exponent 0..254;
    zmap: "bitmap" or "huffman" (the zero map Huffman-coded where that is
    smaller: zeros in runs cost less, docs/FORMAT.md 2.4.1).
    With the default widths the frame is lossless. Raises sfp.Error for bad
    arguments and values libsfp refuses (NaN, Inf).
    """
    buf, dtype = _as_buffer(data, dtype)
    return _sfp.encode(buf, mantissa, exponent, coder, rounding, dtype=dtype,
                       group=group, seed=seed, anchor=anchor, zmap=zmap)


def _array(buf, count, dtype, shape):
    import numpy
    a = numpy.frombuffer(buf, dtype=numpy.float32 if dtype == "float32" else numpy.uint16,
                         count=count)
    return a.reshape(shape) if shape is not None else a


def decode(frame, shape=None, *, out=None, raw=False):
    """Decodes one frame into a numpy array.

    The values come back as float32 (a bfloat16 frame is widened exactly),
    flat, or reshaped to shape. With raw=True a bfloat16 frame gives uint16
    bit patterns instead (torch.from_numpy(a).view(torch.bfloat16)). out: a
    writable C-contiguous buffer to decode into (a numpy array is returned
    viewing it). The frame is verified (header, checksum, every plane)
    before any value is returned; a bad frame raises sfp.Error.
    """
    buf, count, dtype = _sfp.decode(frame, out, raw)
    return _array(buf, count, dtype, shape)


def info(frame):
    """What a frame's header says (after checking it and its checksum):
    dtype, count, nonzero, mantissa, exponent, anchor, coder, group, flags,
    sizes (bytes per plane), frame_bytes, raw_bytes, ratio, bits_per_value,
    version, checksum."""
    return _sfp.info(frame)


class Client(_sfp.Client):
    """Client(socket=None, job=None, rank=0, timeout=5.0, shm_size=64 MiB, name="python")

    One connection to sfpd (docs/PROTOCOL.md) over its Unix socket: socket
    None means $SFP_SOCKET, else /run/sfpd/sfpd.sock; job None means
    "py-<host>-<pid>". Every call is bounded by timeout seconds. Tensors
    travel through a shared-memory region of shm_size bytes, which bounds
    the largest tensor of put and get. Daemon errors raise sfp.Error whose
    status is the daemon's status name ("E_NOT_FOUND", ...); local failures
    (timeout, lost connection) have status None and name "SFPC_ETIMEDOUT",
    "SFPC_EDISCONNECTED", ... Usable as a context manager (closes on exit).
    One object may be shared by threads (calls are serialised).

    put(tensor, data, step=0, *, mantissa=None, exponent=8, coder="gecko",
        rounding="rne", dtype=None, seed=0, anchor=-1, group=0) -> dict
        stores data (as sfp.encode takes it) under (rank, step, tensor);
        returns stored_bytes, tier (0 DRAM, 1 disk), policy_generation.
    drop(tensor, step=0); prefetch(depth=0); flush(); end_job();
    stats() -> dict; policy() -> dict; close()
    """

    def put(self, tensor, data, step=0, **kw):
        buf, dtype = _as_buffer(data, kw.pop("dtype", None))
        return super().put(tensor, buf, step, dtype=dtype, **kw)

    def get(self, tensor, step=0, *, shape=None, out=None, raw=False, drop=False):
        """The values stored under (rank, step, tensor) as a numpy array
        (float32, bfloat16 widened; raw=True keeps bfloat16 bit patterns as
        uint16), flat or reshaped to shape; into out if given. drop=True
        forgets the stash once read."""
        buf, count, dtype = super().get(tensor, step, out=out, raw=raw, drop=drop)
        return _array(buf, count, dtype, shape)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        state = "closed" if self.closed else "open"
        return "<sfp.Client job=%r rank=%d socket=%r %s>" % (self.job, self.rank,
                                                             self.socket, state)
