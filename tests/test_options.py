import pytest

from colora.errors import OptionsError
from colora.options import dump_options, load_options

TINY = "colora/presets/pretrain/nafnet_tiny_prod.yml"


def test_official_nafnet_yaml_loads_with_warnings(reference_dir):
    opts = load_options(reference_dir / "nafnet_sidd_w32_train.yml")
    assert opts.train.total_iter == 400000
    assert opts.val.val_freq == 20000 and isinstance(opts.val.val_freq, int)  # !!float 2e4
    assert opts.logger.save_checkpoint_freq == 5000
    assert opts.network_g.params["width"] == 32
    assert any("num_gpu" in w for w in opts.warnings)
    assert any("dist_params" in w for w in opts.warnings)


@pytest.mark.parametrize("preset", ["nafnet_tiny_prod", "nafnet_small_prod", "nafnet_small_prod_stage2",
                                    "nafnet_small_prod_stage3", "nafnet_small_prod_stage4", "nafnet_w32_prod",
                                    "restormer_prod"])
def test_presets_load(preset):
    opts = load_options(f"colora/presets/pretrain/{preset}.yml")
    assert opts.warnings == []
    assert load_options(opts.to_dict()) == opts  # the resolved options reload to the same


@pytest.mark.parametrize("raw, message", [
    ({"train": {"total_iters": 3}}, "unknown key 'total_iters' in train; did you mean 'total_iter'?"),
    ({"logger": {"print_frq": 3}}, "unknown key 'print_frq' in logger; did you mean 'print_freq'?"),
    ({"val": {"metrics": {"psnr": {"crop_bordr": 4}}}}, "in val.metrics.psnr; did you mean 'crop_border'"),
    ({"network_g": {"type": "NAFNet", "widht": 4}}, "did you mean 'width'"),
    ({"network_g": {"type": "Restormr"}}, "did you mean 'Restormer'"),
    ({"datasets": {"train": {"gt_sise": 64}}}, "in datasets.train; did you mean 'gt_size'"),
    ({"nmae": "x"}, "unknown key 'nmae' in options; did you mean 'name'?"),
])
def test_unknown_keys_name_the_closest(raw, message):
    with pytest.raises(OptionsError) as err:
        load_options(raw)
    assert message in str(err.value)


@pytest.mark.parametrize("raw, message", [
    ({"train": {"total_iter": "many"}}, "train.total_iter must be an integer"),
    ({"train": {"total_iter": 2.5}}, "train.total_iter must be an integer"),
    ({"train": {"optim_g": {"lr": [1]}}}, "train.optim_g.lr must be a number"),
    ({"logger": {"use_tb_logger": "yes"}}, "logger.use_tb_logger must be true or false"),
    ({"train": {"optim_g": {"betas": 0.9}}}, "train.optim_g.betas must be a list"),
    ({"train": "fast"}, "train must be a mapping"),
    ({"train": {"optim_g": {"type": "SGD"}}}, "choose one of: Adam, AdamW"),
    ({"train": {"ema_decay": 1.5}}, "ema_decay must be in [0, 1)"),
])
def test_wrong_types_name_the_expected_type(raw, message):
    with pytest.raises(OptionsError) as err:
        load_options(raw)
    assert message in str(err.value)


def test_numbers_as_basicsr_writes_them():
    opts = load_options({"train": {"total_iter": 2e4, "optim_g": {"lr": "2e-4"}}})
    assert opts.train.total_iter == 20000 and opts.train.optim_g.lr == pytest.approx(2e-4)


def test_set_overrides():
    opts = load_options(TINY, ["train.total_iter=100", "train.optim_g.lr=5e-4", "name=other",
                               "network_g.width=8", "datasets.train.gt_size=32"])
    assert opts.train.total_iter == 100 and opts.train.optim_g.lr == pytest.approx(5e-4)
    assert opts.name == "other" and opts.network_g.params["width"] == 8
    assert opts.datasets["train"].gt_size == 32
    with pytest.raises(OptionsError, match="did you mean 'total_iter'"):
        load_options(TINY, ["train.total_iters=100"])
    with pytest.raises(OptionsError, match="KEY=VALUE"):
        load_options(TINY, ["train.total_iter"])


def test_file_errors(tmp_path):
    with pytest.raises(OptionsError, match="not found"):
        load_options(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("train:\n  total_iter: [1,\n")
    with pytest.raises(OptionsError, match="cannot parse"):
        load_options(bad)
    scalar = tmp_path / "scalar.yml"
    scalar.write_text("just a string\n")
    with pytest.raises(OptionsError, match="must hold a mapping"):
        load_options(scalar)


def test_dump_reloads(tmp_path):
    opts = load_options(TINY)
    path = tmp_path / "resolved.yml"
    path.write_text(dump_options(opts))
    assert load_options(path) == opts
