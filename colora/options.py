"""YAML options -> typed dataclasses, with BasicSR's key names and strict validation.

Why strict: a typo such as `total_iters` would otherwise be ignored silently and a run would train with
the default. Every unknown key is an error naming the key, its section and the closest valid key. Keys
that only BasicSR uses (`num_gpu`, `dist_params`, ...) are accepted with a warning so the official
NAFNet / Restormer YAMLs load unchanged. BasicSR writes counts as `!!float 2e4` and PyYAML reads `2e-4`
as a string: integral floats and numeric strings are accepted where numbers are due.
"""
import dataclasses
import difflib
import logging
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Dict, List, Optional, Sequence, Union

import yaml

from colora.adapters.config import AdapterOpt
from colora.degradations.prod import DegradationsOpt  # noqa: F401  (a section of Options; public here)
from colora.errors import OptionsError
from colora.sections import Section, plain

log = logging.getLogger("colora")


@dataclass
class NetworkOpt:
    """`network_g`: the architecture `type` plus its keyword options, checked against its signature."""

    type: Optional[str] = "NAFNet"  # None (`network_g: ~`): fine-tuning takes the base checkpoint's own
    params: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self):
        return {"type": self.type, **plain(self.params)} if self.type is not None else {}


@dataclass
class DatasetOpt(Section):
    BASICSR_ONLY = frozenset({"io_backend", "dataset_enlarge_ratio", "prefetch_mode", "pin_memory", "mean", "std", "color",
                              "phase", "scale", "use_hflip", "gt_size_minimum", "iters", "gt_sizes", "mini_batch_sizes"})
    name: str = ""
    type: str = "ProdDataset"
    dataroot_gt: Optional[str] = None  # clean images (ProdDataset/TaskDataset) or GT folder (paired)
    dataroot_lq: Optional[str] = None  # degraded images of a paired folder
    task: Optional[str] = None  # TaskDataset: rain, raindrop, rain_raindrop, noise, blur, haze, ...
    gt_size: int = 128
    use_flip: bool = True
    use_rot: bool = True
    use_shuffle: bool = True
    batch_size_per_gpu: int = 8
    num_worker_per_gpu: int = 0
    num_pairs: Optional[int] = None  # fixed training pairs (the paper fine-tunes on 16..128)
    num_samples: int = 16  # size of a synthetic validation set
    seed: int = 0
    photos: Optional[List[str]] = None  # bundled photos to use when dataroot_gt is ~ (None = all)
    crop_pairs_size: Optional[int] = None  # fixed training crops: synthetic None = 2 * gt_size; real None = whole
    scene_size: Optional[int] = None  # synthetic: degrade a scene view of this side, then crop (datasets.scene_view)
    dead_leaves: int = 0  # synthetic: procedural images beside the clean ones (colora.data.dead_leaves)
    p_clean: float = 0.0  # TaskDataset, train: share of pairs left undegraded (lq == gt), so an adapter learns to leave alone
    RANGES = {"p_clean": (0.0, 1.0), "gt_size": (8, 8192), "batch_size_per_gpu": (1, 4096), "num_worker_per_gpu": (0, 256), "num_pairs":
              (1, 10 ** 7), "num_samples": (1, 10 ** 6), "crop_pairs_size": (8, 16384), "scene_size": (8, 16384)}
    filename_tmpl: str = "{}"  # paired folders: LQ stem from GT stem, as BasicSR ('{}_x4': gt/a.png ~ lq/a_x4.png)
    dataroot: Optional[str] = None  # a benchmark's extracted root (SIDD, GoPro, RainDS_real, ...: colora.data)
    split: Optional[str] = None  # a benchmark's split (train, test, val, ...); None = the phase's default
    subset: Optional[str] = None  # a benchmark's subset (RainDS: raindrop, ...; GoPro: blur, blur_gamma)


@dataclass
class PathOpt(Section):
    BASICSR_ONLY = frozenset({"root", "models", "training_states", "log", "visualization", "results_root"})
    pretrain_network_g: Optional[str] = None
    pretrain_adapter: Optional[str] = None  # fine-tuning: go on training this adapter folder (finetune.py)
    strict_load_g: bool = True
    param_key_g: str = "params"
    resume_state: Optional[str] = None
    experiments_root: str = "experiments"
    CHOICES = {"param_key_g": ("params", "params_ema")}


@dataclass
class OptimOpt(Section):
    type: str = "AdamW"
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: List[float] = field(default_factory=lambda: [0.9, 0.9])
    eps: float = 1e-8
    CHOICES = {"type": ("Adam", "AdamW")}
    RANGES = {"lr": (0, 10), "weight_decay": (0, 10), "betas": (0, 0.999999), "eps": (1e-30, 1)}


@dataclass
class SchedulerOpt(Section):
    """Cosine (BasicSR's TrueCosineAnnealingLR / CosineAnnealingRestartLR), multistep or constant."""

    BASICSR_ONLY = frozenset({"restart_weights"})
    type: str = "CosineAnnealingLR"
    T_max: Optional[int] = None  # default: total_iter
    eta_min: float = 1e-7
    eta_mins: Optional[List[float]] = None
    periods: Optional[List[int]] = None
    milestones: List[int] = field(default_factory=list)
    gamma: float = 0.5
    RANGES = {"T_max": (1, 10 ** 9), "eta_min": (0, 10), "eta_mins": (0, 10), "periods": (1, 10 ** 9),
              "milestones": (0, 10 ** 9), "gamma": (1e-9, 10)}
    CHOICES = {"type": ("CosineAnnealingLR", "TrueCosineAnnealingLR", "CosineAnnealingRestartLR",
                        "CosineAnnealingRestartCyclicLR", "MultiStepLR", "ConstantLR")}


@dataclass
class LossOpt(Section):
    type: str = "L1Loss"
    loss_weight: float = 1.0
    reduction: str = "mean"
    eps: float = 1e-12  # Charbonnier
    max_psnr: float = 80.0  # PSNRLoss: each image's ceiling (its MSE floor is 10^(-max_psnr/10))
    RANGES = {"loss_weight": (0, 1e6), "eps": (1e-30, 1), "max_psnr": (10, 200)}
    CHOICES = {"type": ("L1Loss", "MSELoss", "CharbonnierLoss", "PSNRLoss"), "reduction": ("mean", "sum")}


@dataclass
class TrainOpt(Section):
    BASICSR_ONLY = frozenset({"mixing_augs", "use_grad_clip"})
    optim_g: OptimOpt = field(default_factory=OptimOpt)
    scheduler: SchedulerOpt = field(default_factory=SchedulerOpt)
    total_iter: int = 1000
    warmup_iter: int = -1  # linear warm-up iterations; -1 = none (BasicSR)
    pixel_opt: LossOpt = field(default_factory=LossOpt)
    ema_decay: float = 0.0  # 0 = no EMA
    grad_clip: float = 0.0  # max gradient norm; 0 = no clipping (NAFNet uses 0.01)
    deterministic: bool = False
    RANGES = {"total_iter": (1, 10 ** 9), "warmup_iter": (-1, 10 ** 9), "grad_clip": (0, 1e9)}
    precision: str = "fp32"  # autocast dtype: auto = bf16 where the hardware has it natively (colora.precision)
    channels_last: bool = False  # NHWC tensors: measured 1.1-1.2x faster training steps on CPU
    cudnn_benchmark: bool = False  # CUDA: let cuDNN time its kernels for the (fixed) patch size once
    compile: bool = False  # torch.compile the network for training (the first steps compile it)
    compile_backend: str = "inductor"  # torch.compile's backend (inductor needs a C++ compiler / triton)
    CHOICES = {"precision": ("auto", "fp32", "bf16", "fp16")}

    def validate(self, where):
        super().validate(where)
        if len(self.optim_g.betas) != 2:
            raise OptionsError(f"{where}.optim_g.betas must be two numbers such as [0.9, 0.99], got {self.optim_g.betas}")
        if self.total_iter < 1:
            raise OptionsError(f"{where}.total_iter must be at least 1, got {self.total_iter}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise OptionsError(f"{where}.ema_decay must be in [0, 1), got {self.ema_decay}")


@dataclass
class MetricOpt(Section):
    type: str = "calculate_psnr"
    crop_border: int = 0
    test_y_channel: bool = False
    RANGES = {"crop_border": (0, 4096)}
    CHOICES = {"type": ("calculate_psnr", "calculate_ssim", "psnr", "ssim")}


@dataclass
class ValOpt(Section):
    BASICSR_ONLY = frozenset({"use_image", "grids", "crop_size", "rgb2bgr", "max_minibatch", "pbar"})
    val_freq: int = 500
    save_img: bool = False
    num_save_img: int = 4
    RANGES = {"val_freq": (1, 10 ** 9), "num_save_img": (0, 10 ** 6)}
    metrics: Dict[str, MetricOpt] = field(default_factory=lambda: {
        "psnr": MetricOpt("calculate_psnr"), "ssim": MetricOpt("calculate_ssim")})


@dataclass
class LoggerOpt(Section):
    BASICSR_ONLY = frozenset({"wandb"})
    print_freq: int = 100
    save_checkpoint_freq: int = 1000
    use_tb_logger: bool = False
    keep_checkpoints: int = 3  # older net_g_<iter> / <iter>.state files are pruned
    RANGES = {"print_freq": (1, 10 ** 9), "save_checkpoint_freq": (1, 10 ** 9), "keep_checkpoints": (0, 10 ** 6)}


@dataclass
class Options(Section):
    BASICSR_ONLY = frozenset({"model_type", "scale", "num_gpu", "dist_params", "is_train", "dist",
                              "rank", "world_size", "auto_resume", "find_unused_parameters"})
    name: str = "colora"
    manual_seed: int = 0
    network_g: NetworkOpt = field(default_factory=NetworkOpt)
    datasets: Dict[str, DatasetOpt] = field(default_factory=dict)
    path: PathOpt = field(default_factory=PathOpt)
    train: TrainOpt = field(default_factory=TrainOpt)
    val: ValOpt = field(default_factory=ValOpt)
    logger: LoggerOpt = field(default_factory=LoggerOpt)
    degradations: DegradationsOpt = field(default_factory=DegradationsOpt)
    adapter: AdapterOpt = field(default_factory=AdapterOpt)
    source: Optional[str] = field(default=None, compare=False)  # the YAML file it came from
    warnings: List[str] = field(default_factory=list, compare=False)
    RANGES = {"manual_seed": (0, 2 ** 63 - 1)}

    def to_dict(self):
        d = super().to_dict()
        d.pop("source"), d.pop("warnings")
        if self.network_g.type is None:  # `network_g: ~` dumps as itself
            d["network_g"] = None
        return d

    def validate(self, where):
        super().validate(where)
        check_name(self.name, "name")


def check_name(name, where):
    """An experiment name is a folder (or sub-folder) of experiments_root, never a way out of it."""
    parts = PurePosixPath(str(name).replace("\\", "/")).parts
    if (not str(name).strip() or PurePosixPath(str(name)).is_absolute() or PureWindowsPath(str(name)).is_absolute()
            or not parts or any(p in ("..", ".") for p in parts) or str(name).startswith("~") or "\0" in str(name)):
        raise OptionsError(f"{where} {str(name)!r} must be a folder name inside path.experiments_root "
                           "(no '..', '.', '~' or absolute path), such as NAFNet_noise")


def load_options(src: Union[str, Path, dict], overrides: Sequence[str] = ()) -> "Options":
    """Load options from a YAML path or a dict, apply `--set a.b=c` overrides, validate strictly."""
    if isinstance(src, (str, Path)):
        raw, source = _read_yaml(Path(src)), str(src)
    else:
        raw, source = dict(src or {}), None
    for item in overrides:
        _apply_override(raw, item)
    opts = _build(Options, raw, "options", warnings := [])
    opts.source, opts.warnings = source, warnings
    for msg in warnings:
        log.warning(msg)
    return opts


def load_section(cls, data, where):
    """One section (DatasetOpt, DegradationsOpt, ...) from its mapping (None = its defaults), as
    strictly as `load_options` checks it; an instance of `cls` is returned as it is. For the code
    that is handed a section on its own, such as build_dataset."""
    if isinstance(data, cls):
        return data
    section = _build(cls, data, where, warnings := [])
    for msg in warnings:
        log.warning(msg)
    return section


def dump_options(opts):
    """The resolved options as YAML text (saved next to every experiment)."""
    return yaml.safe_dump(opts.to_dict(), sort_keys=False)


def _read_yaml(path):
    if not path.is_file():
        raise OptionsError(f"options file '{path}' not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise OptionsError(f"cannot parse '{path}'{where}: {getattr(exc, 'problem', exc)}") from None
    except UnicodeDecodeError:
        raise OptionsError(f"cannot parse '{path}': it is not a UTF-8 text file") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise OptionsError(f"'{path}' must hold a mapping of option sections, not a {type(raw).__name__}")
    return raw


def _apply_override(raw, item):
    """`train.total_iter=100` -> raw['train']['total_iter'] = 100 (value parsed as YAML)."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise OptionsError(f"--set expects KEY=VALUE such as train.total_iter=100, got '{item}'")
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
        if node.get(part) is None:
            node[part] = {}
        if not isinstance(node[part], dict):
            raise OptionsError(f"--set {key}: '{part}' is not a section")
        node = node[part]
    try:
        node[parts[-1]] = yaml.safe_load(value)
    except yaml.YAMLError:
        node[parts[-1]] = value


def _closest(key, valid):
    match = difflib.get_close_matches(str(key), list(valid), n=1, cutoff=0.5)
    return f"; did you mean '{match[0]}'?" if match else f"; valid keys: {', '.join(sorted(valid))}"


def _build(cls, data, where, warnings):
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise OptionsError(f"{where} must be a mapping of keys, got {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name not in ("source", "warnings", *cls.FLAT)]
    flat = {f.name: sub for sub in cls.FLAT for f in dataclasses.fields(hints[sub])}  # key -> its sub-section
    kwargs, parts = {}, {sub: {} for sub in cls.FLAT}
    for key, value in data.items():
        if key in flat:
            parts[flat[key]][key] = value
        elif key in names:
            kwargs[key] = _convert(value, hints[key], f"{where}.{key}" if where != "options" else key,
                                   warnings)
        elif key in cls.BASICSR_ONLY:
            warnings.append(f"ignoring BasicSR-only key '{key}' in {where}")
        else:
            raise OptionsError(f"unknown key '{key}' in {where}{_closest(key, names + list(flat))}")
    kwargs.update({sub: _build(hints[sub], part, where, warnings) for sub, part in parts.items()})
    obj = cls(**kwargs)
    obj.validate(where)
    return obj


def _build_network(data, where):
    from colora.archs import arch_params, check_arch_options

    if not isinstance(data, dict):
        raise OptionsError(f"{where} must be a mapping such as {{type: NAFNet, width: 32}}")
    data = dict(data)
    arch = str(data.pop("type", "NAFNet"))
    valid = arch_params(arch)  # raises for an unknown type, with the closest name
    params = {}
    for key, value in data.items():
        if key not in valid:
            raise OptionsError(f"unknown key '{key}' in {where} ({arch}){_closest(key, valid)}")
        default = valid[key]
        hint = type(default) if isinstance(default, (bool, int, float, str)) else Any
        if isinstance(default, (list, tuple)) and value is not None:
            hint = List[type(default[0])] if default and not isinstance(default[0], (list, tuple)) else list
        params[key] = _convert(value, hint, f"{where}.{key}", [])
    check_arch_options(arch, params, where)
    return NetworkOpt(arch, params)


def network_options(data, where="network_g"):
    """A `network_g` mapping (from a YAML or a checkpoint header) checked like the YAML section:
    known type and keys, value types, and each size in its architecture's domain."""
    return _build_network(data, where)


def _convert(value, hint, where, warnings):
    """Convert a YAML value to the annotated type, or fail naming the expected type."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if hint is NetworkOpt:
        return NetworkOpt(None) if value is None else _build_network(value, where)
    if origin is Union:  # Optional[X]
        if value is None:
            return None
        return _convert(value, next(a for a in args if a is not type(None)), where, warnings)
    if isinstance(hint, type) and issubclass(hint, Section):
        return _build(hint, value, where, warnings)
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise OptionsError(f"{where} must be a list, got {value!r}")
        item = args[0] if args else Any
        return [_convert(v, item, f"{where}[{i}]", warnings) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise OptionsError(f"{where} must be a mapping, got {value!r}")
        return {str(k): _convert(v, args[1], f"{where}.{k}", warnings) for k, v in value.items()}
    return _scalar(value, hint, where)


def _scalar(value, hint, where):
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise OptionsError(f"{where} must be true or false, got {value!r}")
    if hint in (int, float):
        number = value
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                number = None
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise OptionsError(f"{where} must be {'an integer' if hint is int else 'a number'}, got {value!r}")
        if not math.isfinite(number):
            raise OptionsError(f"{where} must be a finite number, got {value!r}")
        if hint is int:
            if float(number) != int(number):
                raise OptionsError(f"{where} must be an integer, got {value!r}")
            return int(number)
        return float(number)
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise OptionsError(f"{where} must be a string, got {value!r}")
    return value
