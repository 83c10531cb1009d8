"""The degradation estimator: labels from recipes, any image size, determinism, files, CLI."""
import json

import numpy as np
import pytest
import torch
from skimage import data

from colora import cli
from colora.errors import ColoraError
from colora.inference.estimator import (LABELS, TILE, DegradationEstimator, detected, estimate, load_estimator,
                                        recipe_labels, save_estimator, tiles_of, train_estimator, visible_labels)


@pytest.fixture(scope="module")
def trained():
    """A few iterations on the bundled photos (the mechanics; the shipped one is tested for skill)."""
    torch.set_num_threads(1)
    return train_estimator(None, iters=4, batch=4, seed=0, log=lambda *_: None)


def test_labels_come_from_the_recipe():
    assert recipe_labels([]).tolist() == [1, 0, 0, 0, 0, 0]
    y = recipe_labels(json.dumps([{"op": "haze", "params": {}}, {"op": "rain", "params": {}},
                                  {"op": "jpeg", "params": {}}]))
    assert {LABELS[i] for i in np.flatnonzero(y)} == {"haze", "rain"}
    assert recipe_labels([{"op": "motion_blur", "params": {}}])[LABELS.index("blur")] == 1


@pytest.mark.parametrize("shape", [(40, 30, 3), (96, 96, 3), (300, 1000, 3), (2000, 1500, 3)])
def test_tiles_cover_any_size_in_bounded_count(shape):
    t = tiles_of(np.zeros(shape, np.float32), max_tiles=16)
    assert t.shape[1:] == (3, TILE, TILE) and 1 <= t.shape[0] <= 16


def test_estimate_is_deterministic_and_complete():
    torch.manual_seed(0)
    model = DegradationEstimator()
    img = data.astronaut()
    a, b = estimate(model, img), estimate(model, img.copy())
    assert a == b and set(a) == set(LABELS) | {"severity"}
    assert all(0 <= a[k] <= 1 for k in LABELS) and a["severity"] <= 50
    grey16 = (data.camera().astype(np.uint16) * 257)
    assert set(estimate(model, grey16)) == set(a)  # grey and 16-bit images too


def test_the_shipped_estimator_matches_its_manifest_and_tells_noise_haze_and_clean_apart():
    from safetensors.torch import load_file

    from colora.checkpoint import state_dict_sha256
    from colora.inference.restorer import WEIGHTS_DIR

    entry = json.loads((WEIGHTS_DIR / "MANIFEST.json").read_text())["estimator"]
    assert state_dict_sha256(load_file(str(WEIGHTS_DIR / entry["file"]))) == entry["tensors_sha256"]
    model = load_estimator()  # trained on the corpus photos only; chelsea is not among them
    clean = data.chelsea()
    rng = np.random.default_rng(1)
    noisy = np.clip(clean + rng.normal(0, 30, clean.shape), 0, 255).astype(np.uint8)
    hazy = (clean * 0.45 + 0.55 * np.array([200, 205, 215])).astype(np.uint8)
    c, n, h = (estimate(model, x) for x in (clean, noisy, hazy))
    assert detected(c) == () and detected(n) == ("noise",) and "haze" in detected(h), (c, n, h)
    assert n["severity"] < c["severity"] and h["severity"] < c["severity"]


def test_saved_estimator_reloads_identically_and_bad_files_are_refused(trained, tmp_path):
    path = tmp_path / "est.safetensors"
    save_estimator(trained, path)
    img = data.coffee()
    assert estimate(load_estimator(path), img) == estimate(trained, img)
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(ColoraError, match="not a colora degradation estimator"):
        load_estimator(tmp_path / "junk.safetensors")
    with pytest.raises(ColoraError, match="not found"):
        load_estimator(tmp_path / "missing.safetensors")


def test_cli_runs_a_folder_and_writes_json(trained, tmp_path, capsys):
    import cv2

    save_estimator(trained, tmp_path / "est.safetensors")
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.png"), data.astronaut()[:200, :300, ::-1])
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    code = cli.main(["estimator", "run", "-i", str(photos), "--model", str(tmp_path / "est.safetensors"),
                     "--json", str(tmp_path / "out.json")])
    out = capsys.readouterr().out
    assert code == 1  # one file failed, the other was estimated
    assert "broken.png: failed" in out and "a.png:" in out
    result = json.loads((tmp_path / "out.json").read_text())
    assert list(result) == [str(photos / "a.png")] and "severity" in result[str(photos / "a.png")]
    assert cli.main(["estimator", "train", "-o", str(tmp_path / "x.safetensors"), "--iters", "0"]) == 2


def test_detected_orders_tasks_and_merges_rain_with_drops():
    est = dict.fromkeys(LABELS, 0.0) | {"severity": 30.0}
    assert detected(est | {"clean": 0.9}) == ()
    assert detected(est | {"haze": 0.8, "rain": 0.7}) == ("rain", "haze")
    assert detected(est | {"rain": 0.7, "raindrop": 0.6, "noise": 0.9}) == ("noise", "rain_raindrop")
    assert detected(est | {"blur": 0.55, "clean": 0.6}) == ()  # clean outranks a weak detection


@pytest.mark.parametrize("old_kind", [{"global_view": False}, {"tile_max": False}, {"tile_max": True}])
def test_every_kind_of_estimator_loads_as_saved(tmp_path, old_kind):
    torch.manual_seed(0)
    old = DegradationEstimator(8, **old_kind)
    save_estimator(old, tmp_path / "old.safetensors")
    img = data.coffee()
    back = load_estimator(tmp_path / "old.safetensors")
    assert (back.global_view, back.tile_max) == (old.global_view, old.tile_max)
    assert estimate(back, img) == estimate(old, img)
    new = DegradationEstimator(8)
    with pytest.raises(ValueError, match="global view"):
        new(tiles_of(np.zeros((96, 96, 3), np.float32)))


def test_one_tile_that_shows_something_moves_the_estimate_through_the_tile_max():
    """A feature seen in one tile of sixteen reaches the head undiluted: the max over the tiles."""
    torch.manual_seed(0)
    model = DegradationEstimator(8, tile_max=True).eval()
    tiles, thumb = torch.full((16, 3, TILE, TILE), 0.5), torch.full((1, 3, TILE, TILE), 0.5)
    marked = tiles.clone()
    marked[3, :, 40:56, 40:56] = 1.0  # one bright blob in one tile
    with torch.no_grad():
        f = model._pool(model.features(torch.stack([tiles[0], marked[3]]) * 2 - 1))
        pooled = model._over_tiles(model._pool(model.features(marked * 2 - 1))[None], 1)[0]
    width = f.shape[1]
    assert torch.allclose(pooled[width:], torch.maximum(f[0], f[1]), atol=1e-6)  # the max half: the blob's tile
    assert not torch.allclose(pooled[:width], f[1], atol=1e-4)  # the mean half: diluted 1/16


def test_training_samples_pair_a_native_tile_with_the_whole_view():
    from colora.inference.estimator import EstimatorSamples

    d = EstimatorSamples(None, photos=["astronaut"], seed=3, length=4, region=128, tiles=3)
    x, thumb, y, sev = d[1]
    assert x.shape == (3, 3, TILE, TILE) and thumb.shape == (3, TILE, TILE)
    assert y.shape == (len(LABELS),) and sev.shape == (1,)
    again = d[1]
    assert all(torch.equal(a, b) for a, b in zip((x, thumb, y, sev), again))  # a pure function of (seed, i)


def test_several_tiles_of_an_image_are_averaged_as_estimate_averages_a_photos_tiles():
    torch.manual_seed(0)
    model = DegradationEstimator(8).eval()
    tiles = torch.rand(4, 3, TILE, TILE)
    thumb = torch.rand(1, 3, TILE, TILE)
    with torch.no_grad():
        batched = model(tiles[None], thumb)  # training: (B=1, K=4) tiles
        one_photo = model(tiles, thumb)  # estimate: 4 tiles of one photo
    assert batched.shape == (1, len(LABELS) + 1) and torch.allclose(batched, one_photo, atol=1e-6)


def test_cli_tile_max_trains_an_estimator_that_pools_by_the_max(tmp_path):
    for flag, expected in (([], False), (["--tile-max"], True)):
        out = tmp_path / f"est{len(flag)}.safetensors"
        assert cli.main(["estimator", "train", "-o", str(out), "--iters", "2", "--batch", "2", "--tiles", "2",
                         "--width", "4", "--threads", "1", *flag]) == 0
        assert load_estimator(out).tile_max is expected


def test_training_options_are_checked(tmp_path):
    out = tmp_path / "x.safetensors"
    assert cli.main(["estimator", "train", "-o", str(out), "--tiles", "0"]) == 2
    assert cli.main(["estimator", "train", "-o", str(out), "--region", "64"]) == 2
    assert cli.main(["estimator", "train", "-o", str(out), "--faint-db", "0"]) == 2
    not_an_estimator = tmp_path / "photo.safetensors"
    not_an_estimator.write_bytes(b"not safetensors")
    assert cli.main(["estimator", "train", "-o", str(out), "--init", str(not_an_estimator)]) == 2
    assert not out.exists()


def test_faint_degradations_are_not_labelled_present():
    gt = data.astronaut()[::4, ::4].astype(np.float32) / 255
    faint = {"op": "gaussian_noise", "params": {"sigma": 0.2, "seed": 1, "grey": False, "correlation": 0.0}}
    visible = {"op": "motion_blur", "params": {"length": 15.0, "angle": 30.0, "seed": 2, "kind": "linear"}}
    assert recipe_labels([faint])[LABELS.index("noise")] == 1
    y = visible_labels(gt, [faint], faint_db=40)
    assert y.tolist() == [1, 0, 0, 0, 0, 0]  # nothing visible: clean
    y = visible_labels(gt, [faint, visible], faint_db=40)
    assert {LABELS[i] for i in np.flatnonzero(y)} == {"blur"}
    assert visible_labels(gt, [], faint_db=40).tolist() == recipe_labels([]).tolist()


def test_training_goes_on_from_a_given_estimator(trained, tmp_path):
    start = tmp_path / "start.safetensors"
    save_estimator(trained, start)
    out = tmp_path / "more.safetensors"
    assert cli.main(["estimator", "train", "-o", str(out), "--iters", "1", "--batch", "2", "--threads", "1",
                     "--init", str(start), "--faint-db", "40"]) == 0
    before, after = load_estimator(start).state_dict(), load_estimator(out).state_dict()
    assert before.keys() == after.keys()
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    # one step from the given weights: every tensor moved, and only a little (a new network would differ wholesale)
    assert moved == list(before) and max((before[k] - after[k]).abs().max() for k in before) < 0.05
