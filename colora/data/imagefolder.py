"""Image folders for the datasets: listing, reading every file once, and a memory budget.

Datasets decode every image at construction, so that an unreadable file is reported before
training starts (all problems in one error, not one crash per worker mid-run). Decoded images stay
in memory while their total size fits CACHE_BYTES; beyond it (say DIV2K at full size) they are
read again per item, as BasicSR does.
"""
import logging
from pathlib import Path

import numpy as np

from colora.errors import ColoraError, ImageReadError, OptionsError
from colora.imageio import bundled_photos, read_image

log = logging.getLogger("colora")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
CACHE_BYTES = 1 << 30


def list_images(folder, what):
    """The image files under `folder` (recursive, sorted); a clear error if there are none."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ColoraError(f"{what} folder '{folder}' {'is not a folder' if folder.exists() else 'does not exist'}")
    files = [p for p in sorted(folder.rglob("*")) if p.suffix.lower() in IMAGE_EXTENSIONS
             and not p.name.startswith(".") and p.is_file()]
    if not files:
        raise ColoraError(f"{what} folder '{folder}' holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def stem_key(path, folder):
    """A file's name inside `folder` without its suffix, sub-folders joined by '_' (file-name safe)."""
    return "_".join(Path(path).relative_to(Path(folder).expanduser()).with_suffix("").parts)


def rgb(pixels):
    """float32 H×W×3: grey is repeated to three channels (alpha is already apart, so dropped)."""
    return np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels


def fail(problems, what):
    """One error listing the first five problems and how many there are."""
    shown = "; ".join(problems[:5]) + (f"; ... and {len(problems) - 5} more" if len(problems) > 5 else "")
    raise ColoraError(f"{what}: {len(problems)} problem{'s' * (len(problems) > 1)}: {shown}")


class Images:
    """Named RGB images: those in `cache` (keyed by path) come from memory, the others are re-read."""

    def __init__(self, names, paths, cache):
        self.names, self.paths, self.cache = names, paths, cache

    def __len__(self):
        return len(self.names)

    def __getitem__(self, i):
        img = self.cache.get(self.paths[i])
        return img if img is not None else rgb(read_image(self.paths[i]).pixels)


def read_all(files, problems, budget=CACHE_BYTES):
    """Decode every file once. Returns ({path: (h, w)}, {path: RGB pixels} for as many files as fit
    in `budget` bytes); the errors of unreadable files are appended to `problems`."""
    shapes, cache, used = {}, {}, 0
    for path in files:
        try:
            img = rgb(read_image(path).pixels)
        except ImageReadError as err:
            problems.append(str(err))
            continue
        shapes[path] = img.shape[:2]
        if used + img.nbytes <= budget:
            cache[path], used = img, used + img.nbytes
    return shapes, cache


def clean_images(dataroot, photos, min_side):
    """The clean photos of a synthetic dataset: a folder, or the bundled scikit-image photos.
    Images with a side below `min_side` (the patch) are skipped with a warning naming them."""
    if dataroot is None:
        cache = {name: rgb(a) for name, a in bundled_photos(photos).items()}
        names = paths = list(cache)
        shapes = {name: a.shape[:2] for name, a in cache.items()}
    else:
        if photos:
            raise OptionsError("'photos' picks bundled photos and needs dataroot_gt: ~; remove one of them")
        bad = []
        shapes, cache = read_all(list_images(dataroot, "clean-image (dataroot_gt)"), bad)
        if bad:
            fail(bad, f"clean-image folder '{dataroot}'")
        paths = list(shapes)
        names = [stem_key(p, dataroot) for p in paths]
    keep = [i for i, p in enumerate(paths) if min(shapes[p]) >= min_side]
    if len(keep) < len(paths):
        small = [n for i, n in enumerate(names) if i not in keep]
        log.warning(f"skipping {len(small)} image(s) smaller than the {min_side}-px patch: {', '.join(small[:10])}")
    if not keep:
        raise ColoraError(f"no clean image is at least {min_side}x{min_side} px (gt_size); "
                          f"lower gt_size or add larger images")
    return Images([names[i] for i in keep], [paths[i] for i in keep], cache)
