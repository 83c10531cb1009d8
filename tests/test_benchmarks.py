"""The benchmark drivers: the paper ablation at toy size (resumable, budgeted, reported) and
run_all's regeneration of BENCHMARKS.md."""
import json
import statistics
import sys

import pytest

from benchmarks import ablation_report, paper_ablation, run_all

TOY = paper_ablation.PROFILES["toy"]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ablation")
    messages = []
    ran = paper_ablation.run("toy", out, log=messages.append)
    return out, ran, messages


def results(out):
    return [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]


def test_toy_ablation_runs_every_cell_once_and_reports(toy_run):
    out, ran, _ = toy_run
    rows = results(out)
    expected = {paper_ablation.cell_id(c) for c in paper_ablation.cells(TOY)}
    assert ran == len(rows) == len(expected) and {r["id"] for r in rows} == expected
    ft = [r for r in rows if r["kind"] == "finetune"]
    assert all(10 < r["psnr"] < 60 and r["seconds"] > 0 for r in ft)
    # every cell is evaluated on the same held-out crops: the base's PSNR depends only on the base
    assert len({round(r["base_psnr"], 9) for r in ft if r["pretrain"] == "prod"}) == 1
    # uniform LoRA was sized to CoLoRA's budget, not left at the preset's rank 8
    pct = {m: statistics.fmean(r["trainable_percent"] for r in ft if r["method"] == m) for m in ("lora", "colora")}
    assert abs(pct["lora"] - pct["colora"]) < 0.2 * pct["colora"]

    text = ablation_report.write_report(out, "toy", TOY, sorted(expected))
    assert (out / "report.md").read_text().strip() == text.strip()
    try:
        import matplotlib  # noqa: F401  (the plots extra draws the figure; the tables never need it)
        assert (out / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    except ImportError:
        assert not (out / "ablation.png").exists() and "ablation.png" not in text
    for heading in ("Pre-training ablation", "Fine-tuning ablation", "Paired differences", "Targets"):
        assert heading in text
    # the table shows the mean +- sd of the results file
    prod_full = [r["psnr"] for r in ft if r["pretrain"] == "prod" and r["method"] == "full"]
    assert ablation_report.fmt_ms(prod_full) in text
    assert "PROD ≥ random init + 0.8 dB" in text and "12 of 12 cells done" in text


def test_rerun_skips_finished_cells(toy_run):
    out, _, _ = toy_run
    before = (out / "results.jsonl").read_text()
    messages = []
    assert paper_ablation.run("toy", out, log=messages.append) == 0
    assert (out / "results.jsonl").read_text() == before
    assert "12 of 12 cells done, 0 to run" in messages[0]


def test_investigation_variant_adds_only_its_cells_and_a_report_row(toy_run, capsys):
    out, _, _ = toy_run
    n = len(results(out))
    assert paper_ablation.run("toy", out, methods=["colora_lora_only"], log=lambda m: None) == len(TOY["seeds"])
    rows = results(out)[n:]
    assert {r["method"] for r in rows} == {"colora_lora_only"}
    text = ablation_report.write_report(out, "toy", TOY, [paper_ablation.cell_id(c) for c in paper_ablation.cells(TOY)],
                                        variants={k: v[2] for k, v in paper_ablation.VARIANTS.items()})
    assert "12 of 12 cells done (+2 cells of investigation variants)" in text
    assert "| CoLoRA ranks, no biases/norms/scales |" in text
    # a pre-training variant: its own base (more photos), fine-tuned fully, compared with random init
    assert paper_ablation.run("toy", out, pretrains=["random", "prod_more"], log=lambda m: None) == 1 + len(TOY["seeds"])
    assert (out / "runs" / "pre_prod_more" / "models" / "net_g_latest.safetensors").is_file()
    text = ablation_report.write_report(out, "toy", TOY, [paper_ablation.cell_id(c) for c in paper_ablation.cells(TOY)],
                                        variants={k: v[2] for k, v in paper_ablation.PRETRAIN_VARIANTS.items()})
    assert "PROD on 15 photos (+ 9 grey ones) − random init (full fine-tuning)" in text
    with pytest.raises(SystemExit):
        paper_ablation.main(["--profile", "toy", "--out", str(out), "--methods", "colora,nope"])
    assert "unknown method 'nope'" in capsys.readouterr().err


def test_budget_stops_between_cells_and_a_rerun_continues(tmp_path):
    messages = []
    assert paper_ablation.run("toy", tmp_path, budget_minutes=0, log=messages.append) == 0
    assert "budget of 0 min spent" in messages[-1]
    assert not (tmp_path / "results.jsonl").exists()


def test_paired_interval_and_verdicts():
    a = {(16, 0): 27.0, (16, 1): 27.4, (128, 0): 28.0, (128, 1): 28.2}
    b = {k: v - 1.0 for k, v in a.items()}
    b[(16, 1)] += 0.2  # differences 1.0, 0.8, 1.0, 1.0
    d = ablation_report.paired(a, b)
    assert d["n"] == 4 and d["mean"] == pytest.approx(0.95)
    half = 3.182446 * statistics.stdev([1.0, 0.8, 1.0, 1.0]) / 2  # t(0.975, 3) sd / sqrt(4)
    assert (d["lo"], d["hi"]) == pytest.approx((0.95 - half, 0.95 + half), abs=1e-5)
    assert ablation_report.verdict(d, 0.7) == "**met**"  # interval about [0.79, 1.11]
    assert ablation_report.verdict(d, 1.2) == "**not met**"
    assert ablation_report.verdict(d, 0.95) == "not resolved"
    assert ablation_report.paired(a, {(16, 0): 1.0}) is None


def test_run_all_replaces_only_the_marked_blocks(tmp_path):
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\nprose about `<!-- run_all: … -->` markers kept\n<!-- run_all: machine -->\nold\n<!-- /run_all -->\n"
                   "analysis kept\n<!-- run_all: fake.py --flag -->\nstale table\n<!-- /run_all -->\nend\n")
    script = tmp_path / "fake.py"
    script.write_text("import sys\nprint('| a |\\n|---|\\n| ' + sys.argv[1] + ' |')\n")
    run_all.regenerate(doc, scripts_dir=tmp_path, python=sys.executable)
    text = doc.read_text()
    assert "stale table" not in text and "old" not in text
    assert "| --flag |" in text and "markers kept" in text and "analysis kept" in text and text.endswith("end\n")
    assert "cores" in text  # the machine description
    # a failing script keeps the old block and says so, the rest is still regenerated
    script.write_text("raise SystemExit('boom')\n")
    failed = run_all.regenerate(doc, scripts_dir=tmp_path, python=sys.executable)
    assert failed == ["fake.py --flag"] and "| --flag |" in doc.read_text()


def test_default_speed_prints_every_mode_and_the_macs_ratio(capsys):
    from benchmarks.default_speed import main

    main(["--size", "64", "--repeat", "1", "--threads", "1"])
    out = capsys.readouterr().out
    assert "x the tiny base shipped before" in out
    rows = [ln for ln in out.splitlines() if ln.startswith("| 1 |")]
    assert len(rows) == 4 and all(float(r.split("|")[4]) > 0 for r in rows)


def test_the_corpus_profile_pretrains_on_its_folder_and_says_how_to_make_it(tmp_path):
    """quick_corpus (issue 13, step 5): PROD reads the corpus folder; everything else is quick's."""
    import cv2
    from skimage import data

    from colora.data.datasets import ProdDataset
    from colora.options import load_options

    quick, corpus = paper_ablation.PROFILES["quick"], paper_ablation.PROFILES["quick_corpus"]
    assert {k: v for k, v in corpus.items() if k != "pretrain_root"} == quick
    for name, img in (("a", data.astronaut()), ("b", data.coffee())):
        cv2.imwrite(str(tmp_path / f"{name}.png"), img[..., ::-1])
    p = dict(corpus, pretrain_root=str(tmp_path))
    opts = load_options(paper_ablation.ROOT / "colora" / "presets" / "pretrain" / "nafnet_tiny_prod.yml",
                        paper_ablation.pretrain_sets(p, tmp_path / "out", "prod"))
    ds = ProdDataset(opts.datasets["train"], opts.degradations)
    assert sorted(ds.images.names) == ["a", "b"]
    with pytest.raises(SystemExit, match="make_corpus"):
        paper_ablation.pretrain_sets(dict(corpus, pretrain_root=str(tmp_path / "missing")), tmp_path, "prod")
