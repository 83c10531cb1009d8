"""PROD sampler: random subsets in random order, the fixed/single ablations, seeds, validation."""
import json
from collections import Counter

import cv2
import numpy as np
import pytest

from colora.degradations import OPS, replay, task_ops
from colora.data.pairs import contact_sheet
from colora.degradations.prod import DEFAULT_POOL, ProdSampler
from colora.errors import OptionsError
from colora.imageio import bundled_photos
from colora.options import DegradationsOpt, load_options

ASTRONAUT = bundled_photos(["astronaut"])["astronaut"]
CROP = np.ascontiguousarray(cv2.resize(ASTRONAUT, (32, 32), interpolation=cv2.INTER_AREA))


def sampler_of(**section):
    """The sampler of a `degradations` section (unchecked: the sampler checks it)."""
    return ProdSampler(DegradationsOpt(**section))


def _ops(recipe):
    return [step["op"] for step in recipe]


def test_both_orders_of_a_pair_occur_and_recipes_replay():
    sampler = sampler_of(k_max=2, ops={"jpeg": {}, "gaussian_noise": {"sigma": [5, 10]}})
    orders = Counter()
    for seed in range(60):
        out, recipe = sampler.degrade(CROP, seed)
        orders[tuple(_ops(recipe))] += 1
        assert out.shape == CROP.shape and out.dtype == np.float32
        assert replay(CROP, json.loads(json.dumps(recipe))).tobytes() == out.tobytes()
    assert orders[("jpeg", "gaussian_noise")] > 0 and orders[("gaussian_noise", "jpeg")] > 0
    assert orders[("jpeg",)] > 0 and orders[("gaussian_noise",)] > 0
    noise = [s["params"]["sigma"] for seed in range(20) for s in sampler.degrade(CROP, seed)[1]
             if s["op"] == "gaussian_noise"]
    assert noise and all(5 <= s <= 10 for s in noise)  # the range override is used


@pytest.mark.parametrize("ops", [None, ["jpeg", "rain", "gaussian_noise", "defocus_blur"]])
def test_fixed_mode_never_reorders(ops):
    opt = {"mode": "fixed", "k_max": 4}
    if ops:
        opt["ops"] = {name: {} for name in ops}
    sampler = sampler_of(**opt)
    canonical = ops or list(DEFAULT_POOL)
    assert sampler.names == canonical
    seen = set()
    for seed in range(300):
        names = [sampler.names[i] for i in sampler.draw(np.random.default_rng(seed))]
        positions = [canonical.index(n) for n in names]
        assert positions == sorted(positions) and len(set(names)) == len(names), names
        seen.add(len(names))
    assert seen == {1, 2, 3, 4}
    out, recipe = sampler.degrade(CROP, 1)
    assert [canonical.index(n) for n in _ops(recipe)] == sorted(canonical.index(n) for n in _ops(recipe))


def test_single_mode_and_k_max():
    single = sampler_of(mode="single", k_max=5)
    assert all(len(single.draw(np.random.default_rng(s))) == 1 for s in range(200))
    prod = sampler_of(k_max=3)
    ks = Counter(len(prod.draw(np.random.default_rng(s))) for s in range(600))
    assert set(ks) == {1, 2, 3} and min(ks.values()) > 150  # k ~ U{1..k_max}
    few = sampler_of(k_max=5, ops={"jpeg": {}, "rain": {}})  # no repeats: capped at the pool
    assert max(len(few.draw(np.random.default_rng(s))) for s in range(100)) == 2
    rep = sampler_of(k_max=3, allow_repeat=True, ops={"jpeg": {}})
    assert max(len(rep.draw(np.random.default_rng(s))) for s in range(100)) == 3


def test_seeds_reproduce_and_differ():
    sampler = sampler_of(k_max=3)
    a, ra = sampler.degrade(CROP, np.random.default_rng(7))
    b, rb = sampler_of(k_max=3).degrade(CROP, np.random.default_rng(7))
    assert a.tobytes() == b.tobytes() and ra == rb
    c, _ = sampler.degrade(CROP, np.random.default_rng(8))
    assert a.tobytes() != c.tobytes()


def test_exclude_ops_and_tasks_and_weights():
    sampler = sampler_of(k_max=4, exclude=["rain_raindrop", "jpeg", "noise"])
    banned = {"rain", "raindrop", "jpeg", *task_ops("noise")}
    assert not banned & set(sampler.names)
    no_blur = sampler_of(exclude=["blur"]).names  # the blur task's mild noise is no blur
    assert "gaussian_noise" in no_blur and not {n for n in no_blur if n.endswith("blur")}
    drawn = {sampler.names[i] for s in range(300) for i in sampler.draw(np.random.default_rng(s))}
    assert drawn == set(sampler.names)  # everything else does occur
    weighted = sampler_of(k_max=1, ops={"jpeg": {"prob": 1.0}, "rain": {"prob": 0.1}, "haze": {"prob": 0}})
    assert weighted.names == ["jpeg", "rain"]  # prob 0 disables an op
    counts = Counter(weighted.names[weighted.draw(np.random.default_rng(s))[0]] for s in range(500))
    assert counts["jpeg"] > 5 * counts["rain"] > 0


def test_default_pool():
    assert set(DEFAULT_POOL) <= set(OPS) and "lowlight" not in DEFAULT_POOL
    assert sampler_of().names == list(DEFAULT_POOL)


@pytest.mark.parametrize("section, message", [
    ({"ops": {"gausian_noise": {}}}, "unknown degradation 'gausian_noise'; did you mean 'gaussian_noise'"),
    ({"ops": {"gaussian_noise": {"sigma": [5, 1]}}}, "range for gaussian_noise.sigma has min 5 > max 1"),
    ({"ops": {"gaussian_noise": {"prob": 1.5}}}, "degradations.ops.gaussian_noise.prob must be a number in [0, 1]"),
    ({"ops": {"jpeg": {"prob": -0.1}}}, "degradations.ops.jpeg.prob must be a number in [0, 1]"),
    ({"k_max": 0}, "degradations.k_max must be an integer of at least 1, got 0"),
    ({"mode": "random"}, "degradations.mode is 'random'; choose one of: prod, fixed, single"),
    ({"exclude": ["rian"]}, "'rian' is neither a degradation nor a task; did you mean 'rain'"),
    ({"ops": {"rain": {}}, "exclude": ["rain"]}, "no degradation left to draw"),
    ({"ops": {"jpeg": {"qualty": [30, 40]}}}, "jpeg has no parameter 'qualty' (did you mean 'quality'?)"),
    ({"p_clean": 1.5}, "degradations.p_clean must be a probability in [0, 1], got 1.5"),
    ({"p_clean": -0.1}, "degradations.p_clean must be a probability in [0, 1], got -0.1"),
])
def test_bad_options_fail_clearly(section, message):
    with pytest.raises(OptionsError) as err:
        sampler_of(**section)
    assert message in str(err.value)
    with pytest.raises(OptionsError) as err:  # and already when the YAML is loaded
        load_options({"degradations": section})
    assert message in str(err.value)


def test_contact_sheet_shows_every_step():
    rows = [sampler_of(k_max=3).degrade(CROP, s)[1] for s in range(3)]
    sheet = contact_sheet([(CROP, r) for r in rows], label_height=14)
    assert sheet.dtype == np.uint8
    assert sheet.shape == (3 * (32 + 14), (1 + max(map(len, rows))) * 32, 3)
    np.testing.assert_array_equal(sheet[14:46, :32], np.rint(CROP * 255).astype(np.uint8))


def test_p_clean_leaves_some_samples_clean():
    clean_count = 0
    sampler = sampler_of(k_max=2, p_clean=0.3)
    for seed in range(100):
        out, recipe = sampler.degrade(CROP, seed)
        if not recipe:
            clean_count += 1
            assert out.tobytes() == CROP.tobytes() and out is not CROP
        assert replay(CROP, json.loads(json.dumps(recipe))).tobytes() == out.tobytes()
    assert 15 <= clean_count <= 45
    always = sampler_of(p_clean=1)
    assert all(always.degrade(CROP, s)[1] == [] for s in range(5))


def test_p_clean_zero_keeps_old_samples():
    """The default draws no extra random number: samples equal those made before p_clean existed."""
    default, zero = sampler_of(k_max=3), sampler_of(k_max=3, p_clean=0)
    assert default.p_clean == 0.0
    for seed in range(5):
        rng = np.random.default_rng(seed)
        expected = [default.names[i] for i in default.draw(rng)]
        out, recipe = zero.degrade(CROP, seed)
        assert _ops(recipe) == expected
        assert out.tobytes() == default.degrade(CROP, seed)[0].tobytes()
    assert load_options({"degradations": {"p_clean": 0.25}}).degradations.p_clean == 0.25
