"""Atomic file writes: a crash or Ctrl-C never leaves a half-written output or checkpoint.

Everything colora writes goes to a temporary file in the destination folder, is flushed and
fsync'ed, then renamed over the destination (rename is atomic on POSIX and Windows for files on the
same volume). With `replace=False` the final step is a hard link instead, which fails if the
destination appeared meanwhile: a file someone else wrote is never replaced behind our back.
"""
import contextlib
import os
import re
import tempfile
import time
from pathlib import Path

# mkstemp's names: ".<stem>." + 8 random characters + ".tmp<suffix>" (kept so writers that pick the
# format by extension still work). A file of this shape older than STALE_SECONDS was left by a kill.
_TEMP_NAME = re.compile(r"\..*\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?")
STALE_SECONDS = 600


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(dest, replace=True):
    """Yield a temporary path next to `dest`; on success it becomes `dest`.

    Use for writers that want a file name (cv2.imwrite, safetensors.save_file, torch.save). The
    file gets the mode a plain open() would give it (mkstemp alone makes it 0600). `replace=False`
    raises FileExistsError instead of replacing a `dest` that exists at the moment of the rename.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=f".tmp{dest.suffix}", dir=dest.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, dest)
        else:
            _link_new(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _link_new(tmp, dest):
    """Give `tmp` the name `dest` only if `dest` does not exist (atomically where links work)."""
    try:
        os.link(tmp, dest)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: check, then rename (a tiny race remains)
        if os.path.lexists(dest):
            raise FileExistsError(f"'{dest}' exists") from None
        os.replace(tmp, dest)
        return
    os.unlink(tmp)


def atomic_write_bytes(dest, data: bytes, replace=True):
    """Write `data` to `dest` atomically (see atomic_path for `replace`)."""
    with atomic_path(dest, replace=replace) as tmp:
        Path(tmp).write_bytes(data)


def atomic_write_text(dest, text: str):
    """Write `text` (UTF-8) to `dest` atomically."""
    atomic_write_bytes(dest, text.encode("utf-8"))


def remove_stale_temps(folder, older_than=STALE_SECONDS):
    """Delete our own temporary files that a kill left in `folder` (not recursive); returns them.

    Only names of atomic_path's shape and older than `older_than` seconds go, so a run writing into
    the same folder at the same time keeps its files."""
    folder, removed = Path(folder), []
    if not folder.is_dir():
        return removed
    cutoff = time.time() - older_than
    for entry in folder.iterdir():
        try:
            if _TEMP_NAME.fullmatch(entry.name) and entry.is_file() and not entry.is_symlink() \
                    and entry.stat().st_mtime < cutoff:
                entry.unlink()
                removed.append(entry)
        except OSError:
            continue
    return removed
