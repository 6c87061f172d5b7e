"""benchmarks/gpu.py in its tiny CPU mode, so the GPU script does not rot between GPU runs: every section runs
(inference per variant, the largest-batch search, the training steps through the trainer's loss, the data
loaders) and the report has one row per model, variant and batch."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def gpu_script(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(BENCH))
    sys.modules.pop("gpu", None)
    import gpu

    return gpu


def test_tiny_cpu_mode_runs_every_section(gpu_script, tmp_path: Path) -> None:
    from posetokens.inference.precision import bf16_supported

    out = tmp_path / "RESULTS.md"
    assert gpu_script.main(["--device", "cpu", "--tiny", "--max-batch", "2", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("\n## gpu.py --tiny") and "(CPU)" in text
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| ") and not line.startswith("| model")
            and not line.startswith("| training")]
    inference = [r for r in rows if len(r) == 6]
    training = [r for r in rows if len(r) == 7]
    variants = ["fp32"] + (["bf16", "bf16-backbone"] if bf16_supported("cpu")[0] else [])
    for name in gpu_script.TINY:
        for v in variants:  # batch 1 and the largest tried (2): the doubling search ran
            want = ["—"] if v == "bf16-backbone" and name.startswith("hot_") else ["1", "2"]  # a lifter: no backbone
            assert [r[2] for r in inference if r[0] == f"| {name}" and r[1] == v] == want, (name, v, text)
    assert [r[0] for r in training] == [f"| {n}" for n in gpu_script.TRAIN_MODELS]
    assert all(float(r[3]) > 0 for r in training)  # step ms measured


def test_refuses_a_missing_gpu_in_one_line(gpu_script, tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(ValueError, match=r"--device cuda: ") as e:
        gpu_script.main(["--out", str(tmp_path / "r.md")])
    assert "\n" not in str(e.value) and not (tmp_path / "r.md").exists()


def test_a_report_that_cannot_be_written_is_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Every benchmark appends through throughput.append_report: a bad --out ends in one line naming the path,
    and the report survives in the temporary folder."""
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    from throughput import append_report

    with pytest.raises(SystemExit) as e:
        append_report("## a report\n", tmp_path / "missing" / "RESULTS.md")
    line = str(e.value)
    assert "\n" not in line and str(tmp_path / "missing" / "RESULTS.md") in line
    kept = list(tmp_path.glob("posetokens-report-*.md"))
    assert len(kept) == 1 and kept[0].read_text() == "## a report\n" and str(kept[0]) in line
    assert "## a report" in capsys.readouterr().out


def test_an_interrupted_benchmark_ends_in_one_line(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Every benchmark's entry point is throughput.run: Ctrl-C gives one line and exit 130, not a traceback."""
    monkeypatch.syspath_prepend(str(BENCH))
    from throughput import run

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as e:
        run(interrupted)
    assert e.value.code == 130
    err = capsys.readouterr().err.strip()
    assert err == "benchmark: interrupted; reports printed above were appended, the one in progress was not"
    with pytest.raises(SystemExit) as e:
        run(lambda: 2)
    assert e.value.code == 2
    for script in BENCH.glob("*.py"):  # no script keeps its own bare entry point
        text = script.read_text()
        if '__name__ == "__main__"' in text:
            assert "run(main)" in text, script.name


def test_pct_flip_benchmark_runs_on_a_tiny_pct(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """benchmarks/pct_flip.py end to end on a tiny PCT (ONNX export, both runtimes' flip test compared, report
    appended), so the script does not rot between the runs that time PCT-B."""
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setenv("POSETOKENS_CACHE", str(tmp_path / "cache"))
    sys.modules.pop("pct_flip", None)
    import pct_flip

    out = tmp_path / "RESULTS.md"
    tiny = ('{"backbone": {"embed_dim": 8, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 2, 2]}, "in_channels": 64, '
            '"head": {"conv_channels": 32, "conv_blocks": 1}}')
    assert pct_flip.main(["--batches", "1", "2", "--rounds", "1", "--overrides", tiny, "--out", str(out)]) == 0
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| pct_base_woimgguide_coco_256x256 (overridden) |")]
    assert [r.split(" | ")[1] for r in rows] == ["1", "2"], text
    assert all(float(r.split(" | ")[5].rstrip(" |")) <= 1e-3 for r in rows)  # the runtimes agreed before timing
    assert "--overrides '{\"backbone\"" in text  # the command line is copyable


def test_benchmark_reports_append_only_to_markdown(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every benchmark's ``--out`` (throughput.report_path) takes a markdown file, checked before the run: a data
    file given by mistake (a detections json) would get a markdown report appended to it, and a folder cannot."""
    import argparse

    monkeypatch.syspath_prepend(str(BENCH))
    sys.modules.pop("throughput", None)
    from throughput import report_path

    det = tmp_path / "val_detections.json"
    det.write_text("[]")
    for bad in (det, tmp_path, tmp_path / "missing" / "r.md"):
        with pytest.raises(argparse.ArgumentTypeError):
            report_path(str(bad))
    assert det.read_text() == "[]"
    assert report_path(str(tmp_path / "RESULTS.md")) == tmp_path / "RESULTS.md"


def test_throughput_reports_the_middle_half_of_the_per_round_speed_ups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Beside the ratio of medians, throughput.py reports the quartiles of the per-round ratios (the reference's
    time over the model's in the same round). Hand-computed: ratios 2, 1, 3, 4, 5 have quartiles 2 and 4."""
    monkeypatch.syspath_prepend(str(BENCH))
    sys.modules.pop("throughput", None)
    from throughput import report, round_ratio_quartiles

    ref, model = [4.0, 2.0, 9.0, 8.0, 10.0], [2.0, 2.0, 3.0, 2.0, 2.0]
    assert round_ratio_quartiles(ref, model) == pytest.approx((2.0, 4.0))
    assert round_ratio_quartiles([3.0], [2.0]) == (1.5, 1.5)
    with pytest.raises(ValueError, match="5 reference rounds against 4"):
        round_ratio_quartiles(ref, model[:4])
    rows = [{"pair": "s", "model": m, "variant": "optimized", "batch": 32, "cpu_s": sorted(t)[2], "wall_s": 1.0,
             "cpu_rounds": t, "img_s": 1.0, "unit": "img/s", "macs": macs}
            for m, t, macs in (("tokenpose_s_coco_256x192", ref, 5), ("ppt_s_coco_256x192", model, 4))]
    line = next(x for x in report(rows, 1, {32: 5}).splitlines() if x.startswith("| ppt_s_coco_256x192 / "))
    assert line == "| ppt_s_coco_256x192 / tokenpose_s_coco_256x192 | 32 | optimized | 4.00x | 2.00-4.00x | 1.25 | — |"


def test_throughput_rotates_the_order_of_its_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every model and variant runs once a round, and round r starts r places further along (hand-written
    rotations), so that no model always runs right after the same other one."""
    monkeypatch.syspath_prepend(str(BENCH))
    sys.modules.pop("throughput", None)
    import throughput

    assert throughput.rotated([1, 2, 3], 0) == [1, 2, 3]
    assert throughput.rotated([1, 2, 3], 1) == [2, 3, 1]
    assert throughput.rotated([1, 2, 3], 5) == [3, 1, 2]
    assert throughput.rotated([], 2) == []
    calls: list[tuple[int, str]] = []

    def fake_time(model, x, variant):  # records the order instead of timing
        calls.append((id(model), variant))
        return 1.0, 1.0

    monkeypatch.setattr(throughput, "time_once", fake_time)
    rows, skipped = throughput.bench_pair("gtpt_t", 1, rounds=4, only=("eager", "optimized"))
    assert not skipped and len(rows) == 4
    warm, timed = calls[:4], calls[4:]
    rounds = [timed[i:i + 4] for i in range(0, 16, 4)]
    assert rounds == [warm[r:] + warm[:r] for r in range(4)]
