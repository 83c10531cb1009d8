"""The photo corpus (scripts/corpus.json) and the presets that make the shipped weights."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from colora.options import load_options

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import make_corpus  # noqa: E402

SPEC = json.loads((ROOT / "scripts" / "corpus.json").read_text())


def test_every_photo_has_a_source_licence_and_one_split():
    names = [p["name"] for p in SPEC["photos"]]
    assert len(names) == len(set(names))
    for p in SPEC["photos"]:
        assert p["split"] in ("train", "heldout")
        assert p["license"] and p["package"] and len(p["sha256"]) == 64


def test_the_committed_heldout_photos_are_exactly_the_heldout_split():
    heldout = {p["name"] for p in SPEC["photos"] if p["split"] == "heldout"}
    committed = {f.stem for f in (ROOT / "benchmarks" / "heldout").glob("*.png")}
    assert committed == heldout


def test_no_preset_trains_on_the_heldout_photos():
    for preset in (ROOT / "options").rglob("*.yml"):
        sets = (yaml.safe_load(preset.read_text()) or {}).get("datasets") or {}
        for phase in sets.values():
            roots = [str(phase.get(k) or "") for k in ("dataroot_gt", "dataroot_lq", "dataroot")]
            assert not any("heldout" in r for r in roots), preset


def test_downscale_keeps_rgb_and_the_long_side():
    grey = np.arange(300 * 200, dtype=np.uint8).reshape(300, 200)
    out = make_corpus.downscale(grey, 150)
    assert out.shape == (150, 100, 3) and out.dtype == np.uint8
    rgba = np.zeros((40, 60, 4), np.uint8)
    assert make_corpus.downscale(rgba, 100).shape == (40, 60, 3)  # never upscaled, alpha dropped


def test_the_shipped_weights_presets_load_and_share_one_base():
    pre = load_options(ROOT / "colora" / "presets" / "pretrain" / "nafnet_small_prod.yml")
    ft = load_options(ROOT / "colora" / "presets" / "finetune" / "synthetic.yml",
                      ["adapter.task=haze", "datasets.train.task=haze", "datasets.val.task=haze"])
    assert pre.warnings == [] and ft.warnings == []
    assert ft.network_g == pre.network_g  # the adapters are fine-tuned on that base
    assert pre.degradations.p_clean > 0  # the base also learns to leave clean photos alone
    raw = yaml.safe_load((ROOT / "colora" / "presets" / "finetune" / "synthetic.yml").read_text())
    assert raw["datasets"]["train"]["num_pairs"] is None  # fresh pairs, not 128 fixed ones


def test_photo_validation_scores_the_shipped_noise_adapter(capsys):
    """scripts/validate_photos.py (what training runs are picked on): the shipped noise adapter
    brings a whole photo degraded at photo scale closer to its clean self; --adapter is checked."""
    import validate_photos

    rows = validate_photos.validate(None, {}, ["noise"], photos=("chelsea",), size=96)
    assert rows["noise"]["adapter"][0] > rows["noise"]["input"][0] + 3
    validate_photos.main(["--tasks", "noise", "--photos", "chelsea", "--size", "64",
                          "--adapter", "noise=noise"])
    assert "noise" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        validate_photos.main(["--tasks", "noise", "--adapter", "haze=x"])
    rows = validate_photos.per_op(None, photos=("chelsea",), size=64)  # --per-op: every PROD op
    assert "haze" in rows and rows["gaussian_noise"][1] > rows["gaussian_noise"][0] + 3
    assert rows["clean"][0] == 100 and rows["clean"][1] > 35  # the untouched photo, returned nearly as is


def test_estimator_validation_degrades_deterministically_and_scores_the_shipped_estimator(capsys):
    """scripts/validate_estimator.py (what estimator runs are picked on): the same sets every call;
    the shipped estimator leaves the clean photo alone and calls noise on the noisy one."""
    import validate_estimator

    from colora.inference.estimator import load_estimator

    a = validate_estimator.degraded_sets(photos=("chelsea",), size=160, seeds=1)
    b = validate_estimator.degraded_sets(photos=("chelsea",), size=160, seeds=1)
    assert list(a) == list(validate_estimator.SETS) and all(np.array_equal(a[k][0], b[k][0]) for k in a)
    picks = validate_estimator.exact_picks(load_estimator(), {k: a[k] for k in ("clean", "noise")})
    assert picks == {"clean": 1.0, "noise": 1.0}
