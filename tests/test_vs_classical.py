"""benchmarks/vs_classical.py runs end to end on the shipped weights and reports every method.

Small (1 photo at 128 px, 2 tasks) so the lead's benchmark of new weights cannot silently rot.
"""
import json

import cv2
import numpy as np

from benchmarks.classical import METHODS
from benchmarks.vs_classical import main


def test_main_reports_every_method(tmp_path, capsys):
    out = tmp_path / "out"
    main(["--photos", "1", "--size", "128", "--tasks", "rain,clean", "--out", str(out),
          "--json", str(tmp_path / "r.json"), "--jpeg", str(tmp_path / "jpg")])
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["photos"] == ["aitzgorri"] and set(doc["tasks"]) == {"rain", "clean"}
    for task, expected in (("rain", {"input", "base", "base + adapter"}), ("clean", {"input", "base"})):
        res = doc["tasks"][task]
        methods = res["methods"]
        assert set(methods) == expected | set(METHODS[task])
        assert res["best_classical"] in METHODS[task]
        for name, m in methods.items():
            assert 5 < m["psnr"] <= 100 and 0 < m["ssim"] <= 1, (task, name, m)
            assert (m["sec_per_mpx"] is None) == (name == "input")
        assert res["targets"] and all(isinstance(met, bool) for met, _ in res["targets"].values())
        grid = cv2.imread(str(out / f"grid_{task}.png"))
        assert grid is not None and grid.dtype == np.uint8 and grid.shape[1] <= 1200
        assert (tmp_path / "jpg" / f"{task}.jpg").is_file()
    clean = doc["tasks"]["clean"]["methods"]
    assert clean["input"]["psnr"] == 100.0 and "base + adapter" not in clean
    printed = capsys.readouterr().out
    assert "load average" in printed and "native bf16" in printed and "| rain |" in printed


def test_no_adapters_judges_the_base_alone(tmp_path):
    main(["--photos", "1", "--size", "96", "--tasks", "rain", "--out", str(tmp_path / "out"),
          "--json", str(tmp_path / "r.json"), "--no-adapters"])
    methods = json.loads((tmp_path / "r.json").read_text())["tasks"]["rain"]["methods"]
    assert "base" in methods and "base + adapter" not in methods
