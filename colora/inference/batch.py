"""`colora restore` on files: listing inputs, naming outputs, and the rules that keep a batch safe.

The rules (each one is a user's file saved from a mistake):
- an output is never written over an input of the run (not even with --overwrite), nor over a file
  that was there before the run unless --overwrite; such files are reported, never silently lost;
- two inputs never write the same output; `--suffix` cannot leave the output folder;
- a bad file (unreadable, too large, out of memory) is that file's failure line; the batch goes on.
"""
import errno
import glob
import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from colora.errors import ColoraError
from colora.fileio import remove_stale_temps
from colora.imageio import file_or_dangling_link, image_files

SIXTEEN_BIT_EXTS = {".png", ".tif", ".tiff"}
ALPHA_EXTS = {".png", ".webp", ".tif", ".tiff"}


@dataclass
class FileResult:
    """What happened to one input file of a batch."""

    input: Path
    output: Optional[Path]
    status: str  # restored | skipped | failed
    reason: str = ""
    choice: Optional[dict] = None  # --adapter auto: what was detected and applied (auto.Choice)


def check_suffix(suffix):
    """`--suffix` is glued to a file name inside -o: a separator or '..' would leave the folder."""
    seps = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
    if any(s in suffix for s in seps) or ".." in suffix or "\0" in suffix:
        raise ColoraError(f"--suffix {suffix!r} may not contain a path separator or '..' (it is appended "
                          "to file names inside -o); use -o to choose the folder")


def list_inputs(inputs, recursive=False):
    """[(file, path relative to the input root)] for a file, a folder (its images by
    imageio.image_files) or a glob pattern (whatever it matches: the user chose)."""
    p = Path(inputs)
    if p.is_file():
        return [(p, Path(p.name))]
    if p.is_dir():
        return [(f, f.relative_to(p)) for f in image_files(p, recursive)]
    matches = sorted(Path(m) for m in glob.glob(str(inputs), recursive=recursive) if file_or_dangling_link(Path(m)))
    if matches:
        return [(m, Path(m.name)) for m in matches]
    raise ColoraError(f"input '{inputs}' not found: give an image file, a folder or a glob pattern")


def _real(path):
    """The canonical path (Path.resolve raises on a symlink loop; realpath does not)."""
    return Path(os.path.realpath(path))


def _not_a_file(path):
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "it is a symbolic link loop"
        return f"it is a dangling symbolic link (to '{os.readlink(path)}')"
    return "it is not a regular file"


def check_output_dir(output):
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ColoraError(f"cannot create the output folder '{output}': {exc.strerror or exc}") from None
    if not os.access(output, os.W_OK):
        raise ColoraError(f"the output folder '{output}' is not writable")


def output_path(output, rel, suffix, ext, src):
    """output/rel with the suffix before the extension; `auto` keeps the input's format."""
    new_ext = src.suffix.lower() if ext == "auto" else "." + ext.lower().lstrip(".")
    if new_ext == ".jpeg":
        new_ext = ".jpg"
    return output / rel.parent / f"{rel.stem}{suffix}{new_ext}"


def _refusal(src, dest, sources, claimed, skip_existing, overwrite):
    """A FileResult when `dest` must not be written for `src`, else None."""
    target = _real(dest)
    if target == _real(src):
        return FileResult(src, None, "failed", "the output would overwrite the input; use --suffix or another -o")
    if target in sources:
        return FileResult(src, None, "failed", f"its output '{dest}' is another input of this run and is never "
                                               "overwritten; use --suffix or another -o")
    owner = claimed.setdefault(target, src)
    if owner != src:
        return FileResult(src, None, "failed", f"its output '{dest}' is also the output of '{owner}'; "
                                               "rename one of the two")
    if os.path.lexists(dest):
        if skip_existing:
            return FileResult(src, dest, "skipped", "output exists (--skip-existing)")
        if not overwrite:
            return FileResult(src, dest, "skipped", f"'{dest}' exists and this run did not write it; "
                                                    "pass --overwrite to replace it")
    return None


def restore_files(restorer, inputs, output, suffix="", ext="auto", recursive=False, skip_existing=False,
                  overwrite=False, progress=True, shard=(0, 1), io_threads=True):
    """Restore every image of `inputs` into the folder `output` with `restorer`, one FileResult per
    file, in input order (see the module docstring for what is refused); `shard` (rank, world size)
    restores only that rank's share (colora.inference.shard).

    With `io_threads` the next file is decoded and the previous one encoded while the network runs
    (issue 16: small photos otherwise wait on I/O). Memory stays bounded: at most one decoded image
    ahead and one encode behind the one being restored."""
    from concurrent.futures import ThreadPoolExecutor

    from colora.inference.shard import shard_files

    from tqdm import tqdm

    check_suffix(suffix)
    files = list_inputs(inputs, recursive)
    output = Path(output)
    check_output_dir(output)
    sources = {_real(src) for src, _ in files}
    files = shard_files(files, lambda src, rel: output_path(output, rel, suffix, ext, src), *shard)
    bar = tqdm(files, unit="file", disable=not progress, dynamic_ncols=True)
    plans = _plans(bar, output, suffix, ext, sources, skip_existing, overwrite)
    if not io_threads:
        for plan in plans:
            done = plan if isinstance(plan, FileResult) else _restore(restorer, *plan, _read(restorer, plan[0]), progress)
            yield _write(*done, overwrite) if isinstance(done, tuple) else done
        return
    with ThreadPoolExecutor(1, thread_name_prefix="colora-read") as reader, \
            ThreadPoolExecutor(1, thread_name_prefix="colora-write") as writer:
        ahead, behind = None, []  # (plan, decode future) of the next file; results not yet yielded
        for plan in itertools.chain(plans, [None]):
            if plan is not None and not isinstance(plan, FileResult):
                plan = (plan, reader.submit(_read, restorer, plan[0]))
            plan, ahead = ahead, plan
            if plan is not None:  # restore the current file while the next decodes and the last encodes
                (src, dest), decoded = plan
                done = _restore(restorer, src, dest, decoded.result(), progress)
                yield from _drain(behind)
                behind.append(writer.submit(_write, *done, overwrite) if isinstance(done, tuple) else done)
            if isinstance(ahead, FileResult):  # refused before any work: its place in the order is now
                yield from _drain(behind)
                behind.append(ahead)
                ahead = None
        yield from _drain(behind)


def _drain(pending):
    """Yield the pending results (FileResult or a write future's FileResult) in order, emptying it."""
    while pending:
        item = pending.pop(0)
        yield item if isinstance(item, FileResult) else item.result()


def _plans(files, output, suffix, ext, sources, skip_existing, overwrite):
    """Per input, a FileResult when it is refused before any work, else (src, dest)."""
    claimed = {}  # output -> the input that owns it (IMG.jpg and IMG.jpeg both map to IMG.jpg)
    folders = set()  # output folders cleared of temporary files that a kill left there
    for src, rel in files:
        if not src.is_file():
            yield FileResult(src, None, "failed", _not_a_file(src))
            continue
        dest = output_path(output, rel, suffix, ext, src)
        if dest.parent not in folders:
            folders.add(dest.parent)
            remove_stale_temps(dest.parent)
        yield _refusal(src, dest, sources, claimed, skip_existing, overwrite) or (src, dest)


def _read(restorer, src):
    """The decoded image, or the exception that refused it (kept for its turn in the order)."""
    from colora.imageio import read_image

    try:
        return read_image(src, check=restorer.plan)  # refused on its header, before decoding
    except Exception as exc:  # noqa: BLE001  (raised again by _restore, in the file's turn)
        return exc


def _restore(restorer, src, dest, img, progress):
    """(src, dest, img, restored pixels, auto's choice) to write, or the FileResult of a file that failed."""
    from tqdm import tqdm

    try:
        if isinstance(img, BaseException):
            raise img
        h, w = img.pixels.shape[:2]
        tiles = restorer.tiles_for(h, w)
        with tqdm(total=tiles, unit="tile", leave=False, disable=not progress or tiles < 4) as tbar:
            pixels = restorer.restore(img.pixels, progress=tbar)
        choice = restorer.last_choice.as_dict() if getattr(restorer, "auto", None) is not None else None
        return src, dest, img, pixels, choice
    except BaseException as exc:  # noqa: BLE001
        return _failure(src, dest, exc)


def _write(src, dest, img, pixels, choice, overwrite):
    from colora.imageio import write_image

    try:
        bit_depth = img.bit_depth if dest.suffix.lower() in SIXTEEN_BIT_EXTS else 8
        alpha = img.alpha if dest.suffix.lower() in ALPHA_EXTS else None
        write_image(dest, pixels, alpha=alpha, bit_depth=bit_depth, overwrite=overwrite)
    except BaseException as exc:  # noqa: BLE001
        return _failure(src, dest, exc)
    said = "; ".join(dict.fromkeys(img.warnings))  # once each: libjpeg repeats itself
    return FileResult(src, dest, "restored", f"the decoder warned: {said[:300]}" if said else "", choice)


def _failure(src, dest, exc):
    """One file's failure line for what went wrong with it; anything else is not the file's fault."""
    from colora.errors import ImageReadError

    if isinstance(exc, FileExistsError):
        return FileResult(src, dest, "skipped", f"'{dest}' appeared while it was being restored; "
                                                "pass --overwrite to replace it")
    if isinstance(exc, (ImageReadError, ColoraError)):
        return FileResult(src, None, "failed", str(exc))
    if isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and "memory" in str(exc)):
        # torch: "DefaultCPUAllocator: can't allocate memory"
        return FileResult(src, None, "failed", "ran out of memory while restoring it; lower --max-memory "
                                               "(or set -t) and retry this file")
    if isinstance(exc, (ValueError, OSError)):
        return FileResult(src, None, "failed", f"cannot write '{dest}': {exc}")
    raise exc
