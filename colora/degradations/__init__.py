"""Degradation ops for PROD pre-training and synthetic task pairs, one module per family.

`get_op(name, **range_overrides)` builds an op; `op(img, rng)` returns (degraded, params) and
`op.apply(img, params)` replays it exactly. See `base.py` for the interface and `tasks.py` for
the fine-tuning tasks. Importing this package imports every family so `OPS` is complete.
"""
from colora.degradations.base import OPS, DegradationOp, get_op, list_ops, register_op
from colora.degradations import blur, jpeg, light, noise, resize, weather  # noqa: F401  (fill OPS)
from colora.degradations.tasks import TASKS, Step, degrade_task, replay, task_ops

__all__ = ["OPS", "DegradationOp", "get_op", "list_ops", "register_op", "TASKS", "Step", "degrade_task", "replay", "task_ops"]
