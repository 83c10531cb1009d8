"""The `adapter:` options section, typed: the method's own settings apart from the budget and FAIG.

    adapter:                 # the keys stay flat in YAML and --set (adapter.rank=4, adapter.faig_steps=50)
      method: colora         # AdapterOpt.method, .name, .task
      rank: 8                # AdapterOpt.settings:   what the method trains (MethodOpt)
      budget: 0.07           # AdapterOpt.allocation: how much it may train (AllocationOpt)
      faig_steps: 20         # AdapterOpt.faig:       how contributions are measured (FaigOpt)

Each section reaches the code that uses it as this typed object: a method's `layers` reads
`settings`, its fine-tuning hook (`Method.prepare`) reads `allocation`, FAIG reads `faig`. Plain data
only (no torch), so loading options stays fast.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from colora.adapters.registry import METHOD_NAMES
from colora.errors import OptionsError
from colora.sections import Section


@dataclass
class MethodOpt(Section):
    """What the method trains. Each method reads the fields it has a use for (SCT: `target` and
    `sct_channels`; DiffFit: `target` and `train_norm`; ...) and leaves the rest, so one config can
    drive every method of `colora compare`."""

    rank: int = 8
    alpha: Optional[float] = None  # LoRA scale numerator; default = rank (scale 1)
    target: List[str] = field(default_factory=list)  # regexes or part names; empty = method default
    rank_pattern: Dict[str, int] = field(default_factory=dict)  # regex -> rank, peft's rank_pattern
    train_bias: Optional[bool] = None  # None = the method's default (CoLoRA: true, LoRA: false)
    train_norm: Optional[bool] = None
    train_layer_scale: Optional[bool] = None
    train_depthwise: bool = False  # depthwise convs get no LoRA; this tunes them fully instead
    sct_channels: Optional[int] = None  # K of SCT; default C_out / 8
    RANGES = {"rank": (0, 4096), "alpha": (-1e6, 1e6), "sct_channels": (1, 4096)}


@dataclass
class AllocationOpt(Section):
    """How much the adapter may train: CoLoRA shares `budget` out by FAIG contribution; LoRA with
    `match_budget` takes the one rank that fills it (the paper's equal-budget comparison)."""

    budget: float = 0.07  # trainable fraction of the base (paper: ~7 %)
    match_budget: bool = False  # LoRA: one rank for all layers, chosen so the adapter fills `budget`

    def validate(self, where):
        super().validate(where)
        if not 0.0 < self.budget < 1.0:
            raise OptionsError(f"{where}.budget must be between 0 and 1 (a fraction of the base), got {self.budget}")


@dataclass
class FaigOpt(Section):
    """FAIG (integrated gradients from theta_b to a briefly fine-tuned theta_t): a saved profile,
    or the path steps, task images and tuning iterations of a new one."""

    faig_profile: Optional[str] = None  # a faig.json to reuse instead of measuring
    faig_steps: int = 20
    faig_images: int = 8
    faig_tune_iter: int = 100
    RANGES = {"faig_steps": (1, 10 ** 5), "faig_images": (1, 10 ** 5), "faig_tune_iter": (0, 10 ** 7)}


@dataclass
class AdapterOpt(Section):
    """Parameter-efficient fine-tuning (see colora/adapters): which method, and its three sections."""

    method: str = "colora"
    name: Optional[str] = None
    task: Optional[str] = None
    settings: MethodOpt = field(default_factory=MethodOpt)
    allocation: AllocationOpt = field(default_factory=AllocationOpt)
    faig: FaigOpt = field(default_factory=FaigOpt)
    FLAT = ("settings", "allocation", "faig")
    CHOICES = {"method": METHOD_NAMES}

    def validate(self, where):
        super().validate(where)
        if self.allocation.match_budget and self.method != "lora":
            raise OptionsError(f"{where}.match_budget picks a uniform LoRA rank, so it needs method: lora "
                               f"(got {self.method}); remove it or set method: lora")
