"""Validation of a wrong pick: what an adapter does to photos without its degradation.

    python scripts/validate_wrong_pick.py BASE ADAPTER_DIR [ADAPTER_DIR ...]

`--adapter auto` sometimes runs an adapter on a photo that lacks its task (issue 14: a blurred
photo read as hazy). On the bundled photos (384 px, no training step uses them), untouched or
degraded by colora's own blur, noise and rain (2 seeds each), prints the mean PSNR of the input and
of each adapter's output, and the worst single change. An adapter that leaves such photos alone
does no harm when it is picked wrongly. Validation only; benchmarks/all_in_one.py is the test.
"""
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.validate_photos import PHOTOS, clean_photos  # noqa: E402


def main(argv=None):
    from colora.degradations.tasks import degrade_task
    from colora.imageio import as_saved
    from colora.inference.restorer import Restorer
    from colora.metrics import calculate_psnr

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        sys.exit(__doc__.split("\n\n")[1])
    torch.set_num_threads(1)
    base, adapters = argv[0], argv[1:]
    clean = clean_photos(PHOTOS, 384)
    for adapter in adapters:
        restorer = Restorer.from_files(base, [adapter])
        for task in ("clean", "blur", "noise", "rain"):
            before, after = [], []
            for i, gt in enumerate(clean):
                for s in range(2):
                    lq = gt if task == "clean" else degrade_task(gt, task, [s, i, 99])[0]
                    lq = np.asarray(as_saved(lq), np.float32)
                    out = np.asarray(as_saved(restorer.restore(lq)), np.float32)
                    before.append(min(calculate_psnr(lq, gt), 100))
                    after.append(min(calculate_psnr(out, gt), 100))
            print(f"{adapter}  {task:5s}  input {np.mean(before):6.2f}  adapter {np.mean(after):6.2f}  "
                  f"worst change {min(np.subtract(after, before)):+6.2f} dB", flush=True)


if __name__ == "__main__":
    main()
