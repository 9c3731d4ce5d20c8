"""The recorded figures notebooks 05-07 show: the benchmark records, how they are written and read, and the
helpers that choose demonstration pairs from them."""

import json
import sys
from pathlib import Path

import pytest
import torch

from pegasus_course import evaluation, plotting, sampling, workflow
from pegasus_course.evaluation import (
    FIGURES_RECORD,
    QUALITY_RECORD,
    QualityFigures,
    load_quality_figures,
    pair_kind,
    pairs_of_each_kind,
    record_source,
    run_provenance,
    save_quality_figures,
)

ROOT = Path(__file__).resolve().parents[1]


# ----- choosing pairs by their recorded class

@pytest.mark.parametrize("pa, pb, kind", [(0.9, 0.1, "horse-bird"), (0.2, 0.7, "horse-bird"), (0.6, 0.99, "horse-horse"),
                                          (0.5, 0.0, "bird-bird"), (0.51, 0.5, "horse-bird")])
def test_pair_kind_hand_worked(pa, pb, kind):
    assert pair_kind(pa, pb) == kind  # 0.5 itself counts as bird: "horse" means p(horse) > 0.5


def test_pairs_of_each_kind_takes_the_clearest_seeds_once_each():
    p = [0.55, 0.05, 0.95, 0.45, 0.80, 0.20, 0.99]  # horses: 6 (.99), 2 (.95), 4 (.80), 0 (.55); birds: 1, 5, 3
    seeds = [10, 11, 12, 13, 14, 15, 16]
    chosen = pairs_of_each_kind(p, seeds)
    assert chosen == [(16, 11, "horse-bird"), (12, 14, "horse-horse"), (15, 13, "bird-bird")]
    used = [s for a, b, _ in chosen for s in (a, b)]
    assert len(used) == len(set(used))


def test_pairs_of_each_kind_says_what_is_missing():
    with pytest.raises(ValueError, match="need 3 seeds judged horse, and 2 of the 3 are"):
        pairs_of_each_kind([0.9, 0.1, 0.8], [0, 1, 2])
    with pytest.raises(ValueError, match="one each"):
        pairs_of_each_kind([0.9, 0.1], [0, 1, 2])
    with pytest.raises(ValueError, match="Unknown kind"):
        pairs_of_each_kind([0.9, 0.1], [0, 1], kinds=("horse-cat",))


# ----- writing and reading a record

def _tiny_record(tmp_path, judge=None):
    images = {"ema": torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0)),
              "guided w=3": torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))}
    record = {"sets": list(images), "seeds": {"ema": [0, 1, 2, 3], "guided w=3": [10000, 10032]},
              "p_horse": {"ema": [0.9, 0.1, 0.2, 0.3], "guided w=3": [0.8, 0.4]},
              "seconds": {"live": 8.0, "guided w=3": 6.0}, "command": "python benchmarks/quality_figures.py",
              "machine": {"cpu": "x86", "cores": 2, "gpu": None, "torch": "2.x"}, "wall_seconds": 90.0,
              "date": "2026-12-01"}
    json_path, tensor_path = save_quality_figures(record, images, tmp_path / "figs")
    return images, record, json_path, tensor_path


def test_quality_figures_round_trip_to_8_bit(tmp_path):
    images, record, json_path, tensor_path = _tiny_record(tmp_path)
    assert json_path.name == "figs.json" and tensor_path.name == "figs.safetensors"
    assert not list(tmp_path.glob("*.tmp"))  # written atomically: no temporary file left behind
    back = load_quality_figures(tmp_path / "figs")
    assert back.seeds("ema") == [0, 1, 2, 3]
    assert torch.equal(back.p_horse("guided w=3"), torch.tensor([0.8, 0.4]))
    for name, imgs in images.items():
        assert (back.images[name] - imgs).abs().max() <= 0.5 / 255 + 1e-6  # 8-bit rounding, nothing more
    assert "python benchmarks/quality_figures.py" in back.source and "2 cores" in back.source
    assert "1.5 min" in back.source


def test_guidance_cost_is_per_image(tmp_path):
    # the live set is absent from these images, so the cost falls back to 2; with it: (6 s / 2) / (8 s / 16) = 6
    _, record, _, _ = _tiny_record(tmp_path)
    fig = load_quality_figures(tmp_path / "figs")
    assert fig.guidance_cost() == 2.0
    with_live = QualityFigures({**fig.images, "live": torch.zeros(16, 3, 8, 8)}, fig.record)
    assert with_live.guidance_cost() == pytest.approx(6.0)


def test_a_missing_or_mismatched_record_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="benchmarks/quality_figures.py"):
        load_quality_figures(tmp_path / "nothing")
    _, record, json_path, _ = _tiny_record(tmp_path)
    record["sets"].append("live")
    json_path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="different runs"):
        load_quality_figures(tmp_path / "figs")


def test_run_provenance_names_no_folder_of_this_machine(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "argv", [str(ROOT / "benchmarks" / "quality_figures.py"), "--seeds", "4", "--out",
                                      str(ROOT / "runs" / "q"), "--json", str(tmp_path / "x.json")])
    p = run_provenance(started=0.0, device="cpu")
    assert p["command"] == "python benchmarks/quality_figures.py --seeds 4 --out runs/q --json x.json"
    assert str(ROOT) not in json.dumps(p) and str(tmp_path) not in json.dumps(p)
    assert p["machine"]["cores"] >= 1 and p["wall_seconds"] > 0
    assert p["machine"]["gpu"] is None and p["machine"]["device"] == "cpu"  # a CPU run never names a GPU


def test_record_source_of_an_older_record_says_so():
    assert "without its command" in record_source({"n": 64})
    line = record_source({"command": "python x.py", "machine": {"cores": 2}, "provenance": "filled in later"})
    assert line == "recorded by `python x.py` on a CPU, 2 cores (torch ?) (filled in later)"


def test_figures_record_judges_the_images_as_stored(tmp_path):
    judge, _ = evaluation.load_feature_net()
    images = {"ema": torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))}
    record = evaluation.figures_record(images, judge, seeds={"ema": [0, 1, 2]}, classes={}, meta={"n": 3})
    save_quality_figures(record, images, tmp_path / "r")
    back = load_quality_figures(tmp_path / "r")
    here = evaluation.horse_probability(judge, back.images["ema"])
    assert (here - back.p_horse("ema")).abs().max() < 1e-3  # rounded to 4 digits in the record, no more
    again = evaluation.colour_stats(back.images["ema"])
    for stat in ("mean", "std"):
        assert back.record["colour"]["ema"][stat] == pytest.approx(again[stat], abs=1e-6)


def test_pair_kind_refuses_nan():
    with pytest.raises(ValueError, match="finite"):
        pair_kind(float("nan"), 0.2)
    with pytest.raises(ValueError, match="NaN"):
        pairs_of_each_kind([0.9, float("nan")], [0, 1], kinds=("horse-bird",))


# ----- the records the notebooks show

def test_the_committed_records_hold_enough_images_for_every_figure():
    """Notebook 07 prints no result from fewer than 16 images and shows guidance with 4 or more images a class
    at w = 0, 1, 3, 10: the committed records must hold them, with how they were made."""
    quality = json.loads(QUALITY_RECORD.read_text())
    assert quality["n"] >= 64 and "command" in quality and "machine" in quality and quality["wall_seconds"] > 0
    figs = load_quality_figures()
    assert len(figs.images["ema"]) >= 16 and len(figs.images["live"]) >= 16
    assert figs.seeds("ema") == figs.seeds("live")
    for w in (0, 1, 3, 10):
        classes = figs.record["classes"][f"guided w={w}"]
        assert min(classes.count("horse"), classes.count("bird")) >= 4
    assert figs.record["command"].startswith("python benchmarks/quality_figures.py")
    assert figs.record["wall_seconds"] > 0 and figs.record["num_scales"] == 232
    kinds = [kind for _, _, kind in pairs_of_each_kind(figs.p_horse("ema"), figs.seeds("ema"))]
    assert kinds == ["horse-bird", "horse-horse", "bird-bird"]  # notebooks 06 and 07 show one of each


def test_the_recorded_p_horse_is_the_judge_on_the_recorded_images():
    figs = load_quality_figures()
    judge, _ = evaluation.load_feature_net()
    for name in ("ema", "guided w=10"):
        here = evaluation.horse_probability(judge, figs.images[name])
        assert (here - figs.p_horse(name)).abs().max() < 0.1  # 8-bit rounding moves p a little, never a verdict much
        sure = (figs.p_horse(name) - 0.5).abs() > 0.1
        assert torch.equal((here > 0.5)[sure], (figs.p_horse(name) > 0.5)[sure])


# ----- showing them

def test_show_png_keeps_a_grid_at_its_pixels_and_names_a_missing_file(tmp_path):
    plotting.setup_plots()
    fig = plotting.show_png(ROOT / "checkpoints" / "samples.png", title="64 samples")
    w_px = fig.get_figwidth() * fig.dpi
    assert 548 <= w_px <= 548 + 20  # the 548-px grid, unscaled, plus a margin
    wide = plotting.show_png(ROOT / "checkpoints" / "pegasus_rows.png")
    assert wide.get_figwidth() <= plotting.MAX_FIG_WIDTH + 0.2  # 1160 px scaled to fit the output area
    with pytest.raises(FileNotFoundError, match="missing"):
        plotting.show_png(tmp_path / "gone.png")


def test_plot_quality_draws_three_panels_on_a_log_distance_axis():
    quality = json.loads(QUALITY_RECORD.read_text())
    fig = plotting.plot_quality(quality)
    fd, rate, colour = fig.axes[:3]
    assert fd.get_xscale() == "log"
    assert len(fd.patches) == len(quality["frechet_distance"]) and len(rate.patches) == len(quality["pegasus_rate"])
    assert fig.get_figwidth() * fig.dpi >= 500



def test_plot_quality_is_the_interval_figure_without_intervals(monkeypatch):
    """One figure, not two copies: plot_quality draws the record through plot_quality_intervals."""
    from pegasus_course import plotting_quality

    quality = json.loads(QUALITY_RECORD.read_text())
    calls, real = [], plotting_quality.plot_quality_intervals
    monkeypatch.setattr(plotting_quality, "plot_quality_intervals",
                        lambda *a, **k: calls.append((a, k)) or real(*a, **k))
    fig = plotting.plot_quality(quality)
    (args, kwargs), = calls
    assert args[2] is None and kwargs["colour"] == quality["colour"]
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == len(quality["frechet_distance"]) and all(t.endswith("(no interval)") for t in texts)
    assert "Wilson" not in fig.axes[1].get_title()  # a record's rates carry no interval: none is claimed

# ----- knowing how long to wait

def test_with_progress_passes_scores_through_and_shows_one_finished_bar(monkeypatch, capsys):
    monkeypatch.setenv(sampling.TEXT_PROGRESS_ENV, "1")
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    calls = []
    wrapped = sampling.with_progress(lambda x, s: calls.append(1) or 2 * x, 3, desc="evals")
    x = torch.ones(2, 3)
    assert torch.equal(wrapped(x, torch.ones(2)), 2 * x)
    wrapped(x, torch.ones(2)), wrapped(x, torch.ones(2))
    first = capsys.readouterr().err
    assert first.count("3/3") == 1 and "evals: 100%" in first
    wrapped(x, torch.ones(2))  # a sampler that calls more often than announced starts a new bar, no error
    wrapped.close()  # and one that stops early closes it
    rest = capsys.readouterr().err
    assert "1/3" in rest and len(calls) == 4
    with pytest.raises(ValueError):
        sampling.with_progress(lambda x, s: x, 0)


def test_text_progress_writes_a_finished_bar(monkeypatch, capsys):
    monkeypatch.setenv(sampling.TEXT_PROGRESS_ENV, "1")
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    for _ in sampling.progress_bar(range(5), desc="levels"):
        pass
    err = capsys.readouterr().err
    assert "levels: 100%" in err and "5/5" in err


def test_course_expect_is_runs_times_factor_times_the_measured_cost(capsys):
    cost = workflow.NetworkCost(device="cpu", precision="fp32", fixed=0.01, per_image=0.002, measured_batch=8)
    course = workflow.Course(profile=None, generator=None, model=None, checkpoint=None,
                             schedule=type("S", (), {"num_scales": 10, "n_steps_each": 2})(), how="", cost=cost)
    seconds = course.expect("rows", 4, runs=2, factor=1.5)
    assert seconds == pytest.approx(2 * 1.5 * 21 * (0.01 + 0.002 * 4))  # L * T + 1 = 21 evaluations a run
    out = capsys.readouterr().out
    assert "rows: 2 runs x 4 images x 21 network evaluations" in out and "x 1.5 for guidance" in out
