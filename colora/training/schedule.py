"""Learning-rate schedules by BasicSR's names (`train.scheduler.type`), after a linear warm-up of
`train.warmup_iter` iterations: the warm-up keeps Adam's first steps small while its moment
estimates are still noise (and lets a run go on from milestone weights with a fresh optimizer)."""
from torch.optim import lr_scheduler


def build_scheduler(optimizer, t):
    """Cosine / cosine with restarts / multistep / constant, after a linear warm-up if asked."""
    s = t.scheduler
    warm = max(t.warmup_iter, 0)
    rest = max(t.total_iter - warm, 1)
    if s.type in ("CosineAnnealingLR", "TrueCosineAnnealingLR"):
        main = lr_scheduler.CosineAnnealingLR(optimizer, T_max=s.T_max or rest, eta_min=s.eta_min)
    elif s.type in ("CosineAnnealingRestartLR", "CosineAnnealingRestartCyclicLR"):
        periods = s.periods or [rest]
        mins = s.eta_mins or [s.eta_min] * len(periods)
        parts = [lr_scheduler.CosineAnnealingLR(optimizer, T_max=p, eta_min=m) for p, m in zip(periods, mins)]
        main = parts[0] if len(parts) == 1 else lr_scheduler.SequentialLR(
            optimizer, parts, milestones=[sum(periods[:i + 1]) for i in range(len(periods) - 1)])
    elif s.type == "MultiStepLR":
        main = lr_scheduler.MultiStepLR(optimizer, milestones=[m - warm for m in s.milestones], gamma=s.gamma)
    else:
        main = lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    if warm == 0:
        return main
    warmup = lr_scheduler.LinearLR(optimizer, start_factor=1.0 / warm, end_factor=1.0, total_iters=warm)
    return lr_scheduler.SequentialLR(optimizer, [warmup, main], milestones=[warm])


def restore_scheduler(scheduler, state, t):
    """Load a saved scheduler `state`. After a resume with another `train.total_iter`, a cosine whose
    length came from total_iter (no explicit T_max) is then re-fitted so it decays from the learning
    rate it has reached to eta_min exactly at the new end. The restored T_max would otherwise stop
    the decay short of a shortened run, or climb back up the cosine past the old end of a lengthened
    one. torch's cosine steps recursively (each lr from the last), so changing T_max continues the
    curve without a jump."""
    scheduler.load_state_dict(state)
    if t.scheduler.type not in ("CosineAnnealingLR", "TrueCosineAnnealingLR") or t.scheduler.T_max:
        return
    parts = getattr(scheduler, "_schedulers", [scheduler])
    cosine = parts[-1]
    if isinstance(cosine, lr_scheduler.CosineAnnealingLR):
        cosine.T_max = max(t.total_iter - max(t.warmup_iter, 0), 1)
