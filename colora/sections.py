"""The base of every options section: the checks a section declares, and its plain-dict form.

It lives apart from colora.options (the YAML loading) so that a package can define its own section
(colora.adapters.config) without importing the loader that, in turn, lists it in `Options`.
"""
import dataclasses
from dataclasses import dataclass

from colora.errors import OptionsError


@dataclass
class Section:
    """Base of every options section: declared checks and conversion back to a plain dict."""

    BASICSR_ONLY = frozenset()  # keys accepted with a warning and otherwise ignored
    CHOICES = {}  # key -> allowed values
    RANGES = {}  # key -> (lowest, highest) allowed, inclusive; for lists, of each item
    # sub-sections whose keys are written at this section's own level: `adapter: {rank: 8, budget:
    # 0.07}` fills adapter.settings.rank and adapter.allocation.budget (the keys users know stay flat)
    FLAT = ()

    def to_dict(self):
        out = {}
        for f in dataclasses.fields(self):
            value = plain(getattr(self, f.name))
            if f.name in self.FLAT:
                out.update(value)
            else:
                out[f.name] = value
        return out

    def validate(self, where):
        """Cross-field checks; subclasses extend."""
        for key, allowed in self.CHOICES.items():
            value = getattr(self, key)
            if value is not None and value not in allowed:
                raise OptionsError(f"{where}.{key} is '{value}'; choose one of: {', '.join(map(str, allowed))}")
        for key, (lo, hi) in self.RANGES.items():
            value = getattr(self, key)
            for v in value if isinstance(value, list) else [] if value is None else [value]:
                if not lo <= v <= hi:
                    raise OptionsError(f"{where}.{key} must be between {lo:g} and {hi:g}, got {value!r}")


def plain(value):
    """Sections, dicts and lists as plain Python values (what YAML and JSON hold)."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
