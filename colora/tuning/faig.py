"""FAIG: how much each layer contributes to a new task (Xie et al., NeurIPS 2021), as CoLoRA uses it.

Along the straight path from the pre-trained weights theta_b to briefly task-tuned weights theta_t,
theta(alpha_s) = theta_b + alpha_s (theta_t - theta_b), alpha_s = s / M (s = 1..M), the gradient of
the restoration loss on task pairs is averaged; each parameter's score is

    score = | mean_s dL/dtheta(alpha_s) * (theta_t - theta_b) |

(a Riemann sum of the path integral: the part of the loss change that this parameter explains).
Scores are summed per tensor, then reported per layer (module) split by what the tensor is --
conv/linear `weight`, `depthwise` weight, `bias`, `norm` affine, layer `scale` -- and per block.

Defaults and why: M = 20 steps (the original uses 100; on our tiny/CPU scale the ranking of layers is
stable from ~10 steps and the cost is M forward+backward passes), 8 task pairs, loss = sum of squared
errors against the ground truth (as the reference implementation).
"""
import json
import re

import torch

from colora.adapters.base import classify_parameters
from colora.archs import PART_NAMES
from colora.fileio import atomic_path, atomic_write_text


def faig_scores(model, base_state, target_state, batches, steps=20, loss="sse"):
    """Per-tensor FAIG scores {param name: tensor of per-entry scores} (see module docstring).

    `model` is the plain network (no adapter); `base_state`/`target_state` are its state dicts at
    theta_b and theta_t; `batches` is a list of (lq, gt) tensors. The model's weights are restored.
    """
    params = dict(model.named_parameters())
    names = [n for n in params if n in base_state and n in target_state]
    diff = {n: (target_state[n] - base_state[n]).to(params[n].device, torch.float32) for n in names}
    grads = {n: torch.zeros_like(diff[n]) for n in names}
    original = {n: params[n].detach().clone() for n in names}
    requires = {n: params[n].requires_grad for n in names}
    model.eval()
    try:
        for n in names:
            params[n].requires_grad_(True)
        for s in range(1, steps + 1):
            alpha = s / steps
            with torch.no_grad():
                for n in names:
                    params[n].copy_(base_state[n].to(params[n]) + alpha * diff[n])
            model.zero_grad(set_to_none=True)
            for lq, gt in batches:
                pred = model(lq)
                err = (pred - gt).pow(2)
                (err.sum() if loss == "sse" else err.mean()).backward()
            for n in names:
                if params[n].grad is not None:
                    grads[n] += params[n].grad
    finally:
        with torch.no_grad():
            for n in names:
                params[n].copy_(original[n])
                params[n].requires_grad_(requires[n])
        model.zero_grad(set_to_none=True)
    return {n: (grads[n] / steps * diff[n]).abs() for n in names}


def block_of(path):
    """The block a module belongs to: 'encoders.1.0' for 'encoders.1.0.conv1' and for the block
    'encoders.1.0' itself (its layer scales), else the layer."""
    m = re.match(r"^((?:[A-Za-z_]+\d*\.)?(?:\d+\.)*\d+)(?:\.|$)", path)
    return m.group(1) if m else path


@torch.no_grad()
def forward_order(model):
    """{module path: rank} in the order modules first run in a forward pass (registration order is
    not forward order: NAFNet registers `ending` second and the middle blocks after the decoder)."""
    order, hooks = {}, []
    def seen(path):
        def hook(module, args):  # returns None: a pre-hook's return value would replace the input
            order.setdefault(path, len(order))
        return hook

    for path, module in model.named_modules():
        hooks.append(module.register_forward_pre_hook(seen(path)))
    try:
        side = 2 * model.pad_multiple
        ref = next(model.parameters())
        model(torch.zeros(1, model.in_channels, side, side, device=ref.device, dtype=ref.dtype))
    finally:
        for h in hooks:
            h.remove()
    return order


def layer_table(model, scores):
    """Rows in forward order: one per module that owns parameters, with the score of each category
    of its tensors and their total, parameter counts, part and block."""
    rows, index = {}, {}
    for path, pname, category in classify_parameters(model):
        full = f"{path}.{pname}" if path else pname
        if full not in scores:
            continue
        row = rows.get(path)
        if row is None:
            row = rows[path] = {"name": path, "part": model.part_of(path), "block": block_of(path),
                                "params": 0, "score": 0.0, "scores": {}, "counts": {}}
            index[path] = len(index)
        s, n = float(scores[full].sum()), scores[full].numel()
        row["scores"][category] = row["scores"].get(category, 0.0) + s
        row["counts"][category] = row["counts"].get(category, 0) + n
        row["params"] += n
        row["score"] += s
    order = forward_order(model)
    return [rows[p] for p in sorted(rows, key=lambda p: (order.get(p, len(order) + index[p]), index[p]))]


def block_table(rows):
    blocks = {}
    for r in rows:
        b = blocks.setdefault(r["block"], {"block": r["block"], "part": r["part"], "params": 0, "score": 0.0})
        b["params"] += r["params"]
        b["score"] += r["score"]
    return list(blocks.values())


def category_summary(rows):
    """Score per parameter of each category (the paper: biases and norms matter most per entry)."""
    total, count = {}, {}
    for r in rows:
        for c, s in r["scores"].items():
            total[c] = total.get(c, 0.0) + s
            count[c] = count.get(c, 0) + r["counts"][c]
    return {c: {"score": total[c], "params": count[c], "per_param": total[c] / max(count[c], 1)} for c in total}


def save_profile(path, rows, meta=None):
    """faig.json: per layer (name, part, parameter count, score, per-category scores) + blocks."""
    doc = {"meta": meta or {}, "layers": rows, "blocks": block_table(rows), "categories": category_summary(rows)}
    atomic_write_text(path, json.dumps(doc, indent=1) + "\n")
    return path


def load_profile(path):
    from colora.errors import ColoraError

    try:
        doc = json.loads(open(path, encoding="utf-8").read())
        return doc["layers"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ColoraError(f"cannot read FAIG profile '{path}': {exc}") from None


def plot_profile(path, rows, title="FAIG per layer"):
    """faig.png: bar chart of layer scores in forward order coloured by part (like the paper's)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    colours = {"intro": "#555555", "encoder": "#1f77b4", "middle": "#2ca02c", "decoder": "#d62728",
               "ending": "#555555", "other": "#999999"}
    fig, ax = plt.subplots(figsize=(max(6, len(rows) * 0.12), 3.2))
    ax.bar(range(len(rows)), [max(r["score"], 1e-30) for r in rows],
           color=[colours.get(r["part"], "#999999") for r in rows], width=0.85)
    ax.set_yscale("log")
    ax.set(xlabel="layer (forward order)", ylabel="FAIG score", title=title)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[p]) for p in PART_NAMES[1:4]]
    ax.legend(handles, PART_NAMES[1:4], fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path
