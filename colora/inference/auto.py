"""`--adapter auto` (issue 14): per photo, leave it alone, run one adapter, chain several, or blend
them, from what the degradation estimator (colora.inference.estimator) sees in it.

Our rules, measured by benchmarks/all_in_one.py rather than assumed:
- nothing detected (every task below `threshold`, or "clean" the likeliest): the photo is returned
  untouched -- not even the base runs, since a restorer that always changes something damages
  the good photos of a folder;
- one task: its adapter;
- several: `mixture="chain"` runs their adapters one after the other in the reverse of the order
  light met the degradations (colora.inference.estimator.RESTORE_ORDER: noise first, haze last);
  `mixture="blend"` merges the sum of their deltas, each weighted by its probability, into the
  base and runs once (peft's weighted "linear" merge, ABAIR's and UIR-LoRA's composition);
  `mixture="recheck"` runs the first adapter of the chain only, then estimates again on its output
  and goes on with what is still detected (AutoDIR's step-by-step loop): a degradation hidden under
  another (blur under noise) shows once the first is gone; an adapter runs at most once;
- a detected task with no adapter loaded is reported as missing and skipped.
"""
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple

from colora.errors import ColoraError
from colora.inference.estimator import LABELS, detected

MIXTURES = ("chain", "blend", "recheck")
COVERS = {"rain_raindrop": ("rain", "raindrop")}  # what else an adapter's task undoes (recheck)


def _check_mixture(mixture):
    if mixture not in MIXTURES:
        raise ColoraError(f"auto mixture must be one of {', '.join(MIXTURES)}, got {mixture!r}")


@dataclass
class Choice:
    """What auto decided for one image: `--explain` writes this."""

    action: str  # leave | one | chain | blend
    adapters: Tuple[str, ...] = ()  # in the order run (blend: the adapters blended)
    weights: Tuple[float, ...] = ()  # blend only: one weight per adapter
    detected: Tuple[str, ...] = ()  # the tasks the estimate calls for, in restore order
    missing: Tuple[str, ...] = ()  # detected tasks without an adapter
    estimate: Dict[str, float] = field(default_factory=dict)
    rechecks: Tuple[Dict[str, float], ...] = ()  # recheck only: the estimate after each adapter run

    def as_dict(self):
        out = asdict(self)
        out["estimate"] = {k: round(float(v), 4) for k, v in self.estimate.items()}
        out["rechecks"] = [{k: round(float(v), 4) for k, v in e.items()} for e in self.rechecks]
        return out


def decide(estimate: Mapping[str, float], available: Mapping[str, str], threshold: float = 0.5,
           mixture: str = "chain") -> Choice:
    """The Choice for one estimate; `available` maps task -> loaded adapter name. A photo with
    rain and raindrops detected uses a rain_raindrop adapter where one is loaded, else both."""
    _check_mixture(mixture)
    tasks = detected(estimate, threshold)
    if "rain_raindrop" in tasks and "rain_raindrop" not in available:
        tasks = tuple(t for t in tasks for t in (("raindrop", "rain") if t == "rain_raindrop" else (t,)))
    run = tuple(t for t in tasks if t in available)
    missing = tuple(t for t in tasks if t not in available)
    common = dict(detected=tasks, missing=missing, estimate=dict(estimate))
    if not run:
        return Choice("leave", **common)
    names = tuple(available[t] for t in run)
    if len(run) == 1:
        return Choice("one", names, **common)
    if mixture in ("chain", "recheck"):
        return Choice("chain", names, **common)
    weights = tuple(round(float(_probability(estimate, t)), 4) for t in run)
    return Choice("blend", names, weights, **common)


def _probability(estimate, task):
    """A task's probability; rain_raindrop (one adapter, two labels) takes the smaller of the two."""
    if task == "rain_raindrop":
        return min(estimate["rain"], estimate["raindrop"])
    return estimate[task]


class AutoAdapters:
    """The estimator and the adapters it may call, by task; `choose(rgb)` gives the Choice."""

    def __init__(self, estimator, available: Mapping[str, str], threshold: float = 0.5, mixture: str = "chain",
                 max_tiles: int = 16):
        if not 0.0 < threshold < 1.0:
            raise ColoraError(f"the auto threshold must be between 0 and 1 (exclusive), got {threshold}")
        _check_mixture(mixture)
        if not available:
            raise ColoraError("--adapter auto found no adapter to choose from; pass --adapter-dir with task adapters")
        self.estimator, self.available = estimator, dict(available)
        self.threshold, self.mixture, self.max_tiles = threshold, mixture, max_tiles

    def choose(self, rgb, ran: Tuple[str, ...] = ()) -> Choice:
        """The Choice for `rgb`, among the adapters other than `ran` (recheck: those already run,
        and those whose task one of them undoes)."""
        from colora.inference.estimator import estimate

        done = {t for t, n in self.available.items() if n in ran}
        done |= {c for t in done for c in COVERS.get(t, ())} | {t for t, cs in COVERS.items() if set(cs) <= done}
        left = {t: n for t, n in self.available.items() if t not in done}
        return decide(estimate(self.estimator, rgb, self.max_tiles), left, self.threshold, self.mixture)


def adapter_tasks(model) -> Dict[str, Optional[str]]:
    """{adapter name: its recorded task (None if it has none)} of the adapters loaded on `model`."""
    from colora.adapters import get_hub

    return {name: config.get("task") for name, config in get_hub(model).configs.items()}


def task_adapters(model) -> Dict[str, str]:
    """{task: adapter name} of the adapters loaded on `model`, from each one's recorded task (the
    first per task wins); adapters of no known task are not auto candidates."""
    out = {}
    for name, task in adapter_tasks(model).items():
        if task in LABELS[1:] + ("rain_raindrop",) and task not in out:
            out[task] = name
    return out


def adapter_folders(directory) -> list:
    """The adapter folders (holding adapter_config.json) directly inside `directory`, sorted."""
    d = Path(directory) if directory else None
    if d is None or not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if (p / "adapter_config.json").is_file())


def summary(choice: Mapping) -> str:
    """One line for the log from a Choice's `as_dict()`: what was detected and what ran."""
    names, weights = choice["adapters"], choice["weights"]
    ran = {"leave": "left untouched", "one": f"adapter {names[0] if names else ''}",
           "chain": "chain " + " -> ".join(names),
           "blend": "blend " + " + ".join(f"{w:g} x {n}" for n, w in zip(names, weights))}[choice["action"]]
    found = ", ".join(choice["detected"]) or "nothing"
    miss = f" (no adapter for {', '.join(choice['missing'])})" if choice["missing"] else ""
    return f"detected {found}: {ran}{miss}"
