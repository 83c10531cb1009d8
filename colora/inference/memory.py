"""Memory bounded before work starts: how much a photo will need, and the tiling that fits a budget.

A restoration network's activations grow with the pixel count (NAFNet-w16 holds ~2 KB per pixel at
its peak), so a 12-megapixel photo in one forward pass needs many gigabytes. The Restorer measures
its own model once (the peak of live tensor bytes during a forward pass on a small input, counted by
a dispatch mode: exact, whatever the architecture) and then, per photo, picks the largest tile whose
forward pass and the whole-image buffers fit `--max-memory` -- or refuses the photo before decoding.
"""
import math
import os
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from colora.errors import ColoraError

# Whole-image buffers around the network, per pixel: the decoded samples (up to 8 B, 16-bit RGBA),
# float32 RGB + alpha (16), the network's input and output copies (24), the tiled sum and weights
# (16), and the writer's clip / round / quantized / encoded copies (~30).
IMAGE_BYTES_PER_PIXEL = 100
SAFETY = 1.5  # allocator slack and what the tracker cannot see (views outliving their base)
MIN_TILE = 32
MEASURE_SIDE = 128


def total_ram():
    """Bytes of RAM this process may use: the machine's, or the cgroup's limit if lower."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            ram = min(ram, int(open(limit).read().strip()))
        except (OSError, ValueError):
            continue
    return ram


def current_rss():
    """Resident bytes of this process now (0 where /proc is missing): the part of a budget already
    taken by the interpreter, torch and the model."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def peak_rss():
    """Peak resident bytes of this program (VmHWM). Not ru_maxrss: Linux carries that over from the
    forking parent, so a child of a big process would report the parent's peak. Falls back to
    ru_maxrss where /proc is missing (macOS: bytes; elsewhere KiB)."""
    try:
        with open("/proc/self/status") as fh:
            return next(int(ln.split()[1]) * 1024 for ln in fh if ln.startswith("VmHWM:"))
    except (OSError, ValueError, StopIteration):
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def keep_freed_memory():
    """Ask glibc's malloc to serve large blocks from its heap and keep what is freed (mallopt
    M_MMAP_THRESHOLD and M_TRIM_THRESHOLD at 1 GiB): a forward pass over a whole photo allocates and
    frees activations of tens of MB per operator, and above glibc's 32 MiB dynamic ceiling each one
    is a fresh mmap that the kernel zeroes page by page (4.2 s of system time in three fp32 forwards
    of a 640x424 photo; benchmarks/allocator_speed.py measures the effect). The peak memory is
    unchanged, but the process keeps it until it exits, so `colora restore` (a process of its own)
    calls this, and the library does not. Returns whether it was applied: not outside Linux/glibc,
    and not when COLORA_MALLOC=default or the user set glibc's own MALLOC_*_THRESHOLD_ variables."""
    if os.environ.get("COLORA_MALLOC", "") == "default" or any(
            os.environ.get(f"MALLOC_{k}_THRESHOLD_") for k in ("MMAP", "TRIM")):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
        return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):
        return False


def default_budget():
    """Half the RAM: room for the rest of the machine, and the fraction never swaps a desktop."""
    return total_ram() // 2


def parse_budget(gigabytes):
    """`--max-memory` in GB -> bytes (None = the default), with a one-line error for nonsense."""
    if gigabytes is None:
        return default_budget()
    if not math.isfinite(gigabytes) or gigabytes <= 0:
        raise ColoraError(f"--max-memory must be a positive number of gigabytes, got {gigabytes}")
    return int(gigabytes * 1e9)


class _LiveBytes(TorchDispatchMode):
    """Peak bytes of the tensors ops create while it is active (inputs and weights not counted)."""

    def __init__(self):
        super().__init__()
        self.live, self.peak, self.sizes = 0, 0, {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                key = t.untyped_storage().data_ptr()
                if key and key not in self.sizes:
                    self.sizes[key] = t.untyped_storage().nbytes()
                    self.live += self.sizes[key]
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(t, self._free, key)
        return out

    def _free(self, key):
        self.live -= self.sizes.pop(key, 0)


def forward_bytes_per_pixel(forward, channels=3, dtype=torch.float32, side=MEASURE_SIDE):
    """Peak activation bytes per input pixel of `forward` (a (1,C,H,W) tensor -> tensor)."""
    x = torch.rand(1, channels, side, side).to(dtype)
    tracker = _LiveBytes()
    with torch.inference_mode(), tracker:
        forward(x)
    return SAFETY * tracker.peak / (side * side)


def plan_tile(h, w, net_bpp, budget, tile=0, pad=32, resident=0):
    """The tile size (0 = whole image) that keeps a photo of h x w, on top of the `resident` bytes
    the process already holds, under `budget` bytes: `tile` if it fits, else the largest that does;
    a ColoraError (raised before any decoding) if none does."""
    pixels, room = h * w, budget - resident
    fixed = pixels * IMAGE_BYTES_PER_PIXEL
    if tile <= 0 and fixed + pixels * net_bpp <= room:
        return 0
    if tile > 0 and fixed + (min(tile, h) + 2 * pad) * (min(tile, w) + 2 * pad) * net_bpp <= room:
        return tile
    side = math.sqrt((room - fixed) / net_bpp) if room > fixed else 0
    best = (int(side) - 2 * pad) // 16 * 16
    if best < MIN_TILE:
        least = resident + fixed + (MIN_TILE + 2 * pad) ** 2 * net_bpp
        raise ColoraError(f"restoring {w}x{h} pixels needs at least {least / 1e9:.2f} GB (in {MIN_TILE}-px tiles), "
                          f"over --max-memory {budget / 1e9:.2f} GB; raise --max-memory or downscale the photo")
    return min(best, tile) if tile > 0 else best
