"""Kept so that `from colora.restore import Restorer` (the import earlier READMEs documented) still
works; the restorer lives in colora.inference.restorer, and `from colora import Restorer` is the
documented spelling now."""
from colora.inference.restorer import Restorer, default_model_path, load_model  # noqa: F401
