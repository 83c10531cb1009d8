"""scripts/pack_weights.py, which make_default_weights.sh calls to record what made each shipped file:
a tiny pre-training run packed as a base must record that run's command, seed and iterations."""
import importlib.util
import os
import subprocess
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


def test_pack_estimator_records_both_commands_of_an_estimator_trained_on_from_another(tmp_path):
    from colora import cli

    dest = tmp_path / "weights"
    dest.mkdir()
    (dest / "MANIFEST.json").write_text("{}")
    start = tmp_path / "start.safetensors"
    common = ["--iters", "1", "--batch", "2", "--width", "4", "--threads", "1"]
    assert cli.main(["estimator", "train", "-o", str(start), *common]) == 0
    assert cli.main(["estimator", "train", "-o", str(dest / "estimator.safetensors"), *common, "--seed", "3",
                     "--faint-db", "40", "--init", str(start), "--stats"]) == 0
    pack_weights().pack_estimator(dest)
    record = json.loads((dest / "MANIFEST.json").read_text())["estimator"]
    first, second = record["command"].split(" && ")
    assert "--init" not in first and "--seed 0" in first
    assert f"--init {start}" in second and "--faint-db 40" in second and "--seed 3" in second
    assert second.endswith(" --stats") and "--stats" not in first and "--tile-max" not in record["command"]


def fake_colora(tmp_path):
    """A `colora` on PATH that records its fine-tunes' arguments (one line per call, in the lane's order)
    and answers `colora info --json` with a width-8 NAFNet."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "colora"
    fake.write_text('#!/bin/sh\nif [ "$1" = info ]; then echo \'{"network_g": {"type": "NAFNet", "width": 8}}\'; exit 0; fi\n'
                    f'echo "$*" >> {tmp_path}/calls.txt\n')
    fake.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_train_adapters_splits_the_six_recipes_over_lanes_and_pack_times_each(tmp_path):
    base = tmp_path / "base.safetensors"
    base.write_bytes(b"x")
    exp = tmp_path / "exp"
    run = subprocess.run(["bash", str(ROOT / "scripts" / "train_adapters.sh"), str(base), str(exp), "2"],
                         env=fake_colora(tmp_path), capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    tasks = sorted(c.split("adapter.task=")[1].split()[0] for c in calls)
    assert tasks == sorted(["rain", "raindrop", "rain_raindrop", "noise", "blur", "haze"])
    assert all(f"path.pretrain_network_g={base}" in c and "--auto_resume" in c for c in calls)
    assert all('network_g={"type":"NAFNet","width":8}' in c for c in calls)  # the base's architecture
    assert any("adapter.task=blur" in c and "max_psnr=40" in c for c in calls)
    lanes = {}
    for log in sorted(exp.glob("commands_lane*.log")):
        lanes[log.name] = sum(int(ln.split("total_iter=")[1].split()[0]) for ln in log.read_text().splitlines()
                              if "total_iter=" in ln)
    assert len(lanes) == 2 and max(lanes.values()) - min(lanes.values()) <= 700  # 6,200 vs 5,500 (greedy)
    timed = pack_weights().commands(exp)
    assert set(timed) == set(tasks) and all(seconds is not None for _, seconds in timed.values())


def test_train_adapters_refuses_a_missing_base(tmp_path):
    run = subprocess.run(["bash", str(ROOT / "scripts" / "train_adapters.sh"), str(tmp_path / "none.safetensors"),
                          str(tmp_path / "exp")], env=fake_colora(tmp_path), capture_output=True, text=True)
    assert run.returncode == 2 and "no base checkpoint" in run.stderr and not (tmp_path / "calls.txt").exists()
