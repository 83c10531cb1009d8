"""The degradation-op interface and its registry.

PROD pre-training degrades clean photos with a random subset of ops in a random order and records
the recipe as JSON, so every op is split in two:

* `sample(rng)` draws the op's parameters from its `ranges` (plain JSON values, plus an integer
  `"seed"` when the op needs randomness at apply time: noise fields, streak placement, depth maps);
* `apply(img, params)` is a pure function of (img, params): same inputs, byte-identical output.
  A recorded recipe can therefore be replayed exactly (`tasks.replay`).

Images are float32 H×W×3 RGB arrays in [0, 1], at least 16×16. `apply` checks the image, hands the
op's `_apply` a read-only float32 view (so an op cannot modify its input by accident) and returns a
new float32 array clipped to [0, 1].

Ranges are class-level defaults `param -> (lo, hi)`; `Op(param=(lo, hi))` overrides them for one
instance. Each op's docstring says where each default comes from: "Real-ESRGAN", "BSRGAN" or "our
choice". Register ops with `@register_op`; look them up with `get_op(name, **overrides)`.
"""
import difflib
import numbers

import numpy as np

from colora.errors import OptionsError

OPS = {}
MIN_SIZE = 16


def register_op(cls):
    """Class decorator: add `cls` to `OPS` under `cls.name`; its family is its module's name."""
    if not cls.name or cls.name in OPS:
        raise ValueError(f"degradation op needs a unique name, got {cls.name!r}")
    cls.family = cls.__module__.rsplit(".", 1)[-1]
    OPS[cls.name] = cls
    return cls


def list_ops(family=None):
    """Registered op names (sorted), optionally only those of one family (module)."""
    return sorted(n for n, c in OPS.items() if family is None or c.family == family)


def get_op(name, **overrides):
    """Build the registered op `name`, with optional `param=(lo, hi)` range overrides."""
    if name not in OPS:
        close = difflib.get_close_matches(str(name), list(OPS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(list_ops())}"
        raise OptionsError(f"unknown degradation '{name}'{hint}")
    return OPS[name](**overrides)


def as_image(img):
    """Check an H×W×3 float image and return it as a read-only float32 array (no copy if possible)."""
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"degradations expect an H×W×3 RGB image, got shape {img.shape}")
    if min(img.shape[:2]) < MIN_SIZE:
        raise ValueError(f"degradations need images of at least {MIN_SIZE}×{MIN_SIZE}, got {img.shape[:2]}")
    if not np.issubdtype(img.dtype, np.floating):
        raise TypeError(f"degradations expect float images in [0, 1], got {img.dtype}; divide by 255 first")
    view = img.astype(np.float32, copy=False).view()
    view.flags.writeable = False
    return view


def new_seed(rng):
    """An integer seed for `np.random.default_rng` inside `apply` (JSON-friendly)."""
    return int(rng.integers(0, 2**31 - 1))


class DegradationOp:
    """Base class. Subclasses set `name`, `ranges` (+ `integer`, `limits`) and implement `_apply`.

    name      registry key (snake_case)
    family    module name, set by `register_op`
    ranges    param -> (lo, hi) defaults for `sample`
    integer   params drawn as integers (inclusive bounds)
    limits    param -> (min, max) hard bounds an override may not leave (None = unbounded)
    uses_seed whether `sample` adds an integer "seed" for randomness at apply time
    """

    name = ""
    family = ""
    ranges = {}
    integer = ()
    limits = {}
    uses_seed = False

    def __init__(self, **range_overrides):
        self.ranges = dict(type(self).ranges)
        for param, value in range_overrides.items():
            self.ranges[param] = self._check_range(param, value)

    def _check_range(self, param, value):
        where = f"{self.name}.{param}"
        if param not in type(self).ranges:
            close = difflib.get_close_matches(param, list(type(self).ranges), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise OptionsError(f"{self.name} has no parameter '{param}'{hint}; "
                               f"valid: {', '.join(type(self).ranges)}")
        ok = isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)
        if not ok:
            raise OptionsError(f"range for {where} must be (min, max), got {value!r}; "
                               "for a fixed value use (v, v)")
        lo, hi = value
        if lo > hi:
            raise OptionsError(f"range for {where} has min {lo:g} > max {hi:g}")
        if param in self.integer:
            if lo != int(lo) or hi != int(hi):
                raise OptionsError(f"range for {where} must be whole numbers, got ({lo:g}, {hi:g})")
            lo, hi = int(lo), int(hi)
        else:
            lo, hi = float(lo), float(hi)
        bound_lo, bound_hi = self.limits.get(param, (None, None))
        if (bound_lo is not None and lo < bound_lo) or (bound_hi is not None and hi > bound_hi):
            raise OptionsError(f"range for {where} must lie within "
                               f"[{'-inf' if bound_lo is None else bound_lo}, "
                               f"{'inf' if bound_hi is None else bound_hi}], got ({lo:g}, {hi:g})")
        return (lo, hi)

    # -- sampling --------------------------------------------------------------------------
    def uniform(self, rng, param):
        lo, hi = self.ranges[param]
        return float(rng.uniform(lo, hi))

    def randint(self, rng, param):
        lo, hi = self.ranges[param]
        return int(rng.integers(int(lo), int(hi) + 1))

    def sample(self, rng):
        """Draw every ranged param (integers for `integer` ones), then "seed" if the op uses one."""
        params = {p: self.randint(rng, p) if p in self.integer else self.uniform(rng, p)
                  for p in self.ranges}
        if self.uses_seed:
            params["seed"] = new_seed(rng)
        return params

    # -- applying --------------------------------------------------------------------------
    def apply(self, img, params):
        """Degrade `img` with `params` (pure): a new float32 image of the same shape in [0, 1]."""
        x = as_image(img)
        try:
            out = self._apply(x, params)
        except KeyError as err:
            raise OptionsError(f"params for {self.name} lack {err}; got {sorted(params)}") from None
        return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)

    def _apply(self, img, params):
        raise NotImplementedError

    def __call__(self, img, rng):
        """Sample params from `rng` and apply them: returns (degraded image, params)."""
        params = self.sample(rng)
        return self.apply(img, params), params

    def __repr__(self):
        ranges = ", ".join(f"{k}={v}" for k, v in self.ranges.items())
        return f"{type(self).__name__}({ranges})"
