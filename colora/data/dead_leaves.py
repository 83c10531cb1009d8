"""Dead-leaves images: procedural clean images, an unlimited training source beside photos.

The dead-leaves model (Matheron 1968) stacks opaque shapes ("leaves") of random colour at random
places, each hiding what fell before it. With disk radii distributed as r^-3 between rmin and
rmax it is scale invariant and has the edge, occlusion and power-spectrum statistics of natural
images (Lee, Mumford & Huang, "Occlusion models for natural images", IJCV 2001); Achddou, Gousseau
& Ladjal ("Synthetic images as a regularity prior for image restoration neural networks", SSVM
2021) trained denoisers on such images alone close to the same networks trained on photos.

Ours (`datasets.<phase>.dead_leaves: N` adds N of them to a synthetic dataset's clean images;
issue 13 asks whether they help, `benchmarks/paper_ablation.py --pretrains prod,prod_dead_leaves`
measures it): disks drawn back to front over a random background until `disks` have fallen,
radii r^-3 in [1.5 px, size / 4]; each leaf's colour is a random pixel of a clean photo when
photos are given (natural colour statistics), else uniform RGB; each leaf is shaded by a linear
gradient of up to ±15 % (flat leaves make a network expect flat regions); edges are anti-aliased
(cv2 LINE_AA), and with p 0.3 the whole image is defocused by a Gaussian of sigma 0.5-1.5 px
(Achddou et al.'s depth-of-field variant: not every edge of a photo is sharp). Images are made
when asked for, from (seed, index) alone, so they cost no memory and any worker makes the same.
"""
import cv2
import numpy as np

from colora.data.imagefolder import CACHE_BYTES

MAX_DISKS = 60_000  # a bound on the work; 99.9 % coverage comes first at these radii
RMIN, SHADE, P_DEFOCUS = 2.0, 0.15, 0.3
STREAM = 2**32 - 3  # the generator stream of dead-leaves images (datasets.py uses -1 and -2)


def radii(rng, n, rmin, rmax):
    """n radii with density proportional to r^-3 on [rmin, rmax] (inverse of its CDF)."""
    u = rng.random(n)
    return (rmin ** -2 - u * (rmin ** -2 - rmax ** -2)) ** -0.5


def dead_leaves(rng, size=512, palette=None, max_disks=MAX_DISKS):
    """One (size, size, 3) float32 image in [0, 1]. `palette`: (N, 3) float colours to draw leaf
    colours from (None: uniform RGB). Leaves are laid front to back, each showing only where no
    nearer leaf is (`remain`: the visible fraction left per pixel), until 99.9 % of the image is
    covered; a leaf falling where everything is covered is skipped without drawing it."""
    def colour():
        c = palette[int(rng.integers(len(palette)))] if palette is not None else rng.random(3)
        return np.asarray(c, np.float32)

    img = np.zeros((size, size, 3), np.float32)
    remain = np.ones((size, size), np.float32)
    mask = np.zeros((size, size), np.uint8)
    batch = 256
    for start in range(0, max_disks, batch):
        if start and start % 2048 == 0 and remain.mean() < 1e-3:
            break
        rs = radii(rng, batch, RMIN, size / 4)
        centres = rng.uniform(0, size, (batch, 2))
        for r, (cx, cy) in zip(rs, centres):
            x0, x1 = max(int(cx - r) - 1, 0), min(int(cx + r) + 2, size)
            y0, y1 = max(int(cy - r) - 1, 0), min(int(cy + r) + 2, size)
            left = remain[y0:y1, x0:x1]
            if left.max() < 1e-3:
                continue
            sub = mask[y0:y1, x0:x1]
            sub[:] = 0
            # 4 fractional bits: sub-pixel centre and radius, anti-aliased edge (alpha 0..255)
            cv2.circle(sub, (int(round((cx - x0) * 16)), int(round((cy - y0) * 16))), int(round(r * 16)), 255,
                       thickness=-1, lineType=cv2.LINE_AA, shift=4)
            seen = left * (sub.astype(np.float32) / 255.0)
            m, a = rng.uniform(0, SHADE) / r, rng.uniform(0, 2 * np.pi)
            dx, dy = np.arange(x0, x1, dtype=np.float32)[None] - cx, np.arange(y0, y1, dtype=np.float32)[:, None] - cy
            shade = 1.0 + m * (np.cos(a) * dx + np.sin(a) * dy)
            shade = np.clip(shade, 1 - SHADE, 1 + SHADE)
            img[y0:y1, x0:x1] += (seen * shade)[..., None] * colour()
            left -= seen
    img += remain[..., None] * colour()  # the ground under the last gaps
    if rng.random() < P_DEFOCUS:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.5, 1.5)))
    return np.clip(img, 0.0, 1.0)


def photo_palette(images, n=4096, seed=0):
    """(n, 3) colours: random pixels of the clean `images` (a dataset's Images; each read once)."""
    rng = np.random.default_rng([seed, STREAM])
    per = -(-n // len(images))
    picks = []
    for i in range(len(images)):
        img = images[i]
        ys, xs = rng.integers(img.shape[0], size=per), rng.integers(img.shape[1], size=per)
        picks.append(np.asarray(img[ys, xs, :3], np.float32))
    return np.concatenate(picks)[rng.permutation(per * len(images))[:n]]


class WithDeadLeaves:
    """A dataset's clean images followed by `count` dead-leaves images of `size`² (image j from the
    generator [seed, STREAM, j]; ~0.5 s each at 512², so each is kept once made, as many as fit in
    `budget` bytes, and the rest are made again when asked for); indexed and named like
    `imagefolder.Images`."""

    def __init__(self, images, count, size=512, seed=0, budget=CACHE_BYTES):
        self.images, self.count, self.size, self.seed = images, int(count), int(size), int(seed)
        self.palette = photo_palette(images, seed=seed)  # clean_images never returns none
        self.names = list(images.names) + [f"dead_leaves_{j:05d}" for j in range(self.count)]
        self.kept = min(self.count, budget // (self.size * self.size * 3 * 4))
        self.cache = {}

    def __len__(self):
        return len(self.names)

    def __getitem__(self, i):
        if i < len(self.images):
            return self.images[i]
        j = i - len(self.images)
        if not 0 <= j < self.count:
            raise IndexError(i)
        img = self.cache.get(j)
        if img is None:
            img = dead_leaves(np.random.default_rng([self.seed, STREAM, j]), self.size, self.palette)
            if j < self.kept:
                self.cache[j] = img
        return img
