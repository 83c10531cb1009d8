"""`colora degrade`: synthetic LQ/GT pairs written to disk, and a contact sheet of what PROD does.

Beside the datasets rather than inside the degradation ops, because the pairs *are* a dataset's
validation set (ProdDataset / TaskDataset, so a pure function of the seed), written with the
toolkit's image writer; the ops themselves stay free of datasets, files and options.
"""
import dataclasses
import difflib
import json
from pathlib import Path

import cv2
import numpy as np

from colora.data.build import build_dataset
from colora.degradations.prod import MODES
from colora.degradations.tasks import TASKS, replay
from colora.errors import OptionsError
from colora.fileio import atomic_write_text
from colora.imageio import tensor_to_image, to_float32, to_uint8, write_image
from colora.options import DatasetOpt, DegradationsOpt, load_section

PRESETS = MODES + tuple(TASKS)


def make_pairs(out_dir, clean_dir=None, preset="prod", seed=0, n=8, size=128, grid=None, photos=None,
               degradations=None):
    """Write `n` LQ/GT pairs as out_dir/{lq,gt}/<name>.png and out_dir/recipes/<name>.json.

    `preset`: a PROD mode (prod, fixed, single; with `degradations`, a DegradationsOpt or dict,
    for the rest of the section) or a task of TASKS. The pairs are the seeded validation set of
    the matching dataset (ProdDataset / TaskDataset) on `size`-px crops of the clean images in
    `clean_dir` (None = the bundled photos), so they are a pure function of `seed`. `grid`: also
    write a contact sheet there (see `contact_sheet`). Returns the pairs' names."""
    if preset not in PRESETS:
        close = difflib.get_close_matches(str(preset), PRESETS, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; choose one of: {', '.join(PRESETS)}"
        raise OptionsError(f"unknown preset '{preset}'{hint}")
    if n < 1 or size < 16:
        raise OptionsError(f"need at least one pair of at least 16x16 px, got n={n}, size={size}")
    task = preset if preset in TASKS else None
    deg = load_section(DegradationsOpt, degradations, "degradations")
    if not task:
        deg = dataclasses.replace(deg, mode=preset)
    opt = DatasetOpt(name=f"degrade-{preset}", type="TaskDataset" if task else "ProdDataset", task=task,
                     dataroot_gt=None if clean_dir is None else str(clean_dir), photos=photos,
                     gt_size=size, num_samples=n, seed=seed)
    dataset = build_dataset(opt, deg, phase="val")
    out, names, rows = Path(out_dir), [], []
    for i in range(len(dataset)):
        item = dataset[i]
        name, gt, recipe = item["key"], tensor_to_image(item["gt"]), json.loads(item["recipe"])
        write_image(out / "lq" / f"{name}.png", tensor_to_image(item["lq"]))
        write_image(out / "gt" / f"{name}.png", gt)
        atomic_write_text(out / "recipes" / f"{name}.json", json.dumps(
            {"name": name, "preset": preset, "seed": seed, "size": size, "recipe": recipe}, indent=1) + "\n")
        names.append(name)
        rows.append((gt, recipe))
    if grid is not None:
        write_image(grid, to_float32(contact_sheet(rows)))
    return names


def contact_sheet(rows, label_height=14):
    """A uint8 H×W×3 sheet with one row per (clean image, recipe): the clean image, then the
    image after each op in order (replayed, so exactly what the pair holds), each tile labelled
    with the op's name. Rows of fewer ops are padded with grey tiles."""
    h = max(img.shape[0] for img, _ in rows)
    w = max(img.shape[1] for img, _ in rows)
    cols = 1 + max(len(recipe) for _, recipe in rows)
    sheet = np.full((len(rows) * (h + label_height), cols * w, 3), 128, np.uint8)
    for r, (img, recipe) in enumerate(rows):
        tiles, current = [("clean", img)], img
        for step in recipe:
            current = replay(current, [step])
            tiles.append((step["op"], current))
        for c, (label, tile) in enumerate(tiles):
            y, x = r * (h + label_height), c * w
            sheet[y:y + label_height, x:x + w] = 0
            sheet[y + label_height:y + label_height + tile.shape[0], x:x + tile.shape[1]] = to_uint8(tile)
            text = f"{c}. {label}" if c else label
            scale = 0.4
            while scale > 0.2 and cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > w - 4:
                scale -= 0.05
            cv2.putText(sheet, text, (x + 2, y + label_height - 4), cv2.FONT_HERSHEY_SIMPLEX, scale,
                        (255, 255, 255), 1, cv2.LINE_AA)
    return sheet
