"""The weights shipped in colora/weights/: they load, match their recorded hashes, and each task's
adapter restores a held-out photo better than its degraded input."""
import hashlib
import json
import re

import pytest
import torch

from colora.inference.restorer import WEIGHTS_DIR

TASKS = ["rain", "raindrop", "rain_raindrop", "noise", "blur", "haze"]
pytestmark = pytest.mark.skipif(not (WEIGHTS_DIR / "MANIFEST.json").is_file(), reason="no shipped weights")

@pytest.fixture(scope="module")
def manifest():
    return json.loads((WEIGHTS_DIR / "MANIFEST.json").read_text())


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tensors_sha256(path):
    from safetensors.torch import load_file

    from colora.checkpoint import state_dict_sha256

    return state_dict_sha256(load_file(str(path)))


def test_files_match_their_recorded_hashes_and_size(manifest):
    assert sha256(WEIGHTS_DIR / manifest["base"]["file"]) == manifest["base"]["sha256"]
    # the reproducible hash (a rerun of the script gives the same tensors, not the same header bytes)
    assert tensors_sha256(WEIGHTS_DIR / manifest["base"]["file"]) == manifest["base"]["tensors_sha256"]
    assert sorted(manifest["adapters"]) == sorted(TASKS)
    for task, entry in manifest["adapters"].items():
        assert sha256(WEIGHTS_DIR / entry["folder"] / "adapter_model.safetensors") == entry["sha256"]
        assert tensors_sha256(WEIGHTS_DIR / entry["folder"] / "adapter_model.safetensors") == entry["tensors_sha256"]
        card = (WEIGHTS_DIR / entry["folder"] / "README.md").read_text()
        assert "colora finetune" in card and task in card  # the card records the command
    total = sum(f.stat().st_size for f in WEIGHTS_DIR.rglob("*") if f.is_file())
    # the fp32 NAFNet-w32-small base (27.7 MB: the adapters are trained on exactly these tensors, so
    # an fp16 copy would need them retrained), six fp32 adapters (~2 MB each) and the estimator
    assert total <= 44 * 1024 * 1024


def test_adapters_restore_a_held_out_photo_better_than_its_input_and_the_base():
    """Each adapter on a crop of a photo no training step of the shipped weights used (chelsea),
    degraded by the task's own synthesis: better than the input, and not worse than the base alone
    (issue 13: an adapter must never be worse than the base on its task)."""
    from colora.adapters import load_adapter, merge_adapter, set_adapter
    from colora.degradations.tasks import degrade_task
    from colora.imageio import bundled_photos
    from colora.metrics import calculate_psnr
    from colora.inference.restorer import Restorer, default_model_path, find_adapter, load_model

    model = load_model(default_model_path())
    for task in TASKS:  # no force: each adapter's recorded base hash must match the shipped base
        load_adapter(model, find_adapter(task, [WEIGHTS_DIR / "adapters"]), activate=False)
    merge_adapter(model)
    restorer = Restorer(model)
    clean = bundled_photos(["chelsea"])["chelsea"][60:252, 120:312]
    for i, task in enumerate(TASKS):
        lq = degrade_task(clean, task, [11, i])[0]
        set_adapter(model, None)
        base = calculate_psnr(restorer.restore(lq), clean)
        set_adapter(model, task)
        adapted = calculate_psnr(restorer.restore(lq), clean)
        assert adapted > calculate_psnr(lq, clean), task
        assert adapted >= base - 0.05, (task, adapted, base)


def test_restore_cli_finds_shipped_model_and_adapter(tmp_path):
    import subprocess
    import sys

    from colora.imageio import bundled_photos, write_image

    write_image(tmp_path / "in" / "photo.jpg", bundled_photos(["coffee"])["coffee"][:96, :128])
    proc = subprocess.run([sys.executable, "-m", "colora.cli", "restore", "-i", str(tmp_path / "in" / "photo.jpg"),
                           "-o", str(tmp_path / "out"), "--adapter", "noise", "-q"],
                          capture_output=True, text=True, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "photo.jpg").is_file()


def test_demo_writes_a_page_whose_images_all_exist(tmp_path):
    from colora.demo import run_demo

    rows, swap_ms = run_demo(tmp_path, size=64, log=lambda *_: None)
    assert [r["task"] for r in rows] == TASKS and swap_ms > 0
    page = (tmp_path / "index.html").read_text()
    sources = re.findall(r"src='([^']+)'", page)
    assert len(sources) >= 4 * len(TASKS) + 1
    assert all((tmp_path / s).is_file() for s in sources)
    summary = (tmp_path / "summary.md").read_text()
    assert all(f"| {t} |" in summary for t in TASKS)
    assert all((tmp_path / f"grid_{t}.png").is_file() for t in TASKS)
