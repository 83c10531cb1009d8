"""The datasets that feed training: PROD pairs, one-task pairs, and paired folders.

Reproducibility contract (the Trainer and its sampler rely on it): `dataset[(epoch, index)]` (or
`dataset[index]`, epoch 0) is a pure function of (seed, epoch, index) -- every random choice
comes from `np.random.default_rng([seed, epoch, index])` -- so a batch is byte-identical whatever
the number of DataLoader workers, the order of access or a resume. Items are dicts:
{"lq", "gt": float32 tensors (C, H, W) in [0, 1], "key": a file-name-safe str, "recipe": the
degradation recipe as JSON ("" for real pairs)}. `len()` is the number of base items per epoch.
Validation sets (phase "val") are fixed: item i uses the generator [seed, VAL_EPOCH, i].

Folders are scanned recursively and decoded once at construction (see `colora.data.imagefolder`), so
every unreadable or unmatched file is reported in one error before training starts.
"""
import dataclasses
import json
import logging

import cv2
import numpy as np
import torch

from colora.data.dead_leaves import WithDeadLeaves
from colora.data.imagefolder import Images, clean_images, fail, pair_folders, read_all
from colora.degradations.prod import ProdSampler
from colora.degradations.tasks import RESTORATION_TASKS, TASKS, degrade_task
from colora.errors import ColoraError, OptionsError
from colora.options import DegradationsOpt, load_section

log = logging.getLogger("colora")
VAL_EPOCH = 2**32 - 1  # never reached in training (numpy seeds ignore trailing zeros: avoid [s, i])
PAIRS_EPOCH = 2**32 - 2  # the fixed num_pairs pairs


# ---- crops and augmentation ------------------------------------------------------------------
def random_crop(rng, size, *imgs):
    """The same random size×size (or (h, w)) window of every image (all of one shape)."""
    h, w = imgs[0].shape[:2]
    ch, cw = (size, size) if np.isscalar(size) else size
    y, x = int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1))
    return [im[y:y + ch, x:x + cw] for im in imgs]


def scene_view(rng, img, size, flip=False, rot=False):
    """A clean photo as a whole photo of short side `size` would show it: a random square window,
    from `size` px to the image's short side, shrunk (area average) to at most size². Degrading
    this view, not a small training crop, keeps scale-dependent degradations (drop radii and
    haze depth structure are drawn per image, relative to its size) at a photo's scale; the
    window's random side mixes the scales of small and large photos; `flip`/`rot` as `augment`.
    Our choice (issue 13)."""
    short = min(img.shape[:2])
    side = int(rng.integers(min(size, short), short + 1))
    (win,) = augment(rng, random_crop(rng, side, img), flip, rot)
    if side > size:
        win = cv2.resize(np.ascontiguousarray(win, np.float32), (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(win, np.float32)


def augment(rng, imgs, flip=True, rot=True):
    """The same random flip / 90° rotation (the 8 symmetries of a square) of every image."""
    k = int(rng.integers(4)) if rot else 0
    mirror = bool(rng.random() < 0.5) if flip else False
    return [np.ascontiguousarray(np.rot90(im[:, ::-1] if mirror else im, k)) for im in imgs]


def make_item(lq, gt, key, recipe=""):
    def tensor(a):
        return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32))

    return {"lq": tensor(lq), "gt": tensor(gt), "key": key,
            "recipe": recipe if isinstance(recipe, str) else json.dumps(recipe)}


def split_key(key):
    """(epoch, index) from an int index or an (epoch, index) pair."""
    if isinstance(key, (tuple, list)):
        epoch, index = key
        return int(epoch), int(index)
    return 0, int(key)


# ---- synthetic pairs ---------------------------------------------------------------------------
class _SyntheticDataset(torch.utils.data.Dataset):
    """Clean crops degraded on the fly; subclasses define `degrade(img, rng) -> (lq, recipe)`.

    train: item (epoch, index) crops clean image `index`, flips/rotates it, then degrades it (after
    the flips, so rain stays near vertical). With `num_pairs`, a fixed set of pairs is made once
    (pair j from image j mod N, crop side max(gt_size, crop_pairs_size or 2*gt_size), clipped
    to the image) and items are random gt_size crops and flips of those pairs -- the paper fine-
    tunes on 16..128 fixed pairs. val: `num_samples` fixed crops (sample i from image i mod N).
    With `scene_size`, each item (and fixed pair) is degraded as a scene view (`scene_view`) and
    the gt_size crop is taken from the degraded pair. With `dead_leaves: N`, N procedural images
    (512 px, or gt_size / scene_size if larger) follow the clean photos (colora.data.dead_leaves)."""

    def __init__(self, opt, phase="train"):
        self.opt, self.phase, self.seed, self.size = opt, phase, int(opt.seed), int(opt.gt_size)
        self.scene = int(opt.scene_size) if opt.scene_size else None
        if self.scene is not None and self.scene < self.size:
            raise OptionsError(f"scene_size ({self.scene}) must be at least gt_size ({self.size}): the "
                               "training crop is taken from the scene view")
        self.images = clean_images(opt.dataroot_gt, opt.photos, self.size)
        if opt.dead_leaves:
            self.images = WithDeadLeaves(self.images, opt.dead_leaves, max(512, self.size, self.scene or 0), self.seed)
        self.pairs = None
        if opt.num_pairs and phase == "train":
            self.pairs = [self._make_pair(j) for j in range(opt.num_pairs)]

    def degrade(self, img, rng):
        raise NotImplementedError

    def _make_pair(self, j):
        rng = np.random.default_rng([self.seed, PAIRS_EPOCH, j])
        img, name = self.images[j % len(self.images)], self.images.names[j % len(self.images)]
        side = max(self.size, self.opt.crop_pairs_size or 2 * self.size)
        lq, gt, recipe = self._fresh(rng, img, side, augmented=False)
        return lq, gt, f"pair{j:03d}_{name}", json.dumps(recipe)

    def _fresh(self, rng, img, side, augmented):
        """A new (lq, gt, recipe) of `img`: a crop of `side` (clipped to the image), flipped/rotated
        when `augmented` (before degrading, so rain stays near vertical), degraded; or, with
        scene_size, that crop of a degraded scene view."""
        flip, rot = (self.opt.use_flip, self.opt.use_rot) if augmented else (False, False)

        def window(*imgs):
            return random_crop(rng, (min(side, imgs[0].shape[0]), min(side, imgs[0].shape[1])), *imgs)

        if self.scene is None:
            (gt,) = augment(rng, window(img), flip, rot)
            lq, recipe = self.degrade(gt, rng)
        else:
            view = scene_view(rng, img, self.scene, flip, rot)
            lq, recipe = self.degrade(view, rng)
            lq, gt = window(lq, view)
        return np.ascontiguousarray(lq), np.ascontiguousarray(gt), recipe

    def __len__(self):
        if self.phase == "val":
            return self.opt.num_samples
        return len(self.pairs) if self.pairs is not None else len(self.images)

    def __getitem__(self, key):
        epoch, index = split_key(key)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items")
        if self.phase == "val":
            rng = np.random.default_rng([self.seed, VAL_EPOCH, index])
            n = index % len(self.images)
            lq, gt, recipe = self._fresh(rng, self.images[n], self.size, augmented=False)
            return make_item(lq, gt, f"{index:04d}_{self.images.names[n]}", recipe)
        rng = np.random.default_rng([self.seed, epoch, index])
        if self.pairs is not None:
            lq, gt, name, recipe = self.pairs[index]
            lq, gt = augment(rng, random_crop(rng, self.size, lq, gt), self.opt.use_flip, self.opt.use_rot)
            return make_item(lq, gt, f"{name}_e{epoch}", recipe)
        lq, gt, recipe = self._fresh(rng, self.images[index], self.size, augmented=True)
        return make_item(lq, gt, f"{self.images.names[index]}_e{epoch}", recipe)


class ProdDataset(_SyntheticDataset):
    """PROD pre-training pairs: the `degradations` section's sampler (random ops, random order).

    Validation draws no `p_clean` sample: a clean pair measures nothing (its input PSNR is
    infinite), and so a run with p_clean is validated on the same pairs as one without."""

    def __init__(self, opt, degradations_opt=None, phase="train"):
        deg = load_section(DegradationsOpt, degradations_opt, "degradations")
        self.sampler = ProdSampler(dataclasses.replace(deg, p_clean=0.0) if phase == "val" else deg)
        super().__init__(opt, phase)

    def degrade(self, img, rng):
        return self.sampler.degrade(img, rng)


class TaskDataset(_SyntheticDataset):
    """Synthetic pairs of one fine-tuning task (`task`: a key of TASKS), or of every task at once
    (`task: all`: each pair one of the six RESTORATION_TASKS, drawn uniformly; the one adapter for
    everything baseline of issue 14, PromptIR's setting). `p_clean` (training only): that share of
    pairs is left undegraded, as PROD's p_clean does, so that an adapter run on a photo without its
    degradation (a wrong pick of `--adapter auto`) learns to leave it alone."""

    def __init__(self, opt, degradations_opt=None, phase="train"):
        if opt.task not in TASKS and opt.task != "all":
            raise OptionsError(f"datasets.{phase}.task must be one of {', '.join(TASKS)} or all for a "
                               f"TaskDataset, got {opt.task!r}")
        self.task = opt.task
        self.p_clean = float(opt.p_clean) if phase == "train" else 0.0
        super().__init__(opt, phase)

    def degrade(self, img, rng):
        if self.p_clean > 0 and rng.random() < self.p_clean:  # no draw at 0: runs without it are unchanged
            return img.copy(), []
        task = self.task if self.task != "all" else RESTORATION_TASKS[int(rng.integers(len(RESTORATION_TASKS)))]
        return degrade_task(img, task, rng)


# ---- real pairs ----------------------------------------------------------------------------
class PairedFolderDataset(torch.utils.data.Dataset):
    """LQ/GT images in two folders, matched by file name without suffix (sub-folders included);
    `filename_tmpl` makes the LQ stem from the GT stem as BasicSR does ('{}_x4': a.png ~ a_x4.png).

    Every problem (an image without its partner on either side, two files with one name, an
    unreadable file, a pair of different sizes) is listed in one error before training starts.
    train: the same random gt_size crop and flip/rotation of both (pairs smaller than gt_size are
    skipped with a warning); val: whole images. `num_pairs` keeps a seeded random subset;
    `crop_pairs_size` keeps one fixed window of each training pair instead of the whole images.
    Subclasses (the benchmark layouts of colora.data) override `list_pairs` and `where`."""

    def __init__(self, opt, degradations_opt=None, phase="train"):
        self.opt, self.phase, self.seed, self.size = opt, phase, int(opt.seed), int(opt.gt_size)
        lq, gt, problems = self.list_pairs()
        self.load_pairs(lq, gt, problems)

    def where(self):
        """What the pairs are, for error messages."""
        return f"paired folders '{self.opt.dataroot_lq}' and '{self.opt.dataroot_gt}'"

    def list_pairs(self):
        """({key: LQ path}, {key: GT path}, [problems]) -- unmatched files are problems."""
        opt = self.opt
        if not opt.dataroot_lq or not opt.dataroot_gt:
            raise OptionsError(f"datasets.{self.phase}: {opt.type} needs both dataroot_lq and dataroot_gt folders")
        return pair_folders(opt.dataroot_lq, opt.dataroot_gt, lq_key=opt.filename_tmpl.format, recursive=True,
                            labels=("LQ (dataroot_lq)", "GT (dataroot_gt)"))

    def sample(self, keys):
        """The paper's "N training pairs": num_pairs of `keys` (train phase), fixed by `seed`."""
        n = self.opt.num_pairs
        if not n or self.phase != "train" or n >= len(keys):
            return list(keys)
        pick = np.random.default_rng([self.seed, PAIRS_EPOCH]).choice(len(keys), n, replace=False)
        return [keys[i] for i in sorted(pick)]

    def load_pairs(self, lq, gt, problems):
        """Sample num_pairs (train), decode every pair once, check sizes; all problems in one error."""
        keys = self.sample(sorted(set(lq) & set(gt)))
        shapes, cache = read_all([p for k in keys for p in (lq[k], gt[k])], problems)
        keys = [k for k in keys if lq[k] in shapes and gt[k] in shapes]
        for k in keys:
            if shapes[lq[k]] != shapes[gt[k]]:
                (h, w), (gh, gw) = shapes[lq[k]], shapes[gt[k]]
                problems.append(f"'{k}' is {w}x{h} px in LQ but {gw}x{gh} px in GT")
        if problems:
            fail(problems, self.where())
        if self.phase == "train":
            small = [k for k in keys if min(shapes[gt[k]]) < self.size]
            if small:
                log.warning(f"skipping {len(small)} pair(s) smaller than the {self.size}-px patch: "
                            f"{', '.join(small[:10])}")
                keys = [k for k in keys if k not in small]
            if not keys:
                raise ColoraError(f"no pair is at least {self.size}x{self.size} px (gt_size); lower gt_size")
        self.keys = keys
        self.lq = Images(keys, [lq[k] for k in keys], cache)
        self.gt = Images(keys, [gt[k] for k in keys], cache)
        if self.opt.crop_pairs_size and self.phase == "train":
            self.lq, self.gt = self.fixed_crops(max(self.size, self.opt.crop_pairs_size))

    def fixed_crops(self, side):
        """One fixed, seeded side x side window of each pair, kept in memory in place of the whole
        images: SIDD's 5328x3000 shots cut once, as NAFNet and Restormer cut them into 512-px crops."""
        crops = {}
        for i, key in enumerate(self.keys):
            lq, gt = self.lq[i], self.gt[i]
            rng = np.random.default_rng([self.seed, PAIRS_EPOCH, i])
            window = (min(side, lq.shape[0]), min(side, lq.shape[1]))
            crops[("lq", key)], crops[("gt", key)] = (np.ascontiguousarray(a) for a in random_crop(rng, window, lq, gt))
        return (Images(self.keys, [(part, k) for k in self.keys], crops) for part in ("lq", "gt"))

    def __len__(self):
        return len(self.keys)

    def __getitem__(self, key):
        epoch, index = split_key(key)
        lq, gt = self.lq[index], self.gt[index]
        if self.phase == "val":
            return make_item(lq, gt, self.keys[index])
        rng = np.random.default_rng([self.seed, epoch, index])
        lq, gt = augment(rng, random_crop(rng, self.size, lq, gt), self.opt.use_flip, self.opt.use_rot)
        return make_item(lq, gt, f"{self.keys[index]}_e{epoch}")
