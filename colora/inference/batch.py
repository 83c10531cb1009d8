"""`colora restore` on files: listing inputs, naming outputs, and the rules that keep a batch safe.

The rules (each one is a user's file saved from a mistake):
- an output is never written over an input of the run (not even with --overwrite), nor over a file
  that was there before the run unless --overwrite; such files are reported, never silently lost;
- two inputs never write the same output; `--suffix` cannot leave the output folder;
- a bad file (unreadable, too large, out of memory) is that file's failure line; the batch goes on.
"""
import errno
import glob
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
                  overwrite=False, progress=True, shard=(0, 1)):
    """Restore every image of `inputs` into the folder `output` with `restorer`, one FileResult per
    file (see the module docstring for what is refused); `shard` (rank, world size) restores only
    that rank's share (colora.inference.shard)."""
    from colora.inference.shard import shard_files

    from tqdm import tqdm

    from colora.errors import ImageReadError
    from colora.imageio import read_image, write_image

    check_suffix(suffix)
    files = list_inputs(inputs, recursive)
    output = Path(output)
    check_output_dir(output)
    sources = {_real(src) for src, _ in files}
    files = shard_files(files, lambda src, rel: output_path(output, rel, suffix, ext, src), *shard)
    bar = tqdm(files, unit="file", disable=not progress, dynamic_ncols=True)
    claimed = {}  # output -> the input that owns it (IMG.jpg and IMG.jpeg both map to IMG.jpg)
    folders = set()  # output folders cleared of temporary files that a kill left there
    for src, rel in bar:
        if not src.is_file():
            yield FileResult(src, None, "failed", _not_a_file(src))
            continue
        dest = output_path(output, rel, suffix, ext, src)
        if dest.parent not in folders:
            folders.add(dest.parent)
            remove_stale_temps(dest.parent)
        refused = _refusal(src, dest, sources, claimed, skip_existing, overwrite)
        if refused is not None:
            yield refused
            continue
        try:
            img = read_image(src, check=restorer.plan)  # refused on its header, before decoding
            h, w = img.pixels.shape[:2]
            tiles = restorer.tiles_for(h, w)
            with tqdm(total=tiles, unit="tile", leave=False, disable=not progress or tiles < 4) as tbar:
                pixels = restorer.restore(img.pixels, progress=tbar)
            bit_depth = img.bit_depth if dest.suffix.lower() in SIXTEEN_BIT_EXTS else 8
            alpha = img.alpha if dest.suffix.lower() in ALPHA_EXTS else None
            write_image(dest, pixels, alpha=alpha, bit_depth=bit_depth, overwrite=overwrite)
        except FileExistsError:
            yield FileResult(src, dest, "skipped", f"'{dest}' appeared while it was being restored; "
                                                   "pass --overwrite to replace it")
            continue
        except (ImageReadError, ColoraError) as exc:
            yield FileResult(src, None, "failed", str(exc))
            continue
        except (MemoryError, RuntimeError) as exc:  # torch: "DefaultCPUAllocator: can't allocate memory"
            if isinstance(exc, RuntimeError) and "memory" not in str(exc):
                raise
            yield FileResult(src, None, "failed", "ran out of memory while restoring it; lower --max-memory "
                                                  "(or set -t) and retry this file")
            continue
        except (ValueError, OSError) as exc:
            yield FileResult(src, None, "failed", f"cannot write '{dest}': {exc}")
            continue
        said = "; ".join(dict.fromkeys(img.warnings))  # once each: libjpeg repeats itself
        yield FileResult(src, dest, "restored", f"the decoder warned: {said[:300]}" if said else "")
