"""scripts/pack_weights.py, which make_default_weights.sh calls to record what made each shipped file:
a tiny pre-training run packed as a base must record that run's command, seed and iterations."""
import importlib.util
import json
from pathlib import Path

from colora.checkpoint import load_state_dict, state_dict_sha256
from tests.test_train import colora_main, options, write_options

ROOT = Path(__file__).resolve().parents[1]


def pack_weights():
    spec = importlib.util.spec_from_file_location("pack_weights", ROOT / "scripts" / "pack_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pack_base_records_the_runs_command_seed_and_tensors(tmp_path):
    exp = tmp_path / "exp"
    opts = options(exp, name="tiny_base", manual_seed=7, train={**options(exp)["train"], "total_iter": 4},
                   val={"val_freq": 2}, logger={"print_freq": 1, "save_checkpoint_freq": 2, "keep_checkpoints": 1})
    opt_file = write_options(tmp_path / "tiny.yml", opts)
    command = f"colora pretrain -opt {opt_file}"
    exp.mkdir()
    (exp / "commands.log").write_text(f"100 {command}\n160 adapters finished\n")
    assert colora_main("pretrain", "-opt", opt_file) == 0
    ckpt = exp / "tiny_base" / "models" / "net_g_4.safetensors"
    dest = tmp_path / "weights"
    dest.mkdir()
    pack_weights().pack_base(ckpt, dest, 64)
    base = json.loads((dest / "MANIFEST.json").read_text())["base"]
    assert (base["command"], base["seed"], base["iterations"], base["train_size"]) == (command, 7, 4, 64)
    # the packed file holds the run's EMA weights, and the manifest their hash
    assert base["tensors_sha256"] == state_dict_sha256(load_state_dict(dest / "base.safetensors"))
    assert base["tensors_sha256"] == state_dict_sha256(load_state_dict(ckpt))
