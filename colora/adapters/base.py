"""What a method module defines -- tuners (per layer) and a method (per model) -- and the targeting
helpers they share.

A `Tuner` is the trainable part of one adapter on one base module (its *owner*, e.g. a Conv2d or a
NAFBlock): it returns additive deltas for some of the owner's tensors (`weight`, `bias`, `beta`,
...), which colora.adapters.hub installs. A `Method` (LoRA, SVDiff, ...) decides which tuners go on
which layers of a model (`layers`), which extras -- biases, norms, layer scales, depthwise convs --
it trains besides (`trained_extras`), and what a fine-tuning run prepares for it from the task data
before the adapter is attached (`prepare`).
"""
import math
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Protocol, Set, Tuple

import torch
from torch import nn

from colora.adapters.config import AdapterOpt, MethodOpt
from colora.errors import AdapterError

Layers = Dict[str, List[dict]]  # owner path -> tuner specs (Tuner.spec()): adapter_config.json's `layers`
TUNERS = {}  # kind -> Tuner class (filled by the method modules)


def register_tuner(cls):
    TUNERS[cls.kind] = cls
    return cls


class Tuner(nn.Module):
    """Trainable part of one adapter on one owner module. Subclasses set `kind` and `touches`."""

    kind = ""

    def __init__(self, owner, **settings):
        super().__init__()
        self.settings = settings  # JSON-serialisable: enough to rebuild an empty tuner

    def deltas(self, base):
        """{param name: additive delta} given the owner's base tensors {name: tensor or None}."""
        raise NotImplementedError

    def write_merged(self, out, pname, bases, alpha):
        """out = base + alpha * delta for `pname` (the merged buffer). Tuners whose delta is a
        product override this to write it in one pass (LoRA: addmm into `out`)."""
        delta, base = self.deltas(bases)[pname], bases[pname]
        if base is None:
            torch.mul(delta, alpha, out=out)
        else:
            torch.add(base, delta.to(base.dtype), alpha=alpha, out=out)

    def spec(self):
        return {"kind": self.kind, **self.settings}

    @classmethod
    def check(cls, owner, settings):
        """Why `settings` (from an adapter file) cannot fit `owner`, or None. Runs before anything
        is allocated, so a config saying `rank: 2e7` costs an error line, not gigabytes. Here: every
        number finite and no count above the layer's own size; tuners with sizes refine it."""
        size = sum(p.numel() for p in owner.parameters(recurse=False))
        for key, value in settings.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if not math.isfinite(value) or (isinstance(value, int) and not 0 <= value <= size):
                return f"{key}={value!r} is not a count between 0 and the layer's {size} parameters"
        return None


# ---- methods ------------------------------------------------------------------------------------
EXTRA_FLAGS = {"bias": "train_bias", "norm": "train_norm", "scale": "train_layer_scale",
               "depthwise": "train_depthwise"}  # extra (a classify_parameters category) -> its flag


@dataclass
class Preparation:
    """What `Method.prepare` hands back to a fine-tuning run: the adapter config to attach (maybe
    with a rank chosen for the budget), per-layer ranks, calibration inputs, and the rank table to
    record beside the adapter."""

    adapter: AdapterOpt
    ranks: Optional[Dict[str, int]] = None  # {layer path: LoRA rank}
    calib: Optional[List[torch.Tensor]] = None
    table: Optional[List[dict]] = None


class TaskRun(Protocol):
    """What a fine-tuning run offers `Method.prepare` (colora.tuning.finetune.FinetuneRun): the
    model and adapter config, and the task-driven choices that colora.tuning makes."""

    model: nn.Module
    adapter: AdapterOpt

    def inputs(self, count: int) -> List[torch.Tensor]:
        """`count` task input images, in batches (calibration)."""

    def allocate_ranks(self, extra: int) -> Tuple[Dict[str, int], List[dict]]:
        """CoLoRA's {layer path: rank} from the task's FAIG profile, filling adapter.budget with
        `extra` parameters trained besides LoRA; and the rank table."""

    def uniform_rank(self, extra: int) -> int:
        """The one LoRA rank whose adapter, with `extra` parameters besides, fills adapter.budget."""


class Method:
    """One adapter method: which tuners it puts on which layers. Registered by name
    (colora.adapters.registry); subclasses implement `layers` and set `extras`."""

    name = ""  # set by register_method
    # extras the method may train besides its own tuners -> whether it does when the flag is unset
    extras: Dict[str, bool] = {}
    ranked = False  # whether the method has per-layer LoRA ranks (`ranks` of `layers`)

    def layers(self, model: nn.Module, settings: MethodOpt, calib: Optional[List[torch.Tensor]] = None,
               ranks: Optional[Dict[str, int]] = None) -> Layers:
        """{owner path: [tuner spec]} of this method on `model`. `calib`: task inputs (SCT);
        `ranks`: {layer path: rank} over `settings.rank` and `settings.rank_pattern` (ranked methods)."""
        raise NotImplementedError

    def trained_extras(self, settings: MethodOpt) -> Set[str]:
        """The extras this config trains: each one the method offers, where its flag says so, else
        the method's default. The one rule: the adapter's layers, CoLoRA's allocation and LoRA's
        budget-filling rank all count what this returns."""
        flags = {extra: getattr(settings, flag) for extra, flag in EXTRA_FLAGS.items()}
        return {extra for extra, default in self.extras.items() if (default if flags[extra] is None else flags[extra])}

    def extra_specs(self, model: nn.Module, settings: MethodOpt) -> Layers:
        """Delta tuners on every tensor of the extras this config trains."""
        return delta_specs(model, self.trained_extras(settings))

    def extra_params(self, model: nn.Module, settings: MethodOpt) -> int:
        """How many parameters those extras are (what a budget must leave room for)."""
        modules = dict(model.named_modules())
        return sum(getattr(modules[path], p).numel() for path, specs in self.extra_specs(model, settings).items()
                   for p in specs[0]["params"])

    def prepare(self, run: TaskRun) -> Preparation:
        """The hook a fine-tuning run calls before attaching the adapter. Default: nothing to
        prepare (the config is attached as it is)."""
        return Preparation(run.adapter)


# ---- targeting ----------------------------------------------------------------------------------
def iter_base_modules(model):
    """(path, module) of the base network (the hub is skipped)."""
    for path, module in model.named_modules():
        if path == "colora_adapters" or path.startswith("colora_adapters."):
            continue
        yield path, module


def pattern_matches(pattern, path):
    """peft's rule: a full regex match of the module path, or of its last dotted components."""
    return re.fullmatch(pattern, path) is not None or re.fullmatch(rf".*\.(?:{pattern})", path) is not None


def select(model, targets, candidates, what="target"):
    """Module paths among `candidates` chosen by `targets`: part names (intro, encoder, middle,
    decoder, ending) or regexes. Empty targets = all candidates. A target that matches nothing is
    an error listing near names, never silently ignored (peft's rank_pattern pitfall)."""
    if not targets:
        return list(candidates)
    from colora.archs.contract import PART_NAMES, Architecture

    arch = model if isinstance(model, Architecture) else None  # parts come from the arch contract
    parts = PART_NAMES if arch is not None else ()
    chosen = []
    for target in targets:
        try:
            hits = [p for p in candidates if (arch.part_of(p) == target if target in parts
                                              else pattern_matches(target, p))]
        except re.error as exc:
            raise AdapterError(f"{what} '{target}' is not a valid regular expression: {exc}") from None
        if not hits:
            raise AdapterError(f"{what} '{target}' matches no adaptable layer; {near_names(target, candidates, parts)}")
        chosen += [h for h in hits if h not in chosen]
    return [p for p in candidates if p in chosen]


def near_names(target, candidates, parts):
    import difflib

    leaves = sorted({p.split(".")[-1] for p in candidates} | set(candidates))
    near = difflib.get_close_matches(target, leaves, n=3, cutoff=0.4)
    if near:
        return "did you mean " + " or ".join(f"'{n}'" for n in near) + "?"
    example = f"layer names look like '{candidates[0] if candidates else ''}'"
    return f"part names are {', '.join(parts)}; {example}" if parts else example


def resolve_ranks(model, paths, default, rank_pattern, ranks=None):
    """Per-layer rank of the layers `paths`: `default`, then `rank_pattern` (peft's: pattern ->
    rank, later patterns win), then `ranks` ({layer path: rank}, e.g. CoLoRA's allocation), which
    names layers by their exact paths, so it is looked up, never matched as a pattern."""
    out = {p: default for p in paths}
    for pattern, rank in (rank_pattern or {}).items():
        for hit in select(model, [pattern], paths, what="rank_pattern key"):
            out[hit] = int(rank)
    for path, rank in (ranks or {}).items():
        if path not in out:
            raise AdapterError(f"ranks name '{path}', which is not among the adapted layers; "
                               f"{near_names(path, list(paths), ())}")
        out[path] = int(rank)
    return out


def is_depthwise(module):
    return isinstance(module, nn.Conv2d) and module.groups > 1


def is_norm(module):
    return isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)) or \
        "Norm" in type(module).__name__


def classify_parameters(model):
    """(owner path, param name, category) for every base parameter; categories are the ones the
    paper's FAIG analysis separates: conv/linear `weight`, `depthwise` weight, `bias`, `norm`
    affine, and `scale` (NAFNet's beta/gamma, Restormer's attention temperature)."""
    for path, module in iter_base_modules(model):
        for pname, p in module.named_parameters(recurse=False):
            if p is None:
                continue
            if is_norm(module):
                category = "norm"
            elif isinstance(module, (nn.Conv2d, nn.Linear)):
                category = "bias" if pname == "bias" else "depthwise" if is_depthwise(module) else "weight"
            else:
                category = "scale"
            yield path, pname, category


def adaptable_layers(model, depthwise=False):
    """Paths of Conv2d/Linear layers (without depthwise/grouped convs unless asked)."""
    return [p for p, m in iter_base_modules(model)
            if isinstance(m, (nn.Conv2d, nn.Linear)) and (depthwise or not is_depthwise(m))]


def delta_specs(model, categories, paths=None):
    """{owner path: [delta spec]} training every base tensor of the given categories (optionally
    only on owners under `paths`) as an additive delta."""
    layers = {}
    for path, pname, category in classify_parameters(model):
        if category in categories and (paths is None or any(path == q or path.startswith(q + ".") for q in paths)):
            layers.setdefault(path, [{"kind": "delta", "params": []}])[0]["params"].append(pname)
    return layers


def merge_specs(*dicts):
    """Combine {path: [specs]} dicts; delta specs on one owner are fused into one."""
    out = {}
    for d in dicts:
        for path, specs in d.items():
            for spec in specs:
                have = out.setdefault(path, [])
                delta = next((s for s in have if s["kind"] == "delta"), None)
                if spec["kind"] == "delta" and delta is not None:
                    delta["params"] += [p for p in spec["params"] if p not in delta["params"]]
                else:
                    have.append({**spec, "params": list(spec["params"])} if spec["kind"] == "delta" else dict(spec))
    return out


def kaiming_uniform_(tensor):
    """LoRA's A init (loralib / peft): Kaiming-uniform with a = sqrt(5)."""
    nn.init.kaiming_uniform_(tensor, a=math.sqrt(5))
    return tensor
