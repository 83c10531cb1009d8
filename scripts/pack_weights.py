"""Pack the default weights into colora/weights/ (called by make_default_weights.sh).

    python scripts/pack_weights.py base CHECKPOINT colora/weights
    python scripts/pack_weights.py adapters EXP_DIR colora/weights TASK...
    python scripts/pack_weights.py milestone CHECKPOINT checkpoints/ [START]
    python scripts/pack_weights.py estimator colora/weights
    python scripts/pack_weights.py heldout RESULTS.json colora/weights

`base` keeps the EMA weights of the pre-training run as the shipped base (the adapters are then
fine-tuned on exactly these weights, so their recorded base hash matches). `adapters` copies each
task's adapter folder and records in its config and card, and in MANIFEST.json, the command, seed,
iterations, wall time and validation PSNR of the run that made it. `milestone` keeps the EMA
weights of a long run's checkpoint in float16 (half the bytes; 5e-4 relative rounding, harmless to
training on from them), small enough to commit, so a later session on a fresh machine can go on
from it (path.pretrain_network_g) when the run's full training state is gone.
"""
import hashlib
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from colora.adapters.files import card  # noqa: E402
from colora.checkpoint import load_state_dict, read_metadata, save_checkpoint, state_dict_sha256  # noqa: E402


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tensors_sha256(path):
    """Hash of the tensors only: a rerun reproduces it, while the file's bytes differ because
    safetensors writes the header's metadata in an arbitrary order."""
    from safetensors.torch import load_file

    return state_dict_sha256(load_file(str(path)))


def commands(exp):
    """{task or 'pretrain': (command, seconds)} from the scripts' commands.log (and the
    commands_laneN.log of scripts/train_adapters.sh's parallel lanes: each is timed on its own)."""
    out = {}
    for log in sorted(Path(exp).glob("commands*.log")):
        out.update(_timed_commands(log))
    return out


def _timed_commands(log):
    lines = [ln.split(" ", 1) for ln in log.read_text().splitlines() if ln.strip()]
    out = {}
    for i, (t, cmd) in enumerate(lines):
        end = float(lines[i + 1][0]) if i + 1 < len(lines) else None
        if " pretrain " in cmd:
            key = "pretrain"
        elif "adapter.task=" in cmd:
            key = cmd.split("adapter.task=")[1].split()[0]
        elif "colora/presets/finetune/" in cmd:
            key = cmd.split("colora/presets/finetune/")[1].split(".yml")[0]
        else:
            continue  # the closing time stamp
        out[key] = (cmd, end - float(t) if end else None)
    return out


def run_seed(run):
    """manual_seed of a run folder's options (logs/options.yml), or None where none was kept."""
    import yaml

    opts = Path(run) / "logs" / "options.yml"
    return (yaml.safe_load(opts.read_text()) or {}).get("manual_seed") if opts.is_file() else None


def pack_base(ckpt, dest, train_size=None):
    """CKPT: a run's checkpoint (its folder's logs give iterations and validation) or a milestone
    of checkpoints/ (its header does). `train_size`: the training patch side (NAFNet's TLC window),
    for a milestone that lacks it in its header."""
    dest = Path(dest)
    meta = read_metadata(ckpt)
    state = load_state_dict(ckpt)  # the EMA weights where the checkpoint kept them (a milestone is EMA already)
    exp = Path(ckpt).parents[1]
    log = exp.parent / "commands.log"
    command = commands(exp.parent)["pretrain"][0] if log.exists() else meta.get("command")
    metrics = exp / "logs" / "metrics.jsonl"
    vals = [json.loads(x) for x in metrics.read_text().splitlines() if '"val"' in x] if metrics.is_file() else []
    size = int(train_size or meta.get("train_size") or 64)
    save_checkpoint(dest / "base.safetensors", state, network_g=json.loads(meta["network_g"]),
                    extra_metadata={"train_size": size, "made_by": "scripts/make_default_weights.sh"})
    manifest = {"base": {"file": "base.safetensors", "sha256": sha256(dest / "base.safetensors"),
                         "tensors_sha256": tensors_sha256(dest / "base.safetensors"),
                         "command": command, "seed": run_seed(exp), "train_size": size,
                         "iterations": vals[-1]["iter"] if vals else int(meta.get("iteration", 0)) or None,
                         "val_psnr": vals[-1].get("psnr") if vals else float(meta.get("val_psnr") or "nan"),
                         "val_input_psnr": vals[0].get("input_psnr") if vals else None,
                         "dtype": str(next(iter(state.values())).dtype).replace("torch.", "")}}
    (dest / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")


def pack_adapters(exp, dest, tasks):
    dest = Path(dest)
    manifest = json.loads((dest / "MANIFEST.json").read_text())
    cmds = commands(exp)
    if "pretrain" in cmds:
        manifest["base"]["seconds"] = cmds["pretrain"][1]
    manifest.setdefault("adapters", {})  # the listed tasks are replaced; the others stay as shipped
    for task in tasks:
        src = Path(exp) / f"{task}_colora" / "adapter"
        out = dest / "adapters" / task
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(src, out)
        cfg = json.loads((out / "adapter_config.json").read_text())
        cmd, seconds = cmds.get(task, (None, None))
        cfg["training"] = dict(cfg.get("training") or {}, command=cmd, seed=run_seed(src.parent), seconds=seconds)
        (out / "adapter_config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        (out / "README.md").write_text(card(cfg))
        manifest["adapters"][task] = {"folder": f"adapters/{task}",
                                      "sha256": sha256(out / "adapter_model.safetensors"),
                                      "tensors_sha256": tensors_sha256(out / "adapter_model.safetensors"),
                                      "command": cmd, "seconds": seconds,
                                      "iterations": cfg["training"].get("iteration"),
                                      "val_psnr_base": cfg.get("validation", {}).get("base", {}).get("psnr"),
                                      "val_psnr_adapted": cfg.get("validation", {}).get("adapted", {}).get("psnr")}
    (dest / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")


def pack_estimator(dest):
    """Record the degradation estimator (written in place by `colora estimator train`) and the
    commands that made it, from the settings the file records: where it went on from another
    estimator (--init), that one's command first (read from its file, or, when it was the estimator
    shipped here before, from the manifest's record)."""
    from safetensors import safe_open

    dest = Path(dest)
    manifest = json.loads((dest / "MANIFEST.json").read_text())

    def command(path, out):
        with safe_open(str(path), "pt") as f:
            info = json.loads((f.metadata() or {}).get("info", "{}"))
        flags = "".join(f" --{k.replace('_', '-')} {info[k]}" for k in
                        ("iters", "batch", "width", "tiles", "region", "seed", "faint_db", "init")
                        if info.get(k) is not None)
        flags += "".join(f" --{k.replace('_', '-')}" for k in ("tile_max", "stats") if info.get(k))  # switches
        cmd = f"colora estimator train -o {out} --dataroot corpus/train --threads 1{flags}"
        init = Path(info["init"]) if info.get("init") else None
        if init is None:
            return cmd
        if init.resolve() == Path(path).resolve() or not init.is_file():  # the one shipped before, now replaced
            return f"{manifest['estimator']['command']} && {cmd}"
        return f"{command(init, info['init'])} && {cmd}"

    file = dest / "estimator.safetensors"
    manifest["estimator"] = {"file": "estimator.safetensors", "sha256": sha256(file),
                             "tensors_sha256": tensors_sha256(file),
                             "command": command(file, "colora/weights/estimator.safetensors")}
    (dest / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")


def pack_heldout(results, dest):
    """heldout.json: the shipped weights' row of benchmarks/vs_classical.py (its --json), which
    `colora demo` shows beside its own crops, so the product says where it wins and where not."""
    doc = json.loads(Path(results).read_text())
    rows = {}
    for task, res in doc["tasks"].items():
        m, best = res["methods"], res["best_classical"]
        rows[task] = {"input": [m["input"]["psnr"], m["input"]["ssim"]],
                      "best_classical": [best, m[best]["psnr"], m[best]["ssim"]],
                      "base": [m["base"]["psnr"], m["base"]["ssim"]],
                      "adapter": [m["base + adapter"]["psnr"], m["base + adapter"]["ssim"]]
                      if "base + adapter" in m else None}
    out = {"benchmark": "benchmarks/vs_classical.py", "machine": doc["machine"], "photos": doc["photos"],
           "tasks": rows}
    (Path(dest) / "heldout.json").write_text(json.dumps(out, indent=1) + "\n")


def pack_milestone(ckpt, dest, start=0):
    """START: the iterations of the milestone a run went on from (named and recorded in total)."""
    meta = read_metadata(ckpt)
    state = {k: v.half() for k, v in load_state_dict(ckpt, "params_ema").items()}
    run = Path(ckpt).parents[1]
    vals = [json.loads(x) for x in (run / "logs" / "metrics.jsonl").read_text().splitlines() if '"val"' in x]
    own = int(Path(ckpt).stem.rsplit("_", 1)[1])
    val = [v for v in vals if v["iter"] <= own]
    it = start + own
    out = Path(dest) / f"{run.name}_ema_{it}.safetensors"
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, state, network_g=json.loads(meta["network_g"]),
                    extra_metadata={"iteration": it, "val_psnr": val[-1]["psnr"] if val else None,
                                    "train_size": meta.get("train_size", 64),
                                    "made_by": "scripts/pack_weights.py milestone"})
    print(out, f"iteration {it}", f"val PSNR {val[-1]['psnr']:.2f} dB" if val else "")


if __name__ == "__main__":
    need = {"base": 4, "heldout": 4, "estimator": 3, "milestone": 4, "adapters": 5}
    if len(sys.argv) < 2 or len(sys.argv) < need.get(sys.argv[1], 99):
        sys.exit(__doc__.split("\n\n")[1])
    if sys.argv[1] == "base":
        pack_base(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else None)
    elif sys.argv[1] == "heldout":
        pack_heldout(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "estimator":
        pack_estimator(sys.argv[2])
    elif sys.argv[1] == "milestone":
        pack_milestone(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 0)
    else:
        pack_adapters(sys.argv[2], sys.argv[3], sys.argv[4:])
