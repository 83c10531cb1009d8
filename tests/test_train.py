"""The Trainer end to end on a tiny NAFNet: layout, learning, kill/resume, signals, NaN, DDP, bad inputs.

Everything runs on 2 CPU cores in well under a minute and a half: a width-8 NAFNet, 32-px patches,
batches of 4, tens of iterations. A new Python process costs ~7 s of CPU here (torch, the dynamo
import of its optimizers, matplotlib), so only the runs where the process itself matters are real
`colora pretrain` subprocesses (kill -9, SIGTERM, several ranks); the others call `colora.cli.main`
or a `Trainer` in this process. Every run uses one thread (OMP_NUM_THREADS=1 /
torch.set_num_threads(1)): faster on a shared 2-core machine, and the same thread count everywhere
keeps float results bit-identical between this process and the subprocesses.
"""
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from colora import cli
from colora.archs import build_arch
from colora.checkpoint import load_checkpoint, load_state_dict, save_checkpoint
from colora.errors import ColoraError
from colora.training.experiment import load_state
from colora.options import load_options
from colora.training.trainer import Trainer, TrainingError
from tests.conftest import HAS_PLOTS, TINY_NAFNET, plotted

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


# ---- helpers -----------------------------------------------------------------------------------
def options(root, name="tiny", **sections):
    """Tiny-NAFNet options as a dict (experiments under `root`); `sections` update the sections."""
    opts = {
        "name": name,
        "manual_seed": 0,
        "network_g": dict(TINY_NAFNET),
        "datasets": {
            "train": {"type": "ProdDataset", "gt_size": 32, "batch_size_per_gpu": 4,
                      "photos": ["astronaut", "chelsea"]},
            "val": {"type": "ProdDataset", "gt_size": 32, "num_samples": 4, "seed": 5, "photos": ["coffee"]},
        },
        "path": {"experiments_root": str(root)},
        "train": {"total_iter": 30, "optim_g": {"type": "AdamW", "lr": 2e-3}, "pixel_opt": {"type": "PSNRLoss"},
                  "ema_decay": 0.9, "deterministic": True},
        "val": {"val_freq": 10},
        "logger": {"print_freq": 1, "save_checkpoint_freq": 5, "keep_checkpoints": 2},
    }
    for section, values in sections.items():
        if isinstance(values, dict) and isinstance(opts.get(section), dict):
            opts[section] = {**opts[section], **values}
        else:
            opts[section] = values
    return opts


def write_options(path, opts):
    path.write_text(yaml.safe_dump(opts, sort_keys=False))
    return path


def start(opt_file):
    """Start `colora pretrain -opt OPT_FILE` as a real process (stdout/stderr piped, text)."""
    return subprocess.Popen([sys.executable, "-m", "colora.cli", "pretrain", "-opt", str(opt_file)], cwd=ROOT,
                            env=ENV, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc, timeout=120):
    """Wait for a started run (killed if it takes longer than `timeout` s); (exit code, stdout, stderr)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the run took more than {timeout} s:\n{err[-2000:]}")
    return proc.returncode, out, err


def wait_for(path, proc, timeout=60):
    """Poll until `path` exists while `proc` is still running."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (code {proc.returncode}) before {path.name} appeared:\n"
                        f"{proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.01)


def records(exp_dir, kind):
    lines = (Path(exp_dir) / "logs" / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def losses(exp_dir):
    """{iteration: training loss} from metrics.jsonl."""
    return {r["iter"]: r["loss"] for r in records(exp_dir, "train")}


def numbered(folder, pattern):
    return sorted(int(m.group(1)) for p in Path(folder).iterdir() if (m := re.fullmatch(pattern, p.name)))


@contextlib.contextmanager
def single_thread():
    """Train in this process on one thread, as the subprocesses do; restores torch's global settings."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


@pytest.fixture
def one_thread():
    with single_thread():
        yield


def colora_main(*argv):
    """`colora ARGV` in this process (colora.cli.main, as the console script calls it); the exit code.
    main() reconfigures the root logger: put pytest's logging setup back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        with single_thread():
            return cli.main([str(a) for a in argv])
    finally:
        root.handlers[:], root.level = handlers, level


# ---- one uninterrupted run: layout, learning, and the reference for resuming ----------------------
@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """30 deterministic iterations, a checkpoint every 5, the newest 2 kept, validation every 10."""
    root = tmp_path_factory.mktemp("reference")
    opt_file = write_options(root / "opts.yml", options(root / "experiments"))
    assert colora_main("pretrain", "-opt", opt_file) == 0
    return root / "experiments" / "tiny", opt_file


def test_experiment_layout(reference):
    exp, opt_file = reference
    models, states, logs = exp / "models", exp / "training_states", exp / "logs"
    # pruned to logger.keep_checkpoints = 2, no temporary files left by the atomic writes
    assert sorted(p.name for p in models.iterdir()) == [
        "net_g_25.safetensors", "net_g_30.safetensors", "net_g_latest.safetensors"]
    assert sorted(p.name for p in states.iterdir()) == ["25.state", "30.state"]
    plots = ["curves.png"] if HAS_PLOTS else []
    assert sorted(p.name for p in logs.iterdir()) == sorted(plots + ["metrics.jsonl", "options.yml", "train.log"])

    model = load_checkpoint(build_arch(TINY_NAFNET), models / "net_g_latest.safetensors", param_key="params")
    load_checkpoint(build_arch(TINY_NAFNET), models / "net_g_latest.safetensors", param_key="params_ema")
    latest = load_state_dict(models / "net_g_latest.safetensors", "params")
    ema = load_state_dict(models / "net_g_latest.safetensors", "params_ema")
    assert latest.keys() == ema.keys() == model.state_dict().keys()
    assert any(not torch.equal(latest[k], ema[k]) for k in latest)  # the EMA weights are their own
    at_30 = load_state_dict(models / "net_g_30.safetensors", "params_ema")
    assert all(torch.equal(at_30[k], ema[k]) for k in ema)

    state = load_state(states / "30.state")
    assert state["iter"] == 30
    assert {"params", "ema", "optimizer", "scheduler", "rng", "best"} <= set(state)
    assert all(torch.equal(p, latest[k]) for p, (k, _) in zip(state["params"], model.named_parameters()))

    assert load_options(logs / "options.yml") == load_options(opt_file)
    assert "validation at 30" in (logs / "train.log").read_text()
    assert sorted(losses(exp)) == list(range(1, 31))
    assert [r["iter"] for r in records(exp, "val")] == [0, 10, 20, 30]
    assert plotted(logs / "curves.png")


def test_training_beats_the_untrained_model(reference):
    exp, _ = reference
    val = {r["iter"]: r for r in records(exp, "val")}
    assert "input_psnr" in val[0] and "ssim" in val[30]
    assert val[30]["psnr"] > val[0]["psnr"] + 2.0, (val[0]["psnr"], val[30]["psnr"])
    assert val[30]["best_psnr"] == max(r["psnr"] for r in val.values())


# ---- resume --------------------------------------------------------------------------------------
def test_killed_run_resumes_with_identical_losses(reference, tmp_path, capsys):
    ref_exp, _ = reference
    opt_file = write_options(tmp_path / "opts.yml", options(tmp_path / "experiments"))
    exp = tmp_path / "experiments" / "tiny"

    proc = start(opt_file)  # a real process, killed -9 once its first training state is on disk
    wait_for(exp / "training_states" / "5.state", proc)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    proc.communicate()
    killed_at = numbered(exp / "training_states", r"(\d+)\.state")[-1]
    assert killed_at < 30
    # copied aside for the path.resume_state run below (the --auto_resume run prunes old states)
    named = shutil.copy(exp / "training_states" / f"{killed_at}.state", tmp_path / "named.state")

    capsys.readouterr()
    assert colora_main("pretrain", "-opt", opt_file, "--auto_resume") == 0
    assert f"resumed from {exp / 'training_states' / f'{killed_at}.state'} at iteration {killed_at}" \
        in capsys.readouterr().err
    expected = losses(ref_exp)
    assert losses(exp) == expected  # every iteration, bit for bit (JSON floats round-trip exactly)
    final = load_state_dict(exp / "models" / "net_g_latest.safetensors", "params_ema")
    ref_final = load_state_dict(ref_exp / "models" / "net_g_latest.safetensors", "params_ema")
    assert all(torch.equal(final[k], ref_final[k]) for k in final)

    # the same state named by path.resume_state, in a fresh experiment folder
    assert colora_main("pretrain", "-opt", opt_file, "--set", f"path.experiments_root={tmp_path / 'named'}",
                       "--set", f"path.resume_state={named}") == 0
    assert f"resumed from {named} at iteration {killed_at}" in capsys.readouterr().err
    resumed = losses(tmp_path / "named" / "tiny")
    assert resumed == {i: loss for i, loss in expected.items() if i > killed_at}


def test_sigterm_saves_a_state_and_exits_130(tmp_path, capsys):
    opts = options(tmp_path / "experiments", train={"total_iter": 100_000, "deterministic": False})
    del opts["datasets"]["val"]
    opt_file = write_options(tmp_path / "opts.yml", opts)
    exp = tmp_path / "experiments" / "tiny"

    proc = start(opt_file)
    wait_for(exp / "training_states" / "5.state", proc)
    proc.send_signal(signal.SIGTERM)
    code, out, err = finish(proc, timeout=60)
    assert code == 130, err
    assert "rerun with --auto_resume" in err and "Traceback" not in err
    stopped = int(re.search(r"stopped at iteration (\d+)", out).group(1))
    assert 5 <= stopped < 100_000
    state = exp / "training_states" / f"{stopped}.state"
    assert load_state(state)["iter"] == stopped  # saved at the iteration it was at
    assert (exp / "models" / f"net_g_{stopped}.safetensors").is_file()
    assert max(losses(exp)) == stopped
    # and it goes on from there
    capsys.readouterr()
    assert colora_main("pretrain", "-opt", opt_file, "--auto_resume", "--set", f"train.total_iter={stopped + 2}") == 0
    assert f"resumed from {state} at iteration {stopped}" in capsys.readouterr().err
    assert sorted(losses(exp)) == list(range(1, stopped + 3))


# ---- a NaN loss ------------------------------------------------------------------------------------
def test_nan_loss_stops_with_the_last_good_checkpoint(tmp_path, one_thread):
    opts = options(tmp_path / "experiments", train={"deterministic": False},
                   logger={"save_checkpoint_freq": 10})
    trainer = Trainer(load_options(opts))
    real_loss = trainer.loss_fn

    def loss_fn(pred, gt):  # finite for iterations 1..14, NaN from iteration 15 on
        loss = real_loss(pred, gt)
        return loss * float("nan") if trainer.iter + 1 >= 15 else loss

    trainer.loss_fn = loss_fn
    try:
        with pytest.raises(TrainingError) as info:
            trainer.fit()
    finally:
        trainer.close()
    assert isinstance(info.value, ColoraError)
    message = str(info.value)
    assert "iteration 15" in message and "10.state" in message and "\n" not in message

    exp = tmp_path / "experiments" / "tiny"
    assert numbered(exp / "training_states", r"(\d+)\.state") == [10]
    assert numbered(exp / "models", r"net_g_(\d+)\.safetensors") == [10]
    assert max(losses(exp)) == 14
    state = load_state(exp / "training_states" / "10.state")
    for name in ("net_g_10.safetensors", "net_g_latest.safetensors"):
        model = load_checkpoint(build_arch(TINY_NAFNET), exp / "models" / name, param_key="params")
        assert all(torch.equal(p, s) for p, s in zip(model.parameters(), state["params"]))
        assert all(torch.isfinite(p).all() for p in model.parameters())


# ---- two processes ---------------------------------------------------------------------------------
# One launcher process imports torch once and forks the two ranks (torch.multiprocessing, fork), so
# the ranks cost one interpreter start-up instead of two; nothing has run OpenMP before the fork.
# Each rank writes under its own experiments_root: rank 1's must stay absent (only rank 0 writes).
LAUNCHER = """
import os, sys
import torch, torch._dynamo, torch.multiprocessing as mp  # shared by the forked ranks
try:
    import matplotlib.pyplot  # optional (the plots extra); imported once here, not in every rank
except ImportError:
    pass
from colora.options import load_options
from colora.training.trainer import Trainer

def rank_main(rank, opt_file, out):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank))
    trainer = Trainer(load_options(opt_file, [f"path.experiments_root={out}/exp{rank}"]))
    try:
        trainer.fit()
        torch.save(trainer.model.state_dict(), f"{out}/rank{rank}.pt")
    finally:
        trainer.close()

mp.start_processes(rank_main, args=tuple(sys.argv[1:]), nprocs=2, start_method="fork")
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_with_the_same_global_batch(tmp_path, one_thread):
    """DDP over gloo, 2 ranks x batch 2 (EMA off, deterministic) vs 1 process x batch 4."""
    per_rank = 2
    opts = options(tmp_path / "single", name="ddp", train={"total_iter": 10, "ema_decay": 0.0},
                   logger={"save_checkpoint_freq": 5})
    opts["datasets"]["train"].update(batch_size_per_gpu=per_rank, photos=["astronaut", "chelsea", "coffee"])
    opts["datasets"]["val"]["num_samples"] = 2
    opt_file = write_options(tmp_path / "ddp.yml", opts)
    env = {**ENV, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    ranks = subprocess.Popen([sys.executable, "-c", LAUNCHER, opt_file, tmp_path], cwd=ROOT, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        # meanwhile, in this process: one rank with the global batch
        trainer = Trainer(load_options(opt_file, [f"datasets.train.batch_size_per_gpu={2 * per_rank}"]))
        try:
            trainer.fit()
            one = trainer.model.state_dict()
        finally:
            trainer.close()
        code, _, err = finish(ranks)
        assert code == 0, err[-3000:]
    finally:
        with contextlib.suppress(ProcessLookupError):  # a launcher or rank still running after a failure
            os.killpg(ranks.pid, signal.SIGKILL)

    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)  # DDP keeps the ranks identical
    models = tmp_path / "exp0" / "ddp" / "models"
    written = load_state_dict(models / "net_g_latest.safetensors")
    assert all(torch.equal(written[k], rank0[k]) for k in rank0)
    assert not (tmp_path / "exp1").exists()  # only rank 0 writes
    for k in one:
        torch.testing.assert_close(written[k], one[k], rtol=1e-4, atol=1e-5, msg=lambda m: f"{k}: {m}")
    at_5 = load_state_dict(models / "net_g_5.safetensors")
    assert max((written[k] - at_5[k]).abs().max() for k in at_5) > 1e-3  # the weights did move


# ---- bad inputs: one line, exit 2, before training -----------------------------------------------
def bad_input(tmp_path, case):
    """--set overrides for one bad input, and what the error must say."""
    if case == "missing folder":
        return [f"datasets.train.dataroot_gt={tmp_path / 'nowhere'}", "datasets.train.photos=null"], \
            "does not exist"
    if case == "empty folder":
        (tmp_path / "empty").mkdir()
        return [f"datasets.train.dataroot_gt={tmp_path / 'empty'}", "datasets.train.photos=null"], \
            "holds no images"
    if case == "another architecture":
        path = tmp_path / "w16.safetensors"
        save_checkpoint(path, build_arch({**TINY_NAFNET, "width": 16}).state_dict())
        return [f"path.pretrain_network_g={path}"], "does not fit NAFNet"
    if case == "unwritable experiments folder":  # tests run as root: a chmod'ed folder stays writable
        (tmp_path / "a_file").write_text("not a folder")
        return [f"path.experiments_root={tmp_path / 'a_file' / 'experiments'}"], "cannot write the experiment folder"
    if case == "options typo":
        return ["train.total_iters=5"], "did you mean 'total_iter'"
    raise ValueError(case)


@pytest.mark.parametrize("case", ["missing folder", "empty folder", "another architecture",
                                  "unwritable experiments folder", "options typo"])
def test_bad_inputs_fail_in_one_line_before_training(tmp_path, capsys, case):
    opt_file = write_options(tmp_path / "opts.yml", options(tmp_path / "experiments", train={"deterministic": False}))
    overrides, expected = bad_input(tmp_path, case)
    capsys.readouterr()
    assert colora_main("pretrain", "-opt", opt_file, *[a for o in overrides for a in ("--set", o)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("colora: error: ") and expected in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "experiments").exists()  # nothing written: training never started


def test_psnr_loss_ceiling_keeps_clean_inputs_from_dominating():
    """train.pixel_opt.max_psnr (PSNRLoss): with NAFNet's 80 dB an almost-untouched clean image
    pulls ~100x harder than a badly hazed one; a 50 dB ceiling brings the two to one scale, and an
    identical pair scores exactly -max_psnr. Out-of-range values are refused when options load."""
    from colora.options import LossOpt
    from colora.training.losses import build_loss

    gt = torch.rand(2, 3, 16, 16)
    pred = gt.clone()
    pred[0] += 1e-3 * torch.randn(3, 16, 16)  # a clean input, returned almost untouched
    pred[1] += 0.25  # a hazy one, far off
    pulls = {}
    for ceiling in (80.0, 50.0):
        p = pred.clone().requires_grad_(True)
        build_loss(LossOpt(type="PSNRLoss", max_psnr=ceiling))(p, gt).backward()
        clean, hazy = (g.norm().item() for g in p.grad)
        pulls[ceiling] = clean / hazy
        assert build_loss(LossOpt(type="PSNRLoss", max_psnr=ceiling))(gt, gt).item() == pytest.approx(-ceiling, abs=1e-3)
    assert pulls[80.0] > 100 and pulls[50.0] < 0.1 * pulls[80.0]
    assert build_loss(LossOpt(type="L1Loss", max_psnr=50.0))(gt, gt).item() == 0.0  # PSNRLoss's only
    with pytest.raises(ColoraError, match="max_psnr"):
        load_options({}, ["train.pixel_opt.max_psnr=5"])


# ---- a resumed run with another length -----------------------------------------------------------
@pytest.mark.parametrize("new_total", [12, 30])
def test_a_resumed_run_of_another_length_decays_its_cosine_to_the_new_end(tmp_path, one_thread, new_total):
    """Shortened or lengthened on resume, the cosine goes on from the lr it had reached (no jump)
    and reaches eta_min exactly at the new total_iter, instead of stopping short or climbing back."""
    cosine = {"scheduler": {"type": "CosineAnnealingLR", "eta_min": 1e-5}, "warmup_iter": 2}
    first = options(tmp_path / "experiments", train={"total_iter": 20, "deterministic": False, **cosine})
    del first["datasets"]["val"]
    trainer = Trainer(load_options(first))
    real_loss = trainer.loss_fn

    def loss_fn(pred, gt):  # as a SIGTERM during iteration 8 would: save a state there and stop
        if trainer.iter + 1 == 8:
            trainer._stop = signal.SIGTERM
        return real_loss(pred, gt)

    trainer.loss_fn = loss_fn
    try:
        assert trainer.fit()["interrupted"] and trainer.iter == 8
    finally:
        trainer.close()
    trainer = Trainer(load_options(dict(first, train={**first["train"], "total_iter": new_total})),
                      auto_resume=True)
    try:
        trainer.fit()
    finally:
        trainer.close()
    lr = {r["iter"]: r["lr"] for r in records(tmp_path / "experiments" / "tiny", "train")}
    assert sorted(lr) == list(range(1, new_total + 1))
    assert lr[new_total] == pytest.approx(1e-5, rel=1e-6)
    assert all(lr[i] > lr[i + 1] for i in range(2, new_total))  # decreasing all the way, through the resume
