"""Restoration columns of benchmarks/all_in_one.py (issue 14): auto vs the oracle vs the best
single adapter (vs one all-in-one adapter, given with --all-in-one DIR), per held-out set.

- oracle: the right adapters chained in restoration order (a clean photo: left untouched), known
  from the ground truth;
- best single: on a mixture, each adapter alone, and the best of them on the set's mean PSNR;
- auto chain / auto blend / auto recheck: `--adapter auto` with each mixture rule; on a single-task
  or clean set chain and blend are the same run (recheck may look again and add an adapter);
- time: what the estimator adds to a restore with one fixed adapter (single-task sets).
"""
import time

import numpy as np

from benchmarks.vs_classical import _score


def _f32(img):
    return np.asarray(img, np.float32) / 255.0


class Chains:
    """One restorer with every adapter loaded, run with any chain (() = the photo untouched)."""

    def __init__(self, model, folders):
        from colora.inference.restorer import Restorer

        self.r = Restorer.from_files(model, folders)

    def __call__(self, img, chain):
        if not chain:
            return img
        self.r.chain = list(chain)
        return self.r.restore(img)


def restoration(sets, photos, degraded, model=None, adapter_dir=None, estimator=None, all_in_one=None):
    """{set: {column: {"psnr", "ssim"}}, "_time": {...}} and table rows."""
    from colora.inference import auto
    from colora.inference.restorer import WEIGHTS_DIR, Restorer

    folders = auto.adapter_folders(adapter_dir or WEIGHTS_DIR / "adapters")
    runs = {m: Restorer.from_files(model, "auto", adapter_dir=adapter_dir, estimator=estimator, auto_mixture=m)
            for m in auto.MIXTURES}
    names = runs["chain"].auto.available  # task -> adapter name
    chains = Chains(model, folders)
    aio = Chains(model, [all_in_one]) if all_in_one else None
    aio_name = aio.r.chain[0] if aio else None
    results, rows, est_secs, fixed_secs = {}, [], [], []
    for set_name, (ops, truth) in sets.items():
        cols = {k: [] for k in ("input", "oracle", "best single", "auto chain", "auto blend", "auto recheck",
                                "all-in-one")}
        singles = {t: [] for t in names} if len(truth) > 1 else {}
        picks, rechecked = [], []
        for _, photo, seed in photos:
            img, clean = degraded(photo, ops, seed), _f32(photo)
            cols["input"].append(_score(_f32(img), clean))
            oracle = chains(img, [names[t] for t in truth])
            cols["oracle"].append(_score(_f32(oracle), clean))
            for t in singles:
                singles[t].append(_score(_f32(chains(img, [names[t]])), clean))
            out = runs["chain"].restore(img)
            cols["auto chain"].append(_score(_f32(out), clean))
            picks.append(runs["chain"].last_choice)
            if len(truth) > 1:
                cols["auto blend"].append(_score(_f32(runs["blend"].restore(img)), clean))
            cols["auto recheck"].append(_score(_f32(runs["recheck"].restore(img)), clean))
            rechecked.append(runs["recheck"].last_choice)
            if aio is not None:
                cols["all-in-one"].append(_score(_f32(aio(img, [aio_name])), clean))
            if len(truth) == 1:  # what choosing costs next to a one-adapter restore, alternated
                t0 = time.perf_counter()
                chains(img, [names[truth[0]]])
                fixed_secs.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                runs["chain"].auto.choose(_f32(img))
                est_secs.append(time.perf_counter() - t0)
        if singles:
            best = max(singles, key=lambda t: np.mean([s[0] for s in singles[t]]))
            cols["best single"] = singles[best]
        else:
            best, cols["best single"] = (truth[0] if truth else None), cols["oracle"]
        if not cols["auto blend"]:
            cols["auto blend"] = cols["auto chain"]
        mean = {k: {"psnr": float(np.mean([s[0] for s in v])), "ssim": float(np.mean([s[1] for s in v]))}
                for k, v in cols.items() if v}
        mean["best single"]["adapter"] = best
        mean["auto chain"]["picks"] = ["+".join(c.adapters) or "none" for c in picks]
        mean["auto recheck"]["picks"] = ["+".join(c.adapters) or "none" for c in rechecked]
        results[set_name] = mean
        rows.append([set_name] + [f"{mean[k]['psnr']:.2f} / {mean[k]['ssim']:.3f}" if k in mean else "-"
                                  for k in cols] + [best or "none"])
    results["_time"] = {"auto_added_seconds": float(np.mean(est_secs)) if est_secs else None,
                        "one_adapter_seconds": float(np.mean(fixed_secs)) if fixed_secs else None}
    return results, rows


HEADERS = ["set", "input", "oracle", "best single", "auto chain", "auto blend", "auto recheck", "all-in-one",
           "best single is"]
