"""Training never loses or mixes a user's runs (issue 15, item 2): a fresh run archives an existing
experiment folder, --auto_resume only takes a state saved with the same options and passes over a
corrupt one, a full disk is one line that keeps the last good state (and the rerun logs each
iteration once), and `name` cannot lead outside experiments_root."""
import errno
import json

import pytest

from colora.errors import OptionsError
from colora.options import load_options
from tests.test_restore import _one_thread, cli  # noqa: F401  (autouse: one thread)
from tests.test_train import options, write_options


def tiny(tmp_path, **train):
    """A 6-iteration run without validation, a state every 2 iterations (all kept)."""
    opts = options(tmp_path / "exp", train={"total_iter": 6, "ema_decay": 0.0, **train},
                   logger={"print_freq": 1, "save_checkpoint_freq": 2, "keep_checkpoints": 0})
    del opts["datasets"]["val"]
    return write_options(tmp_path / "tiny.yml", opts)


def pretrain(opt_file, *args):
    return cli("pretrain", "-opt", opt_file, *args)


def states(tmp_path, name="tiny"):
    return sorted(p.name for p in (tmp_path / "exp" / name / "training_states").iterdir())


def train_iters(tmp_path):
    lines = (tmp_path / "exp" / "tiny" / "logs" / "metrics.jsonl").read_text().splitlines()
    return [r["iter"] for r in map(json.loads, lines) if r["kind"] == "train"]


def test_a_fresh_run_archives_the_earlier_one(tmp_path):
    opt_file = tiny(tmp_path, total_iter=8)
    assert pretrain(opt_file)[0] == 0
    old = (tmp_path / "exp" / "tiny" / "models" / "net_g_latest.safetensors").read_bytes()
    code, _, err = pretrain(tiny(tmp_path, total_iter=4))
    assert code == 0, err
    archived = [p for p in (tmp_path / "exp").iterdir() if p.name.startswith("tiny_archived_")]
    assert len(archived) == 1 and "moved it to" in err
    assert (archived[0] / "models" / "net_g_latest.safetensors").read_bytes() == old  # the old run, intact
    assert states(tmp_path) == ["2.state", "4.state"]  # the new run's own states, none pruned
    assert train_iters(tmp_path) == [1, 2, 3, 4]


def test_auto_resume_refuses_a_state_saved_with_other_options(tmp_path):
    assert pretrain(tiny(tmp_path, total_iter=4))[0] == 0
    changed = tiny(tmp_path, total_iter=6, optim_g={"type": "AdamW", "lr": 5e-4})
    code, _, err = pretrain(changed, "--auto_resume")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "train.optim_g.lr: 0.002 then, 0.0005 now" in err
    code, _, err = pretrain(tiny(tmp_path, total_iter=6), "--auto_resume")  # a longer run may resume
    assert code == 0 and "resumed from" in err and train_iters(tmp_path) == [1, 2, 3, 4, 5, 6]


def test_auto_resume_takes_a_state_saved_before_an_option_existed(tmp_path):
    """Upgrading colora mid-run adds options the saved state never recorded: at their defaults they
    change nothing and the run resumes; set to something else they are a change like any other."""
    import torch

    assert pretrain(tiny(tmp_path, total_iter=4))[0] == 0
    for path in (tmp_path / "exp" / "tiny" / "training_states").iterdir():  # as an older colora saved it
        state = torch.load(path, weights_only=True)
        state["options"] = {k: v for k, v in state["options"].items() if not k.endswith(".p_clean")
                            or k.startswith("degradations.")}
        torch.save(state, path)
    code, _, err = pretrain(tiny(tmp_path, total_iter=6), "--auto_resume", "--set", "datasets.train.p_clean=0.5")
    assert code == 2 and "datasets.train.p_clean: None then, 0.5 now" in err, err
    code, _, err = pretrain(tiny(tmp_path, total_iter=6), "--auto_resume")
    assert code == 0 and "resumed from" in err and train_iters(tmp_path) == [1, 2, 3, 4, 5, 6]


def test_a_corrupt_newest_state_falls_back_to_the_previous_one(tmp_path):
    opt_file = tiny(tmp_path)
    assert pretrain(opt_file)[0] == 0
    newest = tmp_path / "exp" / "tiny" / "training_states" / "6.state"
    newest.write_bytes(newest.read_bytes()[:100])
    code, _, err = pretrain(tiny(tmp_path, total_iter=8), "--auto_resume")
    assert code == 0, err
    assert "6.state" in err and "trying the state before it" in err and "4.state at iteration 4" in err
    assert train_iters(tmp_path) == [1, 2, 3, 4, 5, 6, 7, 8]


def test_a_full_disk_is_one_line_and_the_rerun_logs_each_iteration_once(tmp_path, monkeypatch):
    import colora.training.experiment

    real = colora.training.experiment.atomic_write_bytes

    def full_at_4(path, data, **kw):
        if path.name == "4.state":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data, **kw)

    monkeypatch.setattr(colora.training.experiment, "atomic_write_bytes", full_at_4)
    opt_file = tiny(tmp_path)
    code, _, err = pretrain(opt_file)
    errors = [line for line in err.splitlines() if "error" in line]  # the rest is the progress bar
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
    assert "No space left on device" in err and "2.state is kept" in err and "--auto_resume" in err
    assert states(tmp_path) == ["2.state"]
    monkeypatch.setattr(colora.training.experiment, "atomic_write_bytes", real)
    code, _, err = pretrain(opt_file, "--auto_resume")
    assert code == 0, err
    assert train_iters(tmp_path) == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("name", ["../escape", "/tmp/abs", "a/../../b", ".", "~user"])
def test_a_name_cannot_lead_outside_experiments_root(tmp_path, name):
    with pytest.raises(OptionsError, match="inside path.experiments_root"):
        load_options({"name": name})
    code, _, err = pretrain(tiny(tmp_path), "--set", f"name={name}")
    assert code == 2 and "inside path.experiments_root" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yml"]
