"""The package works without the repository: a built wheel, installed into a fresh virtual
environment, fine-tunes from a shipped preset and restores a folder, from a directory outside the
clone (issue 17). The fresh environment borrows the dependencies (torch, OpenCV, ...) of this one
through a .pth line, so nothing is downloaded; colora itself comes only from the wheel."""
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from colora.imageio import bundled_photos, write_image

ROOT = Path(__file__).resolve().parents[1]


def run(cmd, cwd, env):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    # built from a copy: setuptools writes build/ and *.egg-info beside the sources it builds
    src = out / "src"
    shutil.copytree(ROOT / "colora", src / "colora", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
        cwd=out, env=env)
    (path,) = out.glob("colora-*.whl")
    return path


def test_wheel_ships_presets_and_weights(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"colora/presets/finetune/noise.yml", "colora/presets/pretrain/nafnet_tiny_prod.yml",
            "colora/weights/base.safetensors", "colora/weights/MANIFEST.json",
            "colora/weights/adapters/noise/adapter_model.safetensors"} <= names
    assert not any(n.startswith(("tests/", "benchmarks/", "scripts/")) for n in names)


def test_installed_wheel_finetunes_from_a_preset_and_restores_outside_the_repo(wheel, tmp_path):
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # this environment's dependencies, but not its colora (an editable install is a .pth of its own,
    # which a path added this way does not process)
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)], tmp_path, env)

    work = tmp_path / "elsewhere"
    work.mkdir()
    where = run([str(py), "-c", "import colora; print(colora.__file__)"], work, env)
    assert str(env_dir) in where and str(ROOT) not in where
    colora = str(env_dir / "bin" / "colora")
    out = run([colora, "finetune", "--preset", "noise", "--set", "train.total_iter=2",
               "--set", "adapter.faig_tune_iter=2", "--set", "adapter.faig_steps=2", "--set", "val.val_freq=2"],
              work, env)
    adapter = work / "experiments" / "noise_colora" / "adapter"
    assert "adapter:" in out and (adapter / "adapter_model.safetensors").is_file()

    photos = work / "photos"
    for name in ("chelsea", "coffee"):
        write_image(photos / f"{name}.png", bundled_photos([name])[name][:64, :80])
    run([colora, "restore", "-i", "photos", "-o", "restored", "--adapter", str(adapter)], work, env)
    run([colora, "restore", "-i", "photos", "-o", "restored_noise", "--adapter", "noise"], work, env)
    for folder in ("restored", "restored_noise"):
        outputs = sorted(p.name for p in (work / folder).iterdir())
        assert outputs == ["chelsea.png", "coffee.png"], outputs
