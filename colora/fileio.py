"""Atomic file writes: a crash or Ctrl-C never leaves a half-written output or checkpoint.

Everything colora writes goes to a temporary file in the destination folder, is flushed and
fsync'ed, then renamed over the destination (rename is atomic on POSIX and Windows for files on the
same volume).
"""
import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(dest):
    """Yield a temporary path next to `dest`; on success it is renamed to `dest`.

    Use for writers that want a file name (cv2.imwrite, safetensors.save_file, torch.save).
    The temporary name keeps the destination's suffix so format-by-extension writers still work.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=f".tmp{dest.suffix}", dir=dest.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(dest, data: bytes):
    """Write `data` to `dest` atomically."""
    with atomic_path(dest) as tmp:
        Path(tmp).write_bytes(data)


def atomic_write_text(dest, text: str):
    """Write `text` (UTF-8) to `dest` atomically."""
    atomic_write_bytes(dest, text.encode("utf-8"))
