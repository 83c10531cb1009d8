"""GoPro and RealBlur (J and R), as downloaded: CoLoRA's Blur task.

GoPro (Nah et al., CVPR 2017; GOPRO_Large.zip): {train,test}/<sequence>/ holds `blur/` (averaged
frames, the standard input), `blur_gamma/` (averaged in linear light; subset blur_gamma) and
`sharp/`, one name per frame in each; 2103 train / 1111 test pairs.
RealBlur (Rim et al., ECCV 2020): RealBlur-J_ECC_IMCORR_centroid_itensity_ref/ (camera JPEG) and
RealBlur-R_BM3D_ECC_IMCORR_centroid_itensity_ref/ (raw) hold <scene>/blur/blur_<n>.png beside
<scene>/gt/gt_<n>.png; the splits are the official lists RealBlur_J_train_list.txt /
RealBlur_J_test_list.txt (R likewise) beside those folders, one pair per line as paths relative to
that folder (3758 train / 980 test pairs); the GT and blurred path of a line are told apart by
their gt/ and blur/ folder, not by their order.
"""
from pathlib import Path

from colora.data.imagefolder import pair_folders
from colora.data.real.base import Benchmark
from colora.data.real.protocols import Protocol


class GoPro(Benchmark):
    NAME = "GoPro"
    LAYOUT = "GOPRO_Large/{train,test}/<sequence>/{blur,blur_gamma,sharp}/<frame>.png"
    SUBSETS = ("blur", "blur_gamma")
    PROTOCOL = Protocol(source="GoPro test, RGB, no crop (NAFNet, Restormer, MPRNet)")

    def scan(self):
        def is_split(d):
            return d.name == self.split and any((s / "sharp").is_dir() for s in d.iterdir() if s.is_dir())

        split = self.locate(is_split, f"{self.split}/<sequence>/sharp/")
        lq, gt, problems = {}, {}, []
        for seq in sorted(p for p in split.iterdir() if p.is_dir()):
            if not (seq / self.subset).is_dir() or not (seq / "sharp").is_dir():
                missing = self.subset if (seq / "sharp").is_dir() else "sharp"
                problems.append(f"sequence '{seq.name}' has no {missing}/ folder")
                continue
            a, b, p = pair_folders(seq / self.subset, seq / "sharp", key_prefix=f"{seq.name}_")
            lq.update(a)
            gt.update(b)
            problems += p
        return lq, gt, problems


class _RealBlur(Benchmark):
    PROTOCOL = Protocol(align=True, source="RealBlur's own evaluation: intensity match + ECC homography of the "
                                           "output to the GT, PSNR/SSIM on the valid region (RGB)")

    def scan(self):
        list_name = f"{self.NAME}_{self.split}_list.txt"
        base = self.locate(lambda d: (d / list_name).is_file(), list_name)
        lq, gt, problems = {}, {}, []
        for n, line in enumerate((base / list_name).read_text(encoding="utf-8").splitlines(), 1):
            paths = [Path(t) for t in line.split()]
            if not paths:
                continue
            g = [p for p in paths if "gt" in p.parts[:-1]]
            b = [p for p in paths if "blur" in p.parts[:-1]]
            if len(g) != 1 or len(b) != 1:
                problems.append(f"line {n} of {list_name} is not a gt/ and blur/ path pair: {line.strip()[:80]}")
                continue
            g, b = base / g[0], base / b[0]
            missing = [str(p.relative_to(base)) for p in (g, b) if not p.is_file()]
            if missing:
                problems.append(f"{list_name} line {n}: {', '.join(missing)} not found")
                continue
            key = f"{g.parent.parent.name}_{g.stem.split('_')[-1]}"
            lq[key], gt[key] = b, g
        return lq, gt, problems


class RealBlurJ(_RealBlur):
    NAME = "RealBlur_J"
    LAYOUT = ("RealBlur_J_{train,test}_list.txt beside RealBlur-J_ECC_IMCORR_centroid_itensity_ref/"
              "<scene>/{blur/blur_<n>.png,gt/gt_<n>.png}")


class RealBlurR(_RealBlur):
    NAME = "RealBlur_R"
    LAYOUT = ("RealBlur_R_{train,test}_list.txt beside RealBlur-R_BM3D_ECC_IMCORR_centroid_itensity_ref/"
              "<scene>/{blur/blur_<n>.png,gt/gt_<n>.png}")
