"""Runners: a callable (1, C, h, w) float32 tensor -> float32 tensor in [0, 1], one per backend.

The Restorer tiles, blends and handles files; a runner only runs the network. `TorchRunner` holds
a torch network in the precision colora.precision chooses for this machine (channels_last,
inference_mode, the whole net cast rather than autocast, fp32 convolutions through oneDNN);
`OnnxRunner` (colora.inference.onnx) runs an exported .onnx file with ONNX Runtime.
"""
import copy
import logging
import os
import shutil
import time
import torch

from colora.archs import use_onednn
from colora.errors import ColoraError
from colora.precision import inference_dtype

PROBE_SIDE = 256  # the tile `auto` times fp32 against bf16 on (once per process and network)
log = logging.getLogger("colora")


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def in_channels(model: torch.nn.Module) -> int:
    """The image channels a network takes (its first convolution's input)."""
    return next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d)).in_channels


def cxx_compiler():
    """The C++ compiler torch.compile's CPU backend (inductor) would call, or None."""
    names = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "clang++", "c++"]
    return next((path for path in map(shutil.which, names) if path), None)


class TorchRunner:
    """A torch network in the precision that fits the machine: see colora.precision.inference_dtype.

    `compile`: torch.compile (inductor) for the fixed shapes a folder job feeds, one compilation per
    input shape. `freeze` (with compile): inductor's freezing, which may treat the weights as
    constants of the compiled code (and fuses the elementwise ops between the convolutions: bf16
    1.25-1.35x eager on an AMX Xeon; BENCHMARKS.md vs_official). Frozen code is not promised to see a
    later weight change (an adapter swap or blend), so every call compares the adapter hub's change
    count and the weights' storage and version counters with those it froze, and compiles again on a
    change: pass freeze=False when the weights change per image (chains, auto)."""

    def __init__(self, model: torch.nn.Module, precision: str = "auto", force: bool = False,
                 channels_last: bool = True, device="cpu", compile: bool = False, freeze: bool = True):
        self.model, self.device, self.channels_last = model, torch.device(device), channels_last
        if channels_last:
            model.to(memory_format=torch.channels_last)
        use_onednn(model)  # fp32 channels_last convolutions through oneDNN (colora.archs.onednn)
        key = repr(sorted(getattr(model, "network_g", {"id": id(model)}).items()))
        self.dtype = inference_dtype(precision, self.device, force, measure=self._measure, key=key)
        if self.dtype != torch.float32:
            model.to(self.dtype)
        self.frozen = bool(compile and freeze)
        self._weights = None  # the fingerprint a frozen compilation was made with
        self._forward = self._compile() if compile else model

    def _compile(self):
        if self.device.type == "cpu" and not cxx_compiler():  # inductor would fail on the first photo
            raise ColoraError("--compile needs a C++ compiler (g++ or clang++, or one named by $CXX); "
                              "install one or leave out --compile")
        self._weights = self._fingerprint() if self.frozen else None
        return torch.compile(self.model, dynamic=False, options={"freezing": self.frozen})

    def _fingerprint(self):
        """What a frozen compilation depends on: which tensors the model holds (adapter swaps and
        blends re-point or rewrite them; the adapter hub counts its changes) and their in-place versions."""
        hub = getattr(self.model, "colora_adapters", None)
        tensors = (*self.model.parameters(), *self.model.buffers())
        return (getattr(hub, "generation", None), [(t.data_ptr(), t._version) for t in tensors])

    def _run(self, model, dtype, x):
        x = x.to(self.device, dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return model(x).float().clamp_(0, 1).cpu()

    def _measure(self):
        """(fp32 s, bf16 s) of one PROBE_SIDE tile, alternating, best of 2 each; bf16 on a copy."""
        x = torch.rand(1, in_channels(self.model), PROBE_SIDE, PROBE_SIDE)
        low = copy.deepcopy(self.model).to(torch.bfloat16)
        run32, run16 = (lambda: self._run(self.model, torch.float32, x)), (lambda: self._run(low, torch.bfloat16, x))
        run32(), run16()  # warm-up: one-off allocations and kernel selection
        times = [(_timed(run32), _timed(run16)) for _ in range(2)]
        return min(t for t, _ in times), min(t for _, t in times)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.frozen and self._fingerprint() != self._weights:
            log.info("the weights changed since torch.compile froze them: compiling again")
            torch.compiler.reset()
            self._forward = self._compile()
        return self._run(self._forward, self.dtype, x)

    def eager(self, x: torch.Tensor) -> torch.Tensor:
        """The same network and precision without torch.compile (probes need no compilation)."""
        return self._run(self.model, self.dtype, x)

    @property
    def precision(self) -> str:
        return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

