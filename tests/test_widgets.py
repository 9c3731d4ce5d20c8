import pytest
import torch

from pegasus_course.checks import float32_tolerance
from pegasus_course.generate import Schedule, generate, pegasus_rows
from pegasus_course.nn import ScoreUNet
from pegasus_course.widgets import InterpolationExplorer, png_bytes

SCHED = Schedule(50.0, 0.01, 4, 1)


@pytest.fixture
def explorer(tiny_config, tmp_path):
    torch.manual_seed(0)
    model = ScoreUNet(tiny_config).eval()
    return InterpolationExplorer(model, SCHED, candidate_seeds=[10, 11, 12, 13], n=3, label="test",
                                 out_dir=tmp_path / "saved")


def test_logic_without_widgets(explorer):
    explorer.choose_ends(11, 13)
    row = explorer.compute()
    assert row.shape == (5, 3, 32, 32)
    expect = pegasus_rows(explorer.model, [(11, 13)], 3, SCHED, progress=False)[0]
    assert torch.allclose(row, expect)
    ends = generate(explorer.model, [11, 13], SCHED, progress=False)
    # the ends come from a batch of five, the samples alone from a batch of two: same arithmetic in another
    # order, so they agree to float32 rounding over the chain (L * T + 1 evaluations at sigma_1's scale)
    tol = float32_tolerance(SCHED.sigma_max, SCHED.num_scales * SCHED.n_steps_each + 1)
    assert torch.allclose(row[0], ends[0], rtol=0, atol=tol) and torch.allclose(row[-1], ends[1], rtol=0, atol=tol)
    assert not torch.allclose(row[1], ends[0], rtol=0, atol=100 * tol)  # and the tolerance still tells rows apart
    assert torch.equal(explorer.show_k(99), row[4])  # clamped to N + 1
    path = explorer.save_current()
    assert path.is_file() and "k4" in path.name
    with pytest.raises(ValueError):
        explorer.choose_ends(12, 12)


def test_widget_responds_to_slider_and_buttons(explorer):
    pytest.importorskip("ipywidgets")
    ui = explorer.widget()
    assert ui is explorer.widget()
    assert explorer.slider.disabled and explorer.save_button.disabled  # nothing computed yet
    explorer.seed2.value = 12  # pick by seed
    assert explorer.ends == [10, 12]
    explorer.compute_button.click()
    assert explorer.row is not None and not explorer.slider.disabled
    before = explorer.image.value
    explorer.slider.value = explorer.slider.max
    assert explorer.image.value != before and explorer.image.value == png_bytes(explorer.row[-1])
    assert f"k = {explorer.n + 1}" in explorer.readout.value
    explorer.save_button.click()
    assert "saved" in explorer.status_label.value
    saved = list(explorer.out_dir.glob("*.png"))
    assert len(saved) == 1 and str(saved[0]) in explorer.status_label.value


def test_controls_disabled_while_computing(explorer, monkeypatch):
    pytest.importorskip("ipywidgets")
    explorer.widget()
    seen = {}
    import pegasus_course.widgets as W

    real = W.pegasus_rows

    def spy(*a, **k):
        seen["disabled"] = explorer.compute_button.disabled and explorer.slider.disabled
        seen["status"] = explorer.status_label.value
        return real(*a, **k)

    monkeypatch.setattr(W, "pegasus_rows", spy)
    explorer.compute_button.click()
    assert seen["disabled"] and "busy" in seen["status"] and "computing" in seen["status"]
    assert not explorer.compute_button.disabled


def test_clicking_candidates_sets_the_ends(explorer):
    pytest.importorskip("ipywidgets")
    explorer.widget()
    explorer.click_candidate(2)
    explorer.click_candidate(3)
    assert explorer.ends == [12, 13]


def test_partial_row_snaps_to_the_computed_interpolants(explorer):
    explorer.choose_ends(10, 12)
    full = pegasus_rows(explorer.model, [(10, 12)], 3, SCHED, progress=False)[0]
    ks = [0, 2, 4]
    explorer.set_row(full[ks], ks=ks)
    assert torch.equal(explorer.show_k(1), full[0]) and explorer.k == 0  # 1 is not computed: a tie goes down
    explorer.set_row(full[[0, 3, 4]], ks=[0, 3, 4])
    assert torch.equal(explorer.show_k(2), full[3]) and explorer.k == 3  # the nearer computed k
    assert torch.equal(explorer.show_k(4), full[4])
    with pytest.raises(ValueError, match="hold both ends"):
        explorer.set_row(full[[0, 2]], ks=[0, 2])
    with pytest.raises(ValueError, match="one per k"):
        explorer.set_row(full[[0, 2]], ks=[0, 2, 4])
    explorer.compute()  # the whole row replaces the partial one
    assert explorer.row_ks == [0, 1, 2, 3, 4] and torch.allclose(explorer.show_k(1), full[1])
