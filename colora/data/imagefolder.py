"""Image folders for the datasets and `colora eval`: listing, pairing, reading every file once,
and a memory budget.

Datasets decode every image at construction, so that an unreadable file is reported before
training starts (all problems in one error, not one crash per worker mid-run). Decoded images stay
in memory while their total size fits CACHE_BYTES; beyond it (say DIV2K at full size) they are
read again per item, as BasicSR does. Which files are images is imageio's rule (`image_files`).
"""
import logging
from pathlib import Path

import numpy as np

from colora.errors import ColoraError, ImageReadError, OptionsError
from colora.imageio import IMAGE_EXTENSIONS, bundled_photos, image_files, read_image

log = logging.getLogger("colora")
CACHE_BYTES = 1 << 30


def list_images(folder, what, recursive=True):
    """The image files of a folder a user named (`what` says which); a clear error if it is not
    a folder or holds none."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ColoraError(f"{what} folder '{folder}' {'is not a folder' if folder.exists() else 'does not exist'}")
    files = image_files(folder, recursive)
    if not files:
        raise ColoraError(f"{what} folder '{folder}' holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def stem_key(path, folder):
    """A file's name inside `folder` without its suffix, sub-folders joined by '_' (file-name safe)."""
    return "_".join(Path(path).relative_to(Path(folder).expanduser()).with_suffix("").parts)


def pair_folders(lq_dir, gt_dir, lq_key=None, recursive=False, every_gt=True, stray=None, key_prefix="",
                 labels=None):
    """The pairing rule of two folders of LQ and GT images (paired datasets, benchmark scenes,
    `colora eval --lq --gt`): ({key: LQ path}, {key: GT path}, [problems]), every problem listed
    and none raised, so that the caller reports them all in one error.

    A file's key is its `stem_key` (sub-folders too when `recursive`); GT `k` pairs with LQ
    `lq_key(k)` (default `k`; None: the GT is not named as the layout expects). Problems: two files
    of one key on a side, an LQ without its GT (unless `stray(key)`: an upstream leftover, left out
    with a warning), a GT without its LQ (if `every_gt`; RainDS's subsets are unequal). `labels`
    (LQ, GT) name folders a user gave, which must exist and hold images; without them a missing
    folder holds nothing (a layout the caller is still probing)."""
    problems, sides = [], []
    for side, root, label in (("LQ", lq_dir, labels and labels[0]), ("GT", gt_dir, labels and labels[1])):
        root, named = Path(root).expanduser(), {}
        for path in list_images(root, label, recursive) if label else image_files(root, recursive):
            key = stem_key(path, root)
            if key in named:
                problems.append(f"two {side} files named '{key}' in '{root}': "
                                f"{named[key].relative_to(root).as_posix()}, {path.relative_to(root).as_posix()}")
            named[key] = path
        sides.append((root, named))
    (lq_root, lq_files), (gt_root, gt_files) = sides

    def show(path, root, quote="'"):
        return f"{quote}{root.name}/{path.relative_to(root).as_posix()}{quote} in '{root.parent}'"

    lq, gt = {}, {}
    for k, path in sorted(gt_files.items()):
        want = lq_key(k) if lq_key else k
        if want is None:
            problems.append(f"{show(path, gt_root, quote='')} is not named as the layout expects")
        elif want in lq_files:
            lq[key_prefix + k], gt[key_prefix + k] = lq_files.pop(want), path
        elif every_gt:
            problems.append(f"no LQ image for GT {show(path, gt_root)}" + (f" (LQ '{want}')" if want != k else ""))
    strays = sorted(k for k in lq_files if stray and stray(k))
    if strays:
        log.warning(f"{lq_root}: leaving out {len(strays)} file(s) outside the dataset's naming: "
                    f"{', '.join(lq_files[k].name for k in strays[:5])}")
    problems += [f"no GT image for LQ {show(p, lq_root)}" for k, p in sorted(lq_files.items()) if k not in strays]
    return lq, gt, problems


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
