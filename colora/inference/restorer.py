"""Restorer: a frozen base + adapters applied to image arrays and to folders of photos.

Fast on CPU by default: channels_last tensors, `torch.inference_mode`, adapters merged into the
weights (a swap re-merges in place); `precision` (colora.precision.inference_dtype: auto = bf16 only
where native and measured faster) casts the whole network, not autocast. The network itself runs in
a runner of colora.inference (torch, or an exported .onnx file in ONNX Runtime). The network runs in
its inference form (colora.archs.contract; NAFNet: TLC), so a photo larger than the training
patches sees the statistics the network was trained with.
"""
import logging
from dataclasses import replace
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import numpy as np
import torch

from colora.inference.batch import FileResult, list_inputs, output_path  # noqa: F401  (public here)
from colora.errors import AdapterError, ColoraError
from colora.imageio import quantize, to_float32
from colora.inference.auto import adapter_tasks
from colora.inference.ensemble import self_ensemble
from colora.inference.refine import REFINE_MODES, guided_refine, rule_for
from colora.inference.tiling import count_tiles, run_tiled

log = logging.getLogger("colora")


def load_model(path, train_size: Optional[int] = None) -> torch.nn.Module:
    """Build the network a checkpoint describes, load it strictly and prepare it for inference
    (colora.archs.contract: NAFNet gets TLC for the checkpoint's training patch side, or
    `train_size`). Its `network_g` stays the training form, so adapters made on it load."""
    from colora.archs import build_arch
    from colora.checkpoint import check_fits, checkpoint_network_g, load_state_dict, read_metadata, train_size_of

    state = load_state_dict(path)
    meta = read_metadata(path)
    model = build_arch(checkpoint_network_g(path, state, meta))
    check_fits(model, state, path)
    model.load_state_dict(state)
    return model.prepare_for_inference(int(train_size or train_size_of(path, meta)))


WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"


def default_model_path() -> Path:
    """The base shipped inside the package (made by scripts/make_default_weights.sh)."""
    path = WEIGHTS_DIR / "base.safetensors"
    if not path.is_file():
        raise ColoraError("no --model given and this installation ships no default weights; "
                          "pass --model CHECKPOINT")
    return path


def find_adapter(name, search_dirs):
    """An adapter folder given as a path or as a name inside one of `search_dirs`."""
    p = Path(name)
    if (p / "adapter_config.json").is_file():
        return p
    for d in search_dirs:
        if d is not None and (Path(d) / name / "adapter_config.json").is_file():
            return Path(d) / name
    where = ", ".join(str(d) for d in search_dirs if d is not None) or "nowhere"
    raise AdapterError(f"adapter '{name}' not found: not a folder with adapter_config.json, nor a "
                       f"sub-folder of {where}; pass --adapter-dir or a path")


class Restorer:
    """Restore image arrays with a model and an optional chain of adapters.

    Several adapters run in sequence (the output of the first is the input of the second): e.g.
    ["rain", "haze"] removes rain, then haze.
    """

    def __init__(self, model: torch.nn.Module, adapters: Sequence = (), strength: float = 1.0, tile: int = 0,
                 tile_pad: int = 32, bf16: bool = False, channels_last: bool = True, max_pixels: int = 200_000_000,
                 max_memory: Optional[int] = None, device: str = "cpu", precision: str = "auto",
                 force_precision: bool = False, compile: bool = False, auto=None, refine: str = "auto",
                 tta: bool = False):
        """`tile` 0 = whole images when they fit `max_memory` bytes (default: half the RAM), else
        the largest tile that does; a photo that cannot fit even tiled is refused before decoding.
        `auto` (colora.inference.auto.AutoAdapters): choose among `adapters` per image; the last
        image's Choice is `last_choice`. `refine` "auto": after each step whose adapters' task has a
        rule in colora.inference.refine (haze), the guided refinement; "off": never. `tta`: every
        forward is the geometric self-ensemble of colora.inference.ensemble (8x the time)."""
        from colora.adapters import get_hub, merge_adapter, set_adapter, set_strength
        from colora.inference.runtime import TorchRunner
        from colora.inference.memory import default_budget

        runner = None if isinstance(model, torch.nn.Module) else model  # e.g. an OnnxRunner
        if runner is not None and adapters:
            raise AdapterError("an exported model has its adapters merged already; export it with --adapter")
        precision = "bf16" if bf16 else precision  # `bf16=True` / `--bf16`: an alias
        if runner is not None and precision not in ("auto", runner.precision):
            log.warning(f"precision {precision}: the {type(runner).__name__} runs {runner.precision}")
        self.model = model.eval().to(device) if runner is None else None
        self.device, self.tile, self.tile_pad = torch.device(device), int(tile), int(tile_pad)
        self.max_pixels = max_pixels
        self.max_memory = default_budget() if max_memory is None else int(max_memory)
        self._net_bpp = None
        self.chain, self.auto, self.last_choice, self.tta = list(adapters), auto, None, bool(tta)
        if refine not in REFINE_MODES:
            raise ColoraError(f"refine must be one of {', '.join(REFINE_MODES)}, got {refine!r}")
        self.refine = refine
        if auto is not None and (not self.chain or not set(auto.available.values()) <= set(self.chain)):
            raise AdapterError("auto may only choose among the adapters the restorer loaded")
        if self.chain:
            set_strength(self.model, strength)
            merge_adapter(self.model)
            set_adapter(self.model, self.chain[0])
            self._set_adapter = lambda name: set_adapter(self.model, name) if get_hub(self.model).active != name else None
            self._blend = lambda weights: get_hub(self.model).blend(weights)
            self._tasks = adapter_tasks(self.model)
        swaps = len(self.chain) > 1 or auto is not None  # weights change per image: no frozen compile
        self.run = runner or TorchRunner(self.model, precision, force_precision, channels_last, device, compile,
                                         freeze=not swaps)
        self.channels_last, self.bf16 = channels_last, self.run.precision == "bf16"
        from colora.inference.memory import current_rss

        self._resident = current_rss()  # torch and the model: already spent from max_memory

    @classmethod
    def from_files(cls, model_path: Optional[Union[str, Path]], adapters: Sequence[Union[str, Path]] = (),
                   adapter_dir: Optional[Union[str, Path]] = None, force: bool = False, backend: str = "torch",
                   estimator: Optional[Union[str, Path]] = None, auto_threshold: float = 0.5,
                   auto_mixture: str = "chain", **kw) -> "Restorer":
        """Load a checkpoint and adapter folders (names are looked up in `adapter_dir`, then next to
        the checkpoint); backend "onnxruntime" runs an exported .onnx file instead. `adapters`
        "auto" (or ["auto"]): every adapter of `adapter_dir` (default: the shipped ones), chosen
        per image by the degradation estimator (colora.inference.auto)."""
        from colora.adapters import load_adapter
        from colora.inference import auto

        adapters = [adapters] if isinstance(adapters, (str, Path)) else list(adapters)
        use_auto = "auto" in [str(a) for a in adapters]
        if use_auto and len(adapters) > 1:
            raise AdapterError("--adapter auto chooses the adapters itself; give it alone (with --adapter-dir)")

        if backend == "onnxruntime":
            from colora.inference.onnx import OnnxRunner

            if not model_path:
                raise ColoraError("--backend onnxruntime needs --model FILE.onnx (make one with colora export)")
            return cls(OnnxRunner(model_path), adapters, **kw)

        model_path = model_path or default_model_path()
        model = load_model(model_path)
        names = []
        if use_auto:
            adapters = auto.adapter_folders(adapter_dir or WEIGHTS_DIR / "adapters")
            if not adapters:
                raise AdapterError(f"--adapter auto found no adapter folder in '{adapter_dir or WEIGHTS_DIR / 'adapters'}'; "
                                   "pass --adapter-dir DIR holding one folder per task")
        for a in adapters:
            folder = find_adapter(a, [adapter_dir, Path(model_path).parent, WEIGHTS_DIR / "adapters"])
            names.append(load_adapter(model, folder, force=force))
        if use_auto:
            from colora.inference.estimator import load_estimator

            kw["auto"] = auto.AutoAdapters(load_estimator(estimator), auto.task_adapters(model),
                                           auto_threshold, auto_mixture)
        return cls(model, names, **kw)

    # ---- arrays ----------------------------------------------------------------------------------
    def _forward(self, x, run=None):
        run = run or self.run
        return self_ensemble(run, x) if self.tta else run(x)

    def plan(self, h, w):
        """The tile size for an h x w photo (0 = whole), or a ColoraError if it is over --max-pixels
        or cannot fit --max-memory: called on the file's header, before decoding."""
        from colora.inference.memory import forward_bytes_per_pixel, plan_tile

        if h * w > self.max_pixels:
            raise ColoraError(f"the image has {h * w / 1e6:.1f} megapixels ({w}x{h}), over the limit of "
                              f"{self.max_pixels / 1e6:.1f}; raise --max-pixels")
        if self._net_bpp is None:  # measured once: the same model serves every photo
            probe = getattr(self.run, "eager", self.run)  # a compiled runner would compile the probe's shape
            self._net_bpp = forward_bytes_per_pixel(lambda x: self._forward(x, probe))
        return plan_tile(h, w, self._net_bpp, self.max_memory, self.tile, self.tile_pad, self._resident)

    def restore(self, image: np.ndarray, progress=None) -> np.ndarray:
        """Restore an HxWxC (C = 1, 3 or 4) or HxW image; uint8/uint16 or float in [0, 1]. The
        result has the input's shape and dtype; grey stays grey, alpha is passed through untouched."""
        arr = np.asarray(image)
        dtype = arr.dtype
        pixels = to_float32(arr)
        squeeze = pixels.ndim == 2
        if squeeze:
            pixels = pixels[..., None]
        alpha = pixels[..., -1:] if pixels.shape[-1] in (2, 4) else None
        colour = pixels[..., :3] if pixels.shape[-1] >= 3 else pixels[..., :1]
        out = self._restore_rgb(np.repeat(colour, 3, axis=-1) if colour.shape[-1] == 1 else colour, progress)
        if colour.shape[-1] == 1:
            out = out.mean(axis=-1, keepdims=True)
        if alpha is not None:
            out = np.concatenate([out, alpha], axis=-1)
        if squeeze:
            out = out[..., 0]
        if dtype in (np.uint8, np.uint16):
            return quantize(out, 8 if dtype == np.uint8 else 16)
        return out.astype(dtype, copy=False)

    def _restore_rgb(self, rgb, progress=None):
        h, w = rgb.shape[:2]
        tile = self.plan(h, w)
        steps = self.chain or [None]
        if self.auto is not None:
            self.last_choice = choice = self.auto.choose(rgb)
            if choice.action == "leave":
                return rgb
            if self.auto.mixture == "recheck":
                return self._recheck(rgb, choice, tile, progress)
            steps = [dict(zip(choice.adapters, choice.weights))] if choice.action == "blend" else choice.adapters
        for step in steps:
            rgb = self._step(rgb, step, tile, progress)
        return rgb

    def _step(self, rgb, step, tile, progress):
        """Run the network once with `step` (an adapter name, blend weights or None) active, then its refinement."""
        if isinstance(step, dict):
            self._blend(step)
        elif step is not None:
            self._set_adapter(step)
        h, w = rgb.shape[:2]
        if tile > 0 and (h > tile or w > tile):
            out = run_tiled(self._forward, rgb, tile, self.tile_pad, progress)
        else:
            x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]
            out = self._forward(x)[0].permute(1, 2, 0).numpy()
        rule = self._refine_rule(step)
        return guided_refine(rgb, out, *rule) if rule is not None else out

    def _recheck(self, rgb, choice, tile, progress):
        """auto's recheck mixture: the first adapter of each look, then a new look at its output."""
        first, ran, looks = choice, [], []
        while choice.action != "leave":
            rgb = self._step(rgb, choice.adapters[0], tile, progress)
            ran.append(choice.adapters[0])
            choice = self.auto.choose(rgb, tuple(ran))
            looks.append(choice.estimate)
        self.last_choice = replace(first, action="one" if len(ran) == 1 else "chain", adapters=tuple(ran),
                                   rechecks=tuple(looks))
        return rgb

    def _refine_rule(self, step):
        """(radius, eps) of the guided refinement after `step` (an adapter name or blend weights), or None."""
        if self.refine == "off" or step is None:
            return None
        names = [n for n, w in step.items() if w] if isinstance(step, dict) else [step]
        return rule_for(self._tasks.get(n) for n in names)

    def tiles_for(self, h, w):
        tile = self.plan(h, w)
        steps = 1 if self.auto is not None else max(len(self.chain), 1)
        return count_tiles(h, w, tile) * steps if tile > 0 and max(h, w) > tile else 0

    # ---- files -----------------------------------------------------------------------------------
    def restore_paths(self, inputs: Union[str, Path], output: Union[str, Path], suffix: str = "", ext: str = "auto",
                      recursive: bool = False, skip_existing: bool = False, overwrite: bool = False,
                      progress: bool = True, shard=(0, 1), io_threads: bool = True) -> Iterator[FileResult]:
        """Restore every image of `inputs` (file, folder or glob) into the folder `output`, yielding
        one FileResult per file (colora.inference.batch): bad files are reported and skipped, the batch goes on,
        and no input or pre-existing file is replaced unless `overwrite` (inputs: never). `io_threads`:
        decode the next file and encode the last one while the network runs."""
        from colora.inference.batch import restore_files

        yield from restore_files(self, inputs, output, suffix=suffix, ext=ext, recursive=recursive,
                                 skip_existing=skip_existing, overwrite=overwrite, progress=progress,
                                 shard=shard, io_threads=io_threads)
