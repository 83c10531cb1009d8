"""The benchmark loaders (colora.data) on miniature replicas of each download.

Every replica has the real folder names, nesting and file naming of its dataset, with a few tiny
images written here (SIDD's validation blocks with scipy.io.savemat). Each GT image is one flat
grey level that names its pair and its LQ is that level plus an offset per subset, so a test can
tell a right pairing, the subset and the split from the pixels. Nothing is downloaded.
"""
import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from scipy.io import savemat

from colora import cli
from colora.archs import build_arch
from colora.checkpoint import save_checkpoint
from colora.data.real import find_benchmark
from colora.data.build import build_dataset
from colora.errors import ColoraError, OptionsError
from tests.conftest import TINY_NAFNET, randomize_layer_scales

ROOT = Path(__file__).resolve().parents[1]
SIZE = (24, 32)  # h, w of every replica image
SUBSET_OFFSET = {"rainstreak": 1, "raindrop": 2, "rainstreak_raindrop": 3}


def write(path, level, size=SIZE):
    """A flat grey image of `level` (0..255) with a faint ramp, so crops are not all alike."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((*size, 3), level, np.uint8)
    img[0, :, 0] = np.arange(size[1]) % 4 + level
    assert cv2.imwrite(str(path), img)


def pair(lq, gt, level, offset=1):
    write(gt, level)
    write(lq, level + offset)


def levels(dataset):
    """{key: (GT level, LQ - GT)} of a val-phase dataset, read from the centre pixel."""
    out = {}
    for i in range(len(dataset)):
        item = dataset[i]
        g, q = (int(round(float(item[k][1, 12, 16]) * 255)) for k in ("gt", "lq"))
        out[item["key"]] = (g, q - g)
    return out


def load(type_, root, phase="val", **opt):
    return build_dataset({"type": type_, "dataroot": str(root), "gt_size": 16, **opt}, phase=phase)


# ---- replicas -----------------------------------------------------------------------------------
def rainds(root):
    real, syn = root / "RainDS" / "RainDS_real", root / "RainDS" / "RainDS_syn"
    for split, ids in (("train_set", (2, 3, 5)), ("test_set", (7, 8))):
        for i in ids:
            for subset, off in SUBSET_OFFSET.items():
                pair(real / split / subset / f"{i}.png", real / split / "gt" / f"{i}.png", 10 * i, off)
    write(real / "test_set" / "rainstreak" / "IMG_7435.png", 99)  # the known upstream leftover
    prefix = {"rainstreak": "rain-", "raindrop": "rd-", "rainstreak_raindrop": "rd-rain-"}
    for split, ids in (("train", (1, 4)), ("test", (6,))):
        for i in ids:
            for pie, base in (("", 100), ("pie-", 150)):
                for subset, off in SUBSET_OFFSET.items():
                    pair(syn / split / subset / f"{pie}{prefix[subset]}{i}.png",
                         syn / split / "gt" / f"{pie}norain-{i}.png", base + i, off)
    return root / "RainDS"


def sidd(root, scenes=3, blocks=(2, 3)):
    data = root / "SIDD_Medium_Srgb" / "Data"
    for s in range(scenes):
        scene = data / f"{s + 1:04d}_{s + 1:03d}_S6_00100_00060_3200_L"
        for shot in ("010", "011"):
            pair(scene / f"NOISY_SRGB_{shot}.PNG", scene / f"GT_SRGB_{shot}.PNG", 20 * s + int(shot) - 9)
    gt = np.zeros((*blocks, 32, 32, 3), np.uint8) + np.arange(blocks[0] * blocks[1], dtype=np.uint8).reshape(
        *blocks, 1, 1, 1) * 5
    savemat(root / "ValidationGtBlocksSrgb.mat", {"ValidationGtBlocksSrgb": gt})
    savemat(root / "ValidationNoisyBlocksSrgb.mat", {"ValidationNoisyBlocksSrgb": gt + 1})
    return root


def gopro(root):
    for split, seqs in (("train", ("GOPR0372_07_00", "GOPR0374_11_00")), ("test", ("GOPR0384_11_00",))):
        for s, seq in enumerate(seqs):
            for f in (47, 48):
                d = root / "GOPRO_Large" / split / seq
                level = 40 * s + f
                pair(d / "blur" / f"{f:06d}.png", d / "sharp" / f"{f:06d}.png", level, 1)
                write(d / "blur_gamma" / f"{f:06d}.png", level + 2)
    return root


def realblur(root, kind="J"):
    folder = {"J": "RealBlur-J_ECC_IMCORR_centroid_itensity_ref",
              "R": "RealBlur-R_BM3D_ECC_IMCORR_centroid_itensity_ref"}[kind]
    lists = {"train": [], "test": []}
    for scene, split in (("scene001", "train"), ("scene002", "train"), ("scene244_reflect", "test")):
        for n in (1, 2):
            rel = f"{folder}/{scene}"
            pair(root / rel / "blur" / f"blur_{n}.png", root / rel / "gt" / f"gt_{n}.png", 30 + 10 * n + len(lists[split]))
            lists[split].append(f"{rel}/gt/gt_{n}.png {rel}/blur/blur_{n}.png")
    for split, lines in lists.items():
        (root / f"RealBlur_{kind}_{split}_list.txt").write_text("\n".join(lines) + "\n")
    return root


def haze(root, name):
    numbers = (1, 2, 46, 51, 52) if name != "O-HAZE" else (1, 2, 36, 41, 42)
    for n in numbers:
        if name == "NH-HAZE":  # flat, inside the zip's folder of the same name
            d = root / "NH-HAZE" / "NH-HAZE"
            pair(d / f"{n:02d}_hazy.png", d / f"{n:02d}_GT.png", 3 * n)
        elif name == "Dense-HAZE":
            d = root / "Dense_Haze_NTIRE19"
            pair(d / "hazy" / f"{n:02d}_hazy.png", d / "GT" / f"{n:02d}_GT.png", 3 * n)
        else:
            d = root / "O-HAZE" / "# O-HAZY NTIRE 2018"
            pair(d / "hazy" / f"{n:02d}_outdoor_hazy.jpg", d / "GT" / f"{n:02d}_outdoor_GT.jpg", 3 * n, 4)
    return root


def lol(root):
    for split, ids in (("our485", (2, 5, 9)), ("eval15", (1, 22))):
        for i in ids:
            pair(root / "LOLdataset" / split / "low" / f"{i}.png", root / "LOLdataset" / split / "high" / f"{i}.png",
                 5 * i)
    return root


# ---- pairing, splits and subsets --------------------------------------------------------------
def test_rainds_real_and_syn_subsets_splits_and_the_upstream_leftover(tmp_path, caplog):
    root = rainds(tmp_path)
    for subset, off in SUBSET_OFFSET.items():
        got = levels(load("RainDS_real", root, subset=subset, split="train"))
        assert got == {str(i): (10 * i, off) for i in (2, 3, 5)}
    with caplog.at_level("WARNING", logger="colora"):
        assert levels(load("RainDS_real", root)) == {"7": (70, 1), "8": (80, 1)}  # val: test split, rainstreak
    assert "IMG_7435.png" in caplog.text
    got = levels(load("RainDS_syn", root, subset="rainstreak_raindrop", split="train"))
    assert got == {f"{pie}norain-{i}": (base + i, 3) for i in (1, 4) for pie, base in (("", 100), ("pie-", 150))}
    assert set(levels(load("RainDS_syn", root / "RainDS_syn", subset="raindrop"))) == {"norain-6", "pie-norain-6"}


def test_sidd_medium_pairs_and_validation_blocks(tmp_path):
    root = sidd(tmp_path)
    train = load("SIDD", root, phase="train")
    assert len(train) == 6 and train.keys[0] == "0001_001_S6_00100_00060_3200_L_010"
    assert train[(0, 0)]["lq"].shape == (3, 16, 16)
    val = load("SIDD", root)
    assert val.keys == [f"{i:02d}_{j:02d}" for i in range(2) for j in range(3)]
    assert [float(val[i]["gt"][0, 0, 0]) * 255 for i in range(6)] == pytest.approx([0, 5, 10, 15, 20, 25])
    assert float((val[4]["lq"] - val[4]["gt"]).mean()) * 255 == pytest.approx(1)
    with pytest.raises(ColoraError, match="no public ground truth"):
        load("SIDD", root, split="benchmark")


def test_gopro_blur_and_blur_gamma(tmp_path):
    root = gopro(tmp_path)
    assert levels(load("GoPro", root, split="train")) == {
        "GOPR0372_07_00_000047": (47, 1), "GOPR0372_07_00_000048": (48, 1),
        "GOPR0374_11_00_000047": (87, 1), "GOPR0374_11_00_000048": (88, 1)}
    assert set(levels(load("GoPro", root, subset="blur_gamma")).values()) == {(47, 2), (48, 2)}


@pytest.mark.parametrize("kind", ["J", "R"])
def test_realblur_follows_the_official_lists(tmp_path, kind):
    root = realblur(tmp_path, kind)
    assert set(levels(load(f"RealBlur_{kind}", root, split="train"))) == {
        "scene001_1", "scene001_2", "scene002_1", "scene002_2"}
    assert set(levels(load(f"RealBlur_{kind}", root))) == {"scene244_reflect_1", "scene244_reflect_2"}


@pytest.mark.parametrize("name,test,train", [("NH-HAZE", {"51", "52"}, {"01", "02", "46"}),
                                             ("Dense-HAZE", {"51", "52"}, {"01", "02", "46"}),
                                             ("O-HAZE", {"41", "42"}, {"01", "02", "36"})])
def test_haze_sets_use_the_challenge_splits(tmp_path, name, test, train):
    root = haze(tmp_path, name)
    got = levels(load(name, root))
    assert set(got) == test and all(abs(d - (4 if name == "O-HAZE" else 1)) <= 1 for _, d in got.values())
    assert set(levels(load(name, root, split="trainval"))) == train
    assert set(levels(load(name, root, split="val"))) == {min(train - {"01", "02"})}


def test_lol_our485_and_eval15(tmp_path):
    root = lol(tmp_path)
    assert levels(load("LOL", root, split="train")) == {"2": (10, 1), "5": (25, 1), "9": (45, 1)}
    assert set(levels(load("LOL", root))) == {"1", "22"}


# ---- sampling and options ---------------------------------------------------------------------
def test_num_pairs_is_a_fixed_sample_per_seed(tmp_path):
    root = sidd(tmp_path, scenes=6)
    a, b = (load("SIDD", root, phase="train", num_pairs=4, seed=3).keys for _ in range(2))
    assert a == b and len(a) == 4
    others = {tuple(load("SIDD", root, phase="train", num_pairs=4, seed=s).keys) for s in range(4, 9)}
    assert len(others | {tuple(a)}) > 1
    assert len(load("SIDD", root, phase="val", num_pairs=2)) == 6  # validation keeps every block
    assert len(load("SIDD", root, phase="train", split="val", num_pairs=2)) == 2


def test_bad_split_subset_and_names(tmp_path):
    with pytest.raises(OptionsError, match="split 'val' is not a split of GoPro; choose one of: train, test"):
        load("GoPro", tmp_path, split="val")
    with pytest.raises(OptionsError, match="subset 'drops' is not a subset of RainDS_real"):
        load("RainDS_real", tmp_path, subset="drops")
    with pytest.raises(OptionsError, match="needs dataroot"):
        build_dataset({"type": "LOL"}, phase="val")
    with pytest.raises(OptionsError, match="did you mean 'RainDS_real'"):
        build_dataset({"type": "RainDS_rael", "dataroot": str(tmp_path)}, phase="val")
    assert find_benchmark("nh_haze").NAME == "NH-HAZE" and find_benchmark("realblur-j").NAME == "RealBlur_J"


def test_filename_tmpl_pairs_basicsr_style_names(tmp_path):
    for name, level in (("a", 10), ("b", 20)):
        pair(tmp_path / "lq" / f"{name}_x1.png", tmp_path / "gt" / f"{name}.png", level)
    opt = {"type": "PairedFolderDataset", "dataroot_lq": str(tmp_path / "lq"), "dataroot_gt": str(tmp_path / "gt"),
           "filename_tmpl": "{}_x1"}
    assert levels(build_dataset(opt, phase="val")) == {"a": (10, 1), "b": (20, 1)}
    write(tmp_path / "lq" / "c.png", 5)
    with pytest.raises(ColoraError, match=r"no GT image for LQ .*c\.png"):
        build_dataset(opt, phase="val")
    with pytest.raises(OptionsError, match="filename_tmpl must contain"):
        build_dataset({**opt, "filename_tmpl": "x"}, phase="val")


# ---- one wrong layout each ----------------------------------------------------------------------
def test_wrong_layouts_say_what_was_expected_and_found(tmp_path):
    root = rainds(tmp_path / "r")
    with pytest.raises(ColoraError, match=r"expected RainDS_real/\{train_set,test_set\}.*it holds: gt/, raindrop/"):
        load("RainDS_real", root / "RainDS_syn" / "test")
    with pytest.raises(ColoraError, match=r"2 problems: gt/norain-6\.png .* is not named as the layout expects"):
        load("RainDS_real", root / "RainDS_syn")  # the synthetic half's names are not the real one's
    write(root / "RainDS_syn" / "test" / "gt" / "clean-9.png", 9)
    with pytest.raises(ColoraError, match=r"RainDS_syn rainstreak test at .*1 problem: gt/clean-9\.png .* not named as"):
        load("RainDS_syn", root)
    (root / "RainDS_real" / "test_set" / "gt" / "8.png").unlink()
    with pytest.raises(ColoraError, match=r"1 problem: no GT image for LQ 'rainstreak/8\.png'"):
        load("RainDS_real", root)

    root = sidd(tmp_path / "s")
    next(root.rglob("GT_SRGB_011.PNG")).unlink()
    with pytest.raises(ColoraError, match=r"SIDD train at .*: 1 problem: no GT_SRGB_011\.PNG beside NOISY_SRGB_011"):
        load("SIDD", root, phase="train")
    (root / "ValidationGtBlocksSrgb.mat").unlink()
    with pytest.raises(ColoraError, match=r"expected SIDD_Medium_Srgb.*no ValidationNoisyBlocksSrgb\.mat and "):
        load("SIDD", root)

    root = gopro(tmp_path / "g")
    for f in (root / "GOPRO_Large" / "test" / "GOPR0384_11_00" / "sharp").iterdir():
        f.unlink()
    (root / "GOPRO_Large" / "test" / "GOPR0384_11_00" / "sharp").rmdir()
    with pytest.raises(ColoraError, match=r"expected GOPRO_Large/\{train,test\}.*no test/<sequence>/sharp/ was found"):
        load("GoPro", root)

    root = realblur(tmp_path / "b")
    (root / "RealBlur-J_ECC_IMCORR_centroid_itensity_ref" / "scene001" / "blur" / "blur_2.png").unlink()
    with pytest.raises(ColoraError, match=r"1 problem: RealBlur_J_train_list\.txt line 2: .*scene001/blur/blur_2"):
        load("RealBlur_J", root, split="train")
    with pytest.raises(ColoraError, match=r"no RealBlur_R_test_list\.txt was found"):
        load("RealBlur_R", root)

    for name in ("NH-HAZE", "Dense-HAZE", "O-HAZE"):
        root = haze(tmp_path / name, name)
        next(root.rglob("*2_*GT.*")).unlink()
        with pytest.raises(ColoraError, match=r"1 problem: no \d+_(outdoor_)?GT image for \d+_(outdoor_)?hazy"):
            load(name, root, split="all")

    root = lol(tmp_path / "l")
    (root / "LOLdataset" / "eval15" / "low").rename(root / "LOLdataset" / "eval15" / "lowlight")
    with pytest.raises(ColoraError, match=r"expected LOLdataset/\{our485,eval15\}.*no eval15/ with low/ and high/"):
        load("LOL", root)


# ---- the commands on replicas -------------------------------------------------------------------
@pytest.fixture
def base(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "base.safetensors"
    save_checkpoint(path, randomize_layer_scales(build_arch(TINY_NAFNET)).state_dict(), network_g=TINY_NAFNET)
    return path


def finetune_args(preset, base, root, *sets):
    tiny = ["network_g.width=8", "network_g.enc_blk_nums=[1,1]", "network_g.dec_blk_nums=[1,1]",
            f"path.pretrain_network_g={base}", f"path.experiments_root={root / 'exp'}", "train.total_iter=2",
            "train.warmup_iter=0", "val.val_freq=100", "adapter.faig_tune_iter=2", "adapter.faig_steps=2",
            "adapter.faig_images=2", "datasets.train.gt_size=16", "datasets.train.batch_size_per_gpu=2",
            "datasets.train.num_pairs=4"]
    return ["finetune", "-opt", ROOT / "colora" / "presets" / "finetune" / preset] + [
        a for s in tiny + list(sets) for a in ("--set", s)]


def test_finetune_on_sidd_and_raindrop_replicas_end_to_end(tmp_path, base, capsys):
    torch.set_num_threads(1)
    root = sidd(tmp_path / "SIDD")
    code = cli.main([str(a) for a in finetune_args(
        "noise.yml", base, tmp_path, "datasets.train.type=SIDD", f"datasets.train.dataroot={root}",
        "datasets.val.type=SIDD", f"datasets.val.dataroot={root}")])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "exp" / "noise_colora" / "adapter" / "adapter_model.safetensors").is_file()
    root = rainds(tmp_path / "rain")
    code = cli.main([str(a) for a in finetune_args(
        "raindrop.yml", base, tmp_path, "datasets.train.type=RainDS_real", f"datasets.train.dataroot={root}",
        "datasets.train.subset=raindrop", "datasets.val.type=RainDS_real", f"datasets.val.dataroot={root}",
        "datasets.val.subset=raindrop")])
    assert code == 0, capsys.readouterr().err
    assert "validation PSNR" in capsys.readouterr().out


def test_eval_dataset_sidd_writes_csv_and_grid(tmp_path, base, capsys):
    root = sidd(tmp_path / "SIDD")
    out = tmp_path / "out"
    code = cli.main(["eval", "--dataset", "sidd", "--dataroot", str(root), "--model", str(base), "--threads", "1",
                     "--csv", str(out / "sidd.csv"), "--grid", str(out / "sidd.png")])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "SIDD val" in printed.out and "RGB" in printed.out
    rows = list(csv.DictReader((out / "sidd.csv").open()))
    assert [r["name"] for r in rows] == [f"{i:02d}_{j:02d}" for i in range(2) for j in range(3)] + ["mean"]
    assert float(rows[0]["psnr_in"]) == pytest.approx(48.13, abs=0.01)  # LQ = GT + 1/255 everywhere
    grid = cv2.imread(str(out / "sidd.png"))
    assert grid is not None and grid.shape[1] == 3 * grid.shape[0] // 6
    code = cli.main(["eval", "--dataset", "GoPro", "--dataroot", str(root), "--model", str(base)])
    assert code == 2 and "does not hold GoPro blur test" in capsys.readouterr().err


def test_realblur_protocol_aligns_before_scoring():
    from skimage import data as photos

    from colora.data.real import BENCHMARKS
    from colora.data.real.protocols import aligned_scores

    gt = cv2.resize(photos.astronaut(), (128, 128), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    moved = cv2.warpAffine(gt, np.float32([[1, 0, 1.5], [0, 1, -1.0]]), (128, 128), borderMode=cv2.BORDER_REFLECT)
    moved = moved * 0.9  # another lens: shifted and a little darker
    protocol = BENCHMARKS["RealBlur_J"].PROTOCOL
    plain_psnr, plain_ssim = protocol.score(moved, gt, restored=False)  # the input is scored as it is
    psnr, ssim = protocol.score(moved, gt)
    assert psnr > plain_psnr + 10 and ssim > max(plain_ssim, 0.95)
    assert aligned_scores(gt, gt)[0] > 60
    assert BENCHMARKS["RainDS_real"].PROTOCOL.y_channel and not BENCHMARKS["SIDD"].PROTOCOL.y_channel


def test_crop_pairs_size_keeps_one_fixed_window_per_training_pair(tmp_path):
    root = sidd(tmp_path)
    a, b = (load("SIDD", root, phase="train", num_pairs=3, crop_pairs_size=20, seed=1) for _ in range(2))
    assert [a.gt[i].shape for i in range(3)] == [(20, 20, 3)] * 3
    assert all(np.array_equal(a.lq[i], b.lq[i]) and np.array_equal(a.lq[i] - a.gt[i], b.lq[i] - b.gt[i])
               for i in range(3))
    assert float(np.abs(a.lq[0] - a.gt[0] - 1 / 255).max()) < 1e-6  # the same window of LQ and GT
    assert a[(0, 0)]["gt"].shape == (3, 16, 16)
    assert load("SIDD", root, phase="val", split="val", crop_pairs_size=20).lq[0].shape == (32, 32, 3)
