"""`colora eval`: restore LQ images, compare input and output against GT (PSNR / SSIM), from two
folders or from a benchmark split scored by its papers' protocol (colora.data.real.protocols).

The numbers are computed with colora.metrics on the images as written to disk would be (8-bit
quantised for 8-bit inputs), per image and on average, and optionally written as CSV and as a
side-by-side grid (LQ | restored | GT) for a person to look at.
"""
import csv
import io
from pathlib import Path

import cv2
import numpy as np

from colora.data.imagefolder import fail, pair_folders
from colora.data.real.protocols import Protocol
from colora.errors import ColoraError
from colora.fileio import atomic_write_bytes, atomic_write_text
from colora.imageio import as_saved, read_image, to_uint8, write_image

COLUMNS = ["name", "psnr_in", "ssim_in", "psnr_out", "ssim_out"]
GRID_ROWS = 8  # images kept for the grid (a benchmark split of 1280 blocks would not fit in memory)


def match_pairs(lq_dir, gt_dir):
    """[(key, lq path, gt path)] of two folders, paired as a PairedFolderDataset pairs them
    (sub-folders too); every unmatched or doubly named file in one error."""
    lq, gt, problems = pair_folders(lq_dir, gt_dir, recursive=True, labels=("LQ (--lq)", "GT (--gt)"))
    if problems:
        fail(problems, f"folders '{lq_dir}' (LQ) and '{gt_dir}' (GT)")
    return [(k, lq[k], gt[k]) for k in sorted(lq)]


def evaluate(restorer, lq_dir, gt_dir, crop_border=0, test_y_channel=False, output=None):
    """Per-image rows (dicts with COLUMNS) and their mean; restored images go to `output` if given."""
    def pairs():
        for stem, lq_path, gt_path in match_pairs(lq_dir, gt_dir):
            lq, gt = read_image(lq_path), read_image(gt_path)
            if lq.pixels.shape != gt.pixels.shape:
                raise ColoraError(f"'{lq_path.name}' is {lq.pixels.shape[1]}x{lq.pixels.shape[0]} but its GT is "
                                  f"{gt.pixels.shape[1]}x{gt.pixels.shape[0]}")
            yield stem, lq.pixels, gt.pixels, lq.bit_depth

    return evaluate_pairs(restorer, pairs(), Protocol(test_y_channel, crop_border), output)


def evaluate_benchmark(restorer, dataset, output=None):
    """`evaluate` on a benchmark split (a colora.data dataset), scored by its PROTOCOL."""
    pairs = ((key, dataset.lq[i], dataset.gt[i], 8) for i, key in enumerate(dataset.keys))
    return evaluate_pairs(restorer, pairs, dataset.PROTOCOL, output)


def evaluate_pairs(restorer, pairs, protocol, output=None):
    """Restore each (name, LQ, GT, bit depth) and score input and output by `protocol`."""
    rows = []
    for stem, lq, gt, bit_depth in pairs:
        out = as_saved(restorer.restore(lq), bit_depth)
        if output is not None:
            write_image(Path(output) / f"{stem}.png", out, bit_depth=bit_depth)
        (psnr_in, ssim_in), (psnr_out, ssim_out) = protocol.score(lq, gt, restored=False), protocol.score(out, gt)
        rows.append({"name": stem, "psnr_in": psnr_in, "ssim_in": ssim_in, "psnr_out": psnr_out,
                     "ssim_out": ssim_out, "_images": (lq, out, gt) if len(rows) < GRID_ROWS else None})
    if not rows:
        raise ColoraError("no image pairs to evaluate")
    mean = {k: float(np.mean([r[k] for r in rows])) for k in COLUMNS[1:]}
    return rows, mean


def write_csv(path, rows, mean):
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([r["name"]] + [f"{r[k]:.4f}" for k in COLUMNS[1:]])
    writer.writerow(["mean"] + [f"{mean[k]:.4f}" for k in COLUMNS[1:]])
    atomic_write_text(path, buf.getvalue())


def write_grid(path, rows, crop=192, max_rows=GRID_ROWS):
    """One row per image: LQ | restored | GT, centre crops of `crop` pixels, labelled with PSNR."""
    tiles = []
    for r in rows[:max_rows]:
        cells = []
        for label, img in zip(("input", "restored", "GT"), r["_images"]):
            img = img if img.shape[-1] == 3 else np.repeat(img, 3, axis=-1)
            h, w = img.shape[:2]
            c = min(crop, h, w)
            y, x = (h - c) // 2, (w - c) // 2
            tile = cv2.resize(to_uint8(img[y:y + c, x:x + c]), (crop, crop), interpolation=cv2.INTER_NEAREST)
            text = {"input": f"input {r['psnr_in']:.2f} dB", "restored": f"out {r['psnr_out']:.2f} dB"}.get(label, "GT")
            cv2.putText(tile, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1, cv2.LINE_AA)
            cells.append(tile)
        tiles.append(np.concatenate(cells, axis=1))
    grid = np.concatenate(tiles, axis=0)
    ok, data = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    atomic_write_bytes(path, data.tobytes())
