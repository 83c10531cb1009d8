"""Degradation estimator: which task's degradations an image shows, and how badly.

`colora restore --adapter auto` needs to know, per photo, whether to leave it alone, which adapter
to run, or which to chain or blend (issue 14; DA-CLIP and AutoDIR steer one restorer with a
degradation classifier in the same way). Our choice: a separate tiny CNN (0.28 M parameters
per branch, 0.09 GMAC per 96² view) rather than a head on the base's features, so it works with any
base and costs a small fraction of a restore. Two views of a photo: native-resolution 96² tiles
(noise and blur live in the fine detail that a downscaled photo loses), up to `max_tiles` spread
evenly over the photo so any size works in bounded time, and the whole photo shrunk to 96² (haze
and a defocused shot are properties of the whole picture: a veil over a whole photo looks, through
one tile, like a flat region). Each view has its own branch; their pooled features are
concatenated. Estimators saved before the global view (one branch) still load and run.

Outputs, per image: an independent probability per label (multi-label: a photo can be rainy and
hazy), `clean` being "no degradation at all", and `severity`, the predicted PSNR (dB) of the
photo against its clean version (50 = clean), which says how much there is to gain.
Labels come from the recorded recipes of synthetic pairs (an op counts for the task it defines,
`colora.degradations.tasks.task_ops`); jpeg and resize count as degradations but have no label.
"""
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from colora.fileio import atomic_path
from colora.degradations.tasks import RESTORATION_TASKS, task_ops
from colora.errors import ColoraError
from colora.imageio import as_saved, to_float32
from colora.inference.image_statistics import STATS, thumb_statistics, tile_statistics

LABELS = ("clean", "rain", "raindrop", "noise", "blur", "haze")
TILE = 96
STATS_WIDTH = 32  # hidden units reading the image statistics (colora.inference.image_statistics)
CLEAN_PSNR = 50.0  # severity of an untouched image (PSNR is infinite; 50 dB is invisible)
_OP_LABEL = {op: label for label in LABELS[1:] for op in task_ops(label)}


def recipe_labels(recipe):
    """Multi-hot label vector (float32, len(LABELS)) of a recorded recipe."""
    y = np.zeros(len(LABELS), np.float32)
    ops = [step["op"] for step in (json.loads(recipe) if isinstance(recipe, str) else recipe)]
    if not ops:
        y[0] = 1.0
    for op in ops:
        if op in _OP_LABEL:
            y[LABELS.index(_OP_LABEL[op])] = 1.0
    return y


def visible_labels(gt, recipe, faint_db):
    """recipe_labels of only the steps that changed the image visibly: the PSNR of a step's output
    against its input is below `faint_db` (replayed step by step; colora.degradations.tasks.replay),
    so a view no step changed visibly is labelled clean. Why: sampled ranges reach degradations
    nobody can see (a few drops refracting their own surroundings, haze of density 0.01); labelled
    present, they teach the estimator that a task is invisible, and it never grows confident."""
    from colora.degradations.tasks import replay
    from colora.metrics import calculate_psnr

    seen, img = [], gt
    for step in json.loads(recipe) if isinstance(recipe, str) else recipe:
        out = replay(img, [step])
        if calculate_psnr(out, img) < faint_db:
            seen.append(step)
        img = out
    return recipe_labels(seen)


# Restoration undoes the degradations in the reverse of the order light met them (scene haze, rain
# in the air, drops on the glass, the optics' blur, the sensor's noise): noise first, haze last.
RESTORE_ORDER = ("noise", "blur", "rain_raindrop", "raindrop", "rain", "haze")


def detected(est, threshold=0.5):
    """The adapters' tasks an estimate calls for, in RESTORE_ORDER; () for a clean photo. Rain and
    raindrops together are one task (rain_raindrop), as in RainDS."""
    found = {k for k in LABELS[1:] if est[k] >= threshold}
    if not found or est["clean"] >= max(est[k] for k in found):
        return ()
    if {"rain", "raindrop"} <= found:
        found = (found - {"rain", "raindrop"}) | {"rain_raindrop"}
    return tuple(t for t in RESTORE_ORDER if t in found)


class DegradationEstimator(nn.Module):
    """Per branch five 3x3 conv stages (the first at full resolution) and mean+max pooling; one
    linear layer on the pooled features gives len(LABELS) logits and the severity.

    `tile_max`: the tiles of one image are pooled by their mean *and* their max: a mean over 16
    tiles dilutes what only a few show (drops on part of the glass, blur under noise), the max keeps
    it. Measured no better on validation so far (BENCHMARKS.md), so training makes mean-only
    estimators unless asked (`--tile-max`); both kinds load and run.

    `stats`: the head also reads classical no-reference statistics of the tiles and the thumbnail
    (colora.inference.image_statistics) through one small hidden layer: cues that measure a
    degradation's physical effect rather than how colora renders it."""

    def __init__(self, width=32, global_view=True, tile_max=False, stats=False):
        super().__init__()
        if stats and not global_view:
            raise ValueError("the image statistics need the global view (its thumbnail)")
        self.features = self._branch(width)
        self.global_features = self._branch(width) if global_view else None
        self.stats_mlp = nn.Sequential(nn.Linear(len(STATS), STATS_WIDTH), nn.LeakyReLU(0.1)) if stats else None
        cnn = 8 * width * ((2 if tile_max else 1) + (1 if global_view else 0))
        self.head = nn.Linear(cnn + (STATS_WIDTH if stats else 0), len(LABELS) + 1)
        self.width, self.global_view, self.tile_max, self.stats = width, global_view, tile_max, stats

    @staticmethod
    def _branch(width):
        chans = [3, width, width * 2, width * 2, width * 4, width * 4]
        layers = []
        for i, (a, b) in enumerate(zip(chans, chans[1:])):
            layers += [nn.Conv2d(a, b, 3, stride=1 if i == 0 else 2, padding=1), nn.LeakyReLU(0.1)]
        return nn.Sequential(*layers)

    @staticmethod
    def _pool(f):
        return torch.cat([f.mean((2, 3)), f.amax((2, 3))], 1)

    def _over_tiles(self, f, dim):
        """Tile features (.., K, F) pooled over the tiles of each image: mean (and max)."""
        return torch.cat([f.mean(dim), f.amax(dim)], -1) if self.tile_max else f.mean(dim)

    def forward(self, x, thumb=None):
        """x: (N, 3, H, W) tiles in [0, 1], or (B, K, 3, H, W): K tiles of each of B images, pooled
        per image; thumb: the whole images shrunk, one per tile or image, or (1, ...) when the N
        tiles are of one image (they are then pooled). Returns one row per tile, image, or (1) the
        one image: len(LABELS) logits + 1 severity in dB."""
        stats = None
        if x.dim() == 5:
            b, k = x.shape[:2]
            pooled = self._over_tiles(self._pool(self.features(x.flatten(0, 1) * 2 - 1)).view(b, k, -1), 1)
            if self.stats:
                stats = tile_statistics(x.flatten(0, 1)).view(b, k, -1).mean(1)
        else:
            pooled = self._pool(self.features(x * 2 - 1))
            one_image = self.global_view and thumb is not None and thumb.shape[0] != pooled.shape[0]
            pooled = self._over_tiles(pooled[None] if one_image else pooled[:, None], 1)
            if self.stats:
                stats = tile_statistics(x)
                stats = stats.mean(0, keepdim=True) if one_image else stats
        if self.global_view:
            if thumb is None:
                raise ValueError("this estimator has a global view: pass the shrunk whole image as thumb")
            pooled = torch.cat([pooled, self._pool(self.global_features(thumb * 2 - 1))], 1)
        if self.stats:
            pooled = torch.cat([pooled, self.stats_mlp(torch.cat([stats, thumb_statistics(thumb)], 1))], 1)
        out = self.head(pooled)
        return torch.cat([out[:, :-1], CLEAN_PSNR - nn.functional.softplus(out[:, -1:]) * 10], 1)


def with_statistics(model):
    """A copy of `model` that also reads the image statistics, giving exactly its outputs until
    trained (the head's new inputs start at weight 0): how `--stats --init` goes on from an
    estimator without them."""
    if model.stats:
        return model
    new = DegradationEstimator(model.width, model.global_view, model.tile_max, stats=True)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    new.load_state_dict(state, strict=False)
    with torch.no_grad():
        new.head.weight.zero_()
        new.head.weight[:, :model.head.in_features] = model.head.weight
        new.head.bias.copy_(model.head.bias)
    return new


def thumbnail(img, tile=TILE):
    """The whole (H, W, 3) float image shrunk (area average) to a (1, 3, tile, tile) tensor."""
    import cv2

    small = cv2.resize(np.ascontiguousarray(img, np.float32), (tile, tile), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(small).permute(2, 0, 1)[None].float()


def tiles_of(img, max_tiles=16, tile=TILE):
    """Up to `max_tiles` native-resolution tiles spread evenly over an (H, W, 3) float image
    (smaller images are padded by reflection), as an (N, 3, tile, tile) tensor."""
    h, w = img.shape[:2]
    if h < tile or w < tile:
        img = np.pad(img, ((0, max(0, tile - h)), (0, max(0, tile - w)), (0, 0)), mode="reflect")
        h, w = img.shape[:2]
    ny = max(1, min(int(np.sqrt(max_tiles * h / w)), h // tile))
    nx = max(1, min(max_tiles // ny, w // tile))
    ys = np.linspace(0, h - tile, ny).round().astype(int)
    xs = np.linspace(0, w - tile, nx).round().astype(int)
    crops = [img[y:y + tile, x:x + tile] for y in ys for x in xs]
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float()


@torch.inference_mode()
def estimate(model, img, max_tiles=16):
    """{label: probability, ..., "severity": dB} of one RGB image (uint8/uint16/float in [0, 1])."""
    img = to_float32(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, 2)
    img = np.asarray(img[..., :3], np.float32)
    out = model.eval()(tiles_of(img, max_tiles), thumbnail(img) if model.global_view else None).mean(0)
    probs = torch.sigmoid(out[:-1]).tolist()
    return {**dict(zip(LABELS, probs)), "severity": float(out[-1])}


def save_estimator(model, path, info=None):
    from safetensors.torch import save_file

    meta = {"format": "colora-estimator", "width": str(model.width), "labels": json.dumps(LABELS),
            "global_view": str(int(model.global_view)), "tile_max": str(int(model.tile_max)),
            "stats": str(int(model.stats)),
            "info": json.dumps(info or {})}
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp), metadata=meta)


def load_estimator(path=None):
    """The estimator at `path` (None = the one shipped in colora/weights/)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path) if path else Path(__file__).resolve().parents[1] / "weights" / "estimator.safetensors"
    if not path.is_file():
        raise ColoraError(f"degradation estimator '{path}' not found; train one with "
                          "`colora estimator train -o FILE`")
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        if meta.get("format") != "colora-estimator" or json.loads(meta["labels"]) != list(LABELS):
            raise ValueError
        model = DegradationEstimator(int(meta["width"]), global_view=meta.get("global_view", "0") == "1",
                                     tile_max=meta.get("tile_max", "0") == "1", stats=meta.get("stats", "0") == "1")
        model.load_state_dict(tensors)
    except (SafetensorError, ValueError, KeyError, RuntimeError, OSError):
        raise ColoraError(f"'{path}' is not a colora degradation estimator (or was made for other labels); "
                          "train one with `colora estimator train -o FILE`") from None
    return model.eval()


# ---- training on synthetic pairs whose recipes are the labels ------------------------------------
class EstimatorSamples(torch.utils.data.Dataset):
    """Item i: a scene view (a random window of a clean photo, from `region` px to the whole short
    side, shrunk to `region`² as a photo of that size would be), left clean (p_clean), degraded for
    one of `tasks` (p_task) or else by a PROD mixture, all at the view's scale (a haze depth map
    spans the scene, as on a whole photo); returns (`tiles` native 96² tiles of it, (tiles, 3, 96, 96),
    the whole view shrunk to 96², labels, severity = PSNR of the view). Several tiles per view train
    the model as `estimate` runs it (tile features averaged over the photo: a drop or a blurred
    edge seen in one tile of several) and spend one costly degraded view on more than one tile.
    `faint_db`: label only the ops that changed the view visibly (visible_labels); None: every op
    of the recipe (recipe_labels). A pure function of (seed, i)."""

    def __init__(self, dataroot=None, photos=None, seed=0, length=10**9, p_clean=0.2, p_task=0.5,
                 tasks=RESTORATION_TASKS, region=256, tiles=1, faint_db=None):
        from colora.data.imagefolder import clean_images
        from colora.degradations.prod import ProdSampler
        from colora.options import DegradationsOpt

        self.images = clean_images(dataroot, photos, TILE)
        self.prod = ProdSampler(DegradationsOpt(mode="prod", k_max=3))
        self.seed, self.length, self.p_clean, self.p_task, self.tasks = seed, length, p_clean, p_task, tasks
        self.region, self.tiles, self.faint_db = region, tiles, faint_db

    def __len__(self):
        return self.length

    def view(self, rng):
        """The clean scene view (colora.data.datasets.scene_view) of a random photo, flipped/rotated."""
        from colora.data.datasets import scene_view

        return scene_view(rng, self.images[int(rng.integers(len(self.images)))], self.region, True, True)

    def __getitem__(self, i):
        from colora.data.datasets import random_crop
        from colora.degradations.tasks import degrade_task
        from colora.metrics import calculate_psnr

        rng = np.random.default_rng([self.seed, i])
        gt = self.view(rng)
        u = rng.random()
        if u < self.p_clean:
            lq, recipe = gt, []
        elif u < self.p_clean + self.p_task:
            lq, recipe = degrade_task(gt, self.tasks[int(rng.integers(len(self.tasks)))], rng)
        else:
            lq, recipe = self.prod.degrade(gt, rng)
        lq = np.asarray(as_saved(lq), np.float32)  # as a saved photo: no float-only cue
        sev = CLEAN_PSNR if not recipe else min(CLEAN_PSNR, calculate_psnr(lq, gt))
        crops = [random_crop(rng, TILE, lq)[0] for _ in range(self.tiles)]
        x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2)
        labels = recipe_labels(recipe) if self.faint_db is None else visible_labels(gt, recipe, self.faint_db)
        return (x, thumbnail(lq)[0], torch.from_numpy(labels),
                torch.tensor([sev], dtype=torch.float32))


def train_estimator(dataroot=None, iters=2500, batch=32, lr=2e-3, seed=0, width=32, log_every=100, log=print,
                    tile_max=False, init=None, stats=False, **samples):
    """Train a DegradationEstimator from scratch (AdamW, 5 % linear warm-up, then cosine); returns it. Loss: binary
    cross-entropy per label + 0.05 x L1 of the severity in dB (so a 3 dB error weighs like a
    moderately wrong label). `tile_max`: see DegradationEstimator. `samples`: EstimatorSamples' mix
    (p_clean, p_task, tasks), view size (region), tiles per view (tiles) and faint_db. `init`: an
    estimator (a loaded one) to go on training instead of a fresh one (its width and pooling win).
    `stats`: the head also reads the image statistics (an `init` without them gains them)."""
    torch.manual_seed(seed)
    model = DegradationEstimator(width, tile_max=tile_max, stats=stats) if init is None else init.train()
    if stats:
        model = with_statistics(model).train()
    data = EstimatorSamples(dataroot, seed=seed, length=iters * batch, **samples)
    loader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=False, num_workers=0)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    warm = max(1, iters // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: min(1.0, (t + 1) / warm) * 0.5 * (1 + np.cos(np.pi * min(t, iters) / iters)))
    bce = nn.BCEWithLogitsLoss()
    model.train()
    for it, (x, thumb, y, sev) in enumerate(loader, 1):
        out = model(x, thumb)
        loss = bce(out[:, :-1], y) + 0.05 * (out[:, -1:] - sev).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if it % log_every == 0 or it == iters:
            acc = ((out[:, :-1] > 0).float() == y).float().mean().item()
            log(f"iter {it}/{iters} loss {loss.item():.4f} label accuracy {acc:.3f}")
    return model.eval()
