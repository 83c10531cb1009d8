"""Datasets on real photos: item format, the (seed, epoch, index) contract, folders and errors."""
import json
import logging
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from colora.data.build import build_dataset
from colora.data.datasets import PairedFolderDataset
from colora.errors import OptionsError
from colora.degradations import replay
from colora.errors import ColoraError
from colora.imageio import bundled_photos, write_image

PHOTOS = ["astronaut", "chelsea", "coffee"]
SMALL = {k: cv2.resize(v, (96, 72), interpolation=cv2.INTER_AREA) for k, v in bundled_photos(PHOTOS).items()}


def prod(**kw):
    return build_dataset({"type": "ProdDataset", "gt_size": 32, "photos": PHOTOS, **kw}, {"k_max": 3})


def _same(a, b):
    return all(a[k].numpy().tobytes() == b[k].numpy().tobytes() for k in ("lq", "gt")) and \
        a["key"] == b["key"] and a["recipe"] == b["recipe"]


@pytest.fixture
def clean_dir(tmp_path):
    for name, img in SMALL.items():
        write_image(tmp_path / "clean" / f"{name}.png", img)
    return tmp_path / "clean"


def test_items_and_purity():
    ds = prod()
    assert len(ds) == 3
    item = ds[(2, 1)]
    for k in ("lq", "gt"):
        assert item[k].dtype == torch.float32 and item[k].shape == (3, 32, 32)
        assert 0 <= item[k].min() and item[k].max() <= 1
    assert item["key"] == "chelsea_e2"
    recipe = json.loads(item["recipe"])
    gt = item["gt"].permute(1, 2, 0).numpy()
    assert np.array_equal(replay(gt, recipe), item["lq"].permute(1, 2, 0).numpy())
    assert _same(prod()[(2, 1)], item)  # a fresh dataset, any access order: the same sample
    assert _same(ds[1], ds[(0, 1)])
    assert not np.array_equal(ds[(3, 1)]["gt"], item["gt"])  # another epoch, another crop
    assert not np.array_equal(prod(seed=1)[(2, 1)]["gt"], item["gt"])


def test_worker_count_does_not_change_a_batch():
    ds = prod()
    keys = [(e, i) for e in range(3) for i in (2, 0, 1)]
    batches = []
    for workers in (0, 2):
        loader = torch.utils.data.DataLoader(ds, batch_size=3, sampler=keys, num_workers=workers,
                                             persistent_workers=False)
        batches.append(list(loader))
    for a, b in zip(*batches):
        assert torch.equal(a["lq"], b["lq"]) and torch.equal(a["gt"], b["gt"]) and a["recipe"] == b["recipe"]


def test_validation_set_is_fixed():
    val = build_dataset({"type": "TaskDataset", "task": "rain", "gt_size": 32, "photos": PHOTOS,
                         "num_samples": 5, "seed": 3}, phase="val")
    assert len(val) == 5
    assert _same(val[(0, 4)], val[(9, 4)]) and val[4]["key"] == "0004_chelsea"
    assert [s["op"] for s in json.loads(val[0]["recipe"])] == ["rain"]


def test_prod_validation_draws_no_clean_sample():
    """p_clean trains the identity but would make validation's input PSNR infinite: val leaves it
    out, so its pairs are those of the same section without p_clean."""
    section = {"type": "ProdDataset", "gt_size": 32, "photos": PHOTOS, "num_samples": 12}
    always = {"k_max": 2, "p_clean": 1.0}
    train = build_dataset(section, always, phase="train")
    assert all(json.loads(train[(0, i)]["recipe"]) == [] for i in range(3))  # training keeps p_clean
    val = build_dataset(section, always, phase="val")
    plain = build_dataset(section, {"k_max": 2}, phase="val")
    for i in range(12):
        assert json.loads(val[i]["recipe"]) and _same(val[i], plain[i])
        assert not torch.equal(val[i]["lq"], val[i]["gt"])


def test_task_all_draws_every_task_deterministically():
    """`task: all` (the all-in-one adapter's data): each pair one task, all six appear, same every time."""
    opt = {"type": "TaskDataset", "task": "all", "gt_size": 32, "photos": PHOTOS, "num_samples": 40, "seed": 5}
    val, again = build_dataset(opt, phase="val"), build_dataset(opt, phase="val")
    ops = [tuple(s["op"] for s in json.loads(val[i]["recipe"])) for i in range(40)]
    assert ops == [tuple(s["op"] for s in json.loads(again[i]["recipe"])) for i in range(40)]
    seen = {op for recipe in ops for op in recipe}
    assert {"rain", "raindrop", "haze"} <= seen and len(set(ops)) >= 5
    assert "lowlight" not in seen  # the six tasks CoLoRA fine-tunes, not colora's extra
    with pytest.raises(OptionsError, match="or all"):
        build_dataset(dict(opt, task="everything"), phase="val")


def test_task_dataset_p_clean_leaves_that_share_of_training_pairs_undegraded():
    """`p_clean` (an adapter that should leave a photo without its degradation alone): about that
    share of training pairs has lq == gt and an empty recipe; validation never draws one."""
    opt = {"type": "TaskDataset", "task": "haze", "gt_size": 32, "photos": PHOTOS, "num_samples": 8, "p_clean": 0.5}
    ds = build_dataset(opt)
    items = [ds[(e, i)] for e in range(10) for i in range(len(ds))]
    clean = [torch.equal(it["lq"], it["gt"]) for it in items]
    assert all(json.loads(it["recipe"]) == [] for it, c in zip(items, clean) if c)
    assert 0.3 < np.mean(clean) < 0.7
    val = build_dataset(opt, phase="val")
    assert not any(torch.equal(val[i]["lq"], val[i]["gt"]) for i in range(8))
    plain = build_dataset(dict(opt, p_clean=0.0))
    assert not any(torch.equal(plain[(e, 0)]["lq"], plain[(e, 0)]["gt"]) for e in range(10))
    with pytest.raises(OptionsError, match="p_clean"):
        build_dataset(dict(opt, p_clean=1.5))


def test_task_dataset_reuses_its_fixed_pairs():
    opt = {"type": "TaskDataset", "task": "haze", "gt_size": 32, "photos": PHOTOS, "num_pairs": 4}
    ds = build_dataset(opt)
    assert len(ds) == 4 and all(gt.shape[:2] == (64, 64) for _, gt, _, _ in ds.pairs)  # 2 * gt_size
    recipes = {ds[(e, i)]["recipe"] for e in range(6) for i in range(4)}
    assert recipes == {p[3] for p in ds.pairs} and len(recipes) == 4
    item = ds[(5, 2)]
    _, pair_gt, _, _ = ds.pairs[2]
    gt = item["gt"].permute(1, 2, 0).numpy()
    windows = [np.rot90(g, k) for g in (pair_gt, pair_gt[:, ::-1]) for k in range(4)]
    assert any(_contains(w, gt) for w in windows)  # a crop of the fixed pair (up to flips)
    again = build_dataset(opt)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(ds.pairs, again.pairs))


def _contains(big, small):
    h, w = small.shape[:2]
    return any(np.array_equal(big[y:y + h, x:x + w], small)
               for y in range(big.shape[0] - h + 1) for x in range(big.shape[1] - w + 1))


def test_clean_folder_grey_small_and_errors(clean_dir, tmp_path, caplog):
    write_image(clean_dir / "sub" / "grey.png", SMALL["coffee"][..., 0])
    write_image(clean_dir / "tiny.png", SMALL["coffee"][:20, :20])
    with caplog.at_level(logging.WARNING, logger="colora"):
        ds = build_dataset({"type": "ProdDataset", "dataroot_gt": str(clean_dir), "gt_size": 32})
    assert "tiny" in caplog.text and "smaller than the 32-px patch" in caplog.text
    assert ds.images.names == ["astronaut", "chelsea", "coffee", "sub_grey"]
    assert ds[3]["gt"].shape == (3, 32, 32)
    with pytest.raises(ColoraError, match="no clean image is at least 128x128"):
        build_dataset({"type": "ProdDataset", "dataroot_gt": str(clean_dir), "gt_size": 128})
    with pytest.raises(ColoraError, match=r"folder '.*missing' does not exist"):
        build_dataset({"type": "ProdDataset", "dataroot_gt": str(tmp_path / "missing")})
    (tmp_path / "empty").mkdir()
    with pytest.raises(ColoraError, match=r"folder '.*empty' holds no images"):
        build_dataset({"type": "TaskDataset", "task": "rain", "dataroot_gt": str(tmp_path / "empty")})
    with pytest.raises(ColoraError, match="did you mean 'PairedFolderDataset'"):
        build_dataset({"type": "PairedFolderDatset"})


def _paired(tmp_path, names=("astronaut", "chelsea", "coffee")):
    for name in names:
        write_image(tmp_path / "gt" / f"{name}.png", SMALL[name])
        write_image(tmp_path / "lq" / f"{name}.png", np.clip(SMALL[name] * 0.8, 0, 1))
    return {"type": "PairedImageDataset", "dataroot_lq": str(tmp_path / "lq"),
            "dataroot_gt": str(tmp_path / "gt"), "gt_size": 32}


def test_paired_folders(tmp_path):
    opt = _paired(tmp_path)
    (tmp_path / "lq" / "coffee.png").unlink()
    write_image(tmp_path / "lq" / "coffee.tif", np.clip(SMALL["coffee"] * 0.8, 0, 1))  # matched by stem
    ds = build_dataset(opt)
    assert isinstance(ds, PairedFolderDataset) and ds.keys == ["astronaut", "chelsea", "coffee"]
    item = ds[(1, 2)]
    assert item["lq"].shape == item["gt"].shape == (3, 32, 32) and item["recipe"] == ""
    assert torch.allclose(item["lq"], item["gt"] * 0.8, atol=1 / 255)  # the same window of both
    assert _same(build_dataset(opt)[(1, 2)], item)
    val = build_dataset(opt, phase="val")
    assert val[0]["gt"].shape == (3, 72, 96) and val[0]["key"] == "astronaut"  # whole images


def test_paired_folder_problems_in_one_error(tmp_path):
    opt = _paired(tmp_path)
    write_image(tmp_path / "gt" / "orphan.png", SMALL["coffee"])
    (tmp_path / "lq" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    (tmp_path / "gt" / "broken.png").write_bytes(b"not an image")
    write_image(tmp_path / "lq" / "zebra.png", SMALL["chelsea"])
    write_image(tmp_path / "lq" / "zz_top.png", SMALL["chelsea"])
    write_image(tmp_path / "lq" / "astronaut.tif", SMALL["astronaut"])
    with pytest.raises(ColoraError) as err:
        build_dataset(opt)
    msg = str(err.value)
    assert "6 problems" in msg and "no LQ image for GT" in msg and "orphan.png" in msg and "and 1 more" in msg
    assert "two LQ files named 'astronaut'" in msg and "zebra.png" in msg
    assert "cannot read image" in msg and "broken.png" in msg and len(msg.splitlines()) == 1
    for path in ("gt/orphan.png", "lq/broken.png", "gt/broken.png", "lq/zebra.png", "lq/zz_top.png", "lq/astronaut.tif"):
        (tmp_path / path).unlink()
    write_image(tmp_path / "lq" / "chelsea.png", SMALL["chelsea"][:40])
    with pytest.raises(ColoraError, match=r"1 problem: 'chelsea' is 96x40 px in LQ but 96x72 px in GT"):
        build_dataset(opt)
    with pytest.raises(ColoraError, match=r"LQ \(dataroot_lq\) folder '.*nowhere' does not exist"):
        build_dataset({**opt, "dataroot_lq": str(tmp_path / "nowhere")})
    (tmp_path / "void").mkdir()
    with pytest.raises(ColoraError, match=r"GT \(dataroot_gt\) folder '.*void' holds no images"):
        build_dataset({**opt, "dataroot_gt": str(tmp_path / "void")})


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "colora.cli", "degrade", *args], capture_output=True, text=True)


def test_cli_degrade(clean_dir, tmp_path):
    out = tmp_path / "out"
    proc = _cli("-i", str(clean_dir), "-o", str(out), "-n", "4", "--size", "32", "--seed", "5",
                "--grid", str(tmp_path / "grid.png"))
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.stem for p in (out / "lq").iterdir())
    assert names == ["0000_astronaut", "0001_chelsea", "0002_coffee", "0003_astronaut"]
    assert sorted(p.stem for p in (out / "gt").iterdir()) == names
    recipe = json.loads((out / "recipes" / "0001_chelsea.json").read_text())
    assert recipe["preset"] == "prod" and recipe["seed"] == 5 and recipe["recipe"]
    grid = cv2.imread(str(tmp_path / "grid.png"))
    assert grid.shape[0] == 4 * (32 + 14) and grid.shape[1] % 32 == 0
    proc = _cli("-i", str(tmp_path / "nowhere"), "-o", str(out))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "nowhere' does not exist" in proc.stderr


def _drop_sizes(ds, n=12):
    """Mean area (px) of the connected regions a raindrop item changed."""
    areas = []
    for i in range(n):
        item = ds[(0, i % len(ds))] if ds.phase == "train" else ds[i]
        changed = ((item["lq"] - item["gt"]).abs().amax(0) > 0.02).numpy().astype(np.uint8)
        _, _, stats, _ = cv2.connectedComponentsWithStats(changed)
        areas += stats[1:, cv2.CC_STAT_AREA].tolist()
    return np.mean(areas)


def test_scene_size_degrades_a_photo_scale_view_then_crops():
    """scene_size: drops are drawn at the scale of a whole photo (radii relative to the view), not
    of the 48-px crop, so the crop shows larger drops; items stay pure; too small is refused."""
    opt = {"type": "TaskDataset", "task": "raindrop", "gt_size": 48, "photos": PHOTOS, "num_samples": 12, "seed": 2}
    crop, scene = build_dataset(opt, phase="val"), build_dataset(dict(opt, scene_size=256), phase="val")
    item = scene[3]
    assert item["lq"].shape == item["gt"].shape == (3, 48, 48)
    assert _same(item, build_dataset(dict(opt, scene_size=256), phase="val")[3])
    assert _drop_sizes(scene) > 2 * _drop_sizes(crop)
    train = build_dataset(dict(opt, scene_size=128))
    assert _same(train[(1, 2)], build_dataset(dict(opt, scene_size=128))[(1, 2)])
    pairs = build_dataset(dict(opt, scene_size=128, num_pairs=2))
    assert all(gt.shape[:2] == (96, 96) for _, gt, _, _ in pairs.pairs)
    with pytest.raises(OptionsError, match="scene_size .* must be at least gt_size"):
        build_dataset(dict(opt, scene_size=32))
