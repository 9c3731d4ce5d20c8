"""fp16 training is as safe as bf16: driven on the CPU (CPU autocast and torch.amp.GradScaler("cpu")), the
gradient scaler's skipped steps are counted, the guards still stop a diverging run, and resume is bit-exact."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import make_image_folder
from pegasus_course import checkpoints as C, training as T
from pegasus_course.nn import ScoreUNet
from pegasus_course.sigmas import geometric_sigmas

SIGMAS = geometric_sigmas(5.0, 0.1, 4)
# The DSM loss sums over 3,072 pixels, so at torch's first scale (2^16) every fp16 gradient overflows and the
# scaler halves its way down through about ten skipped steps. Starting at 2^8 keeps the tests short and still
# crosses from skipped steps to taken ones.
START_SCALE = 256.0


def _images(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, 1, 1, generator=g) * 255).expand(n, 3, 32, 32).round().to(torch.uint8).contiguous()


def _state(config, cfg, scale=START_SCALE):
    torch.manual_seed(0)
    state = T.new_state(ScoreUNet(config), cfg)
    assert state.precision == "fp16" and state.scaler is not None  # asked for: fp16 with a scaler, on the CPU
    state.scaler = torch.amp.GradScaler("cpu", init_scale=scale)
    return state


def test_fp16_resume_is_bit_exact_and_skips_are_counted(tmp_path, tiny_config):
    data = _images()
    cfg = T.TrainConfig(steps=6, batch_size=8, log_every=2, precision="fp16")
    seen = []
    full = _state(tiny_config, cfg)
    full = T.train(full.model, data, SIGMAS, cfg, state=full, progress=False,
                   on_step=lambda st: seen.append((st.step, st.skipped_steps)))
    # Each skipped step halves the scale (backoff 0.5); none grows it (growth needs 2,000 clean steps).
    assert 0 < full.skipped_steps < 6, "the run should cross from skipped steps to taken ones"
    assert full.scaler.get_scale() == START_SCALE * 0.5 ** full.skipped_steps
    assert seen[-1] == (6, full.skipped_steps) and [s for s, _ in seen] == [2, 4, 6]  # logged at every host sync

    half_cfg = T.TrainConfig(steps=3, batch_size=8, log_every=1, precision="fp16")
    half = _state(tiny_config, half_cfg)
    half = T.train(half.model, data, SIGMAS, half_cfg, state=half, checkpoint_path=tmp_path / "h.safetensors",
                   progress=False)
    saved = C.load_checkpoint(tmp_path / "h.safetensors")
    assert float(saved.tensors["scaler.scale"]) == half.scaler.get_scale()
    assert int(saved.tensors.get("scaler.skipped_steps", torch.tensor(0))) == half.skipped_steps

    torch.manual_seed(1)  # other initial weights: everything must come from the checkpoint
    model = ScoreUNet(tiny_config)
    state = T.resume_state(tmp_path / "h.safetensors", model, cfg)
    assert state.step == 3 and state.scaler.get_scale() == half.scaler.get_scale()
    resumed = T.train(model, data, SIGMAS, cfg, state=state, progress=False)
    assert resumed.losses == full.losses
    assert resumed.skipped_steps == full.skipped_steps
    assert resumed.scaler.state_dict() == full.scaler.state_dict()
    for (name, p), q in zip(full.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(p, q), name
    for p, q in zip(full.ema.parameters(), resumed.ema.parameters()):
        assert torch.equal(p, q)


def test_fp16_weights_move_only_on_steps_the_scaler_takes(tiny_config):
    cfg = T.TrainConfig(steps=1, batch_size=8, log_every=1, precision="fp16")
    state = _state(tiny_config, cfg, scale=2.0**16)  # torch's default scale: the first step overflows
    before = [p.detach().clone() for p in state.model.parameters()]
    state = T.train(state.model, _images(), SIGMAS, cfg, state=state, progress=False)
    assert state.skipped_steps == 1 and state.scaler.get_scale() == 2.0**15
    assert all(torch.equal(a, b) for a, b in zip(before, state.model.parameters()))  # the skipped step: no update
    cfg2 = T.TrainConfig(steps=2, batch_size=8, log_every=1, precision="fp16")
    state.scaler = torch.amp.GradScaler("cpu", init_scale=1.0)  # small enough for no overflow
    state = T.train(state.model, _images(), SIGMAS, cfg2, state=state, progress=False)
    assert state.skipped_steps == 1 and not all(torch.equal(a, b) for a, b in zip(before, state.model.parameters()))


def _poisoned(model, from_call: int, until_call: int | None = None):
    calls = {"n": 0}
    original = model.forward

    def forward(x, sigma):
        calls["n"] += 1
        out = original(x, sigma)
        bad = calls["n"] >= from_call and (until_call is None or calls["n"] <= until_call)
        return out * float("nan") if bad else out

    model.forward = forward
    return model


def test_one_overflowing_fp16_step_is_skipped_not_fatal(tiny_config):
    cfg = T.TrainConfig(steps=4, batch_size=8, log_every=2, precision="fp16")
    state = _state(tiny_config, cfg, scale=1.0)
    _poisoned(state.model, from_call=2, until_call=2)
    state = T.train(state.model, _images(), SIGMAS, cfg, state=state, progress=False)
    assert state.step == 4 and state.skipped_steps == 1 and state.scaler.get_scale() == 0.5
    assert [v != v for v in state.losses] == [False, True, False, False]  # step 2's NaN loss is recorded
    assert T.weights_finite(state.model, state.ema)


def test_fp16_guard_stops_a_run_that_overflows_at_every_step(tmp_path, tiny_config, monkeypatch):
    monkeypatch.setattr(T, "MAX_SKIPPED_IN_A_ROW", 3)
    cfg = T.TrainConfig(steps=8, batch_size=8, log_every=1, precision="fp16", checkpoint_every=100)
    state = _state(tiny_config, cfg, scale=1.0)
    _poisoned(state.model, from_call=3)
    with pytest.raises(FloatingPointError, match="overflowed at every step from step 3 to 5"):
        T.train(state.model, _images(), SIGMAS, cfg, state=state, checkpoint_path=tmp_path / "c.safetensors",
                progress=False)
    assert not (tmp_path / "c.safetensors").exists()


def test_fp16_explosion_guard_still_stops_a_diverging_run(tiny_config):
    cfg = T.TrainConfig(steps=6, batch_size=8, log_every=2, precision="fp16")
    state = _state(tiny_config, cfg, scale=1.0)
    original = state.model.forward
    calls = {"n": 0}

    def exploding(x, sigma):  # at step 5 the scores are 1e4 times too large: a loss ~1e8 times the median
        calls["n"] += 1
        return original(x, sigma) * (1e4 if calls["n"] == 5 else 1.0)

    state.model.forward = exploding
    with pytest.raises(FloatingPointError, match="at step 5: the optimisation diverged"):
        T.train(state.model, _images(), SIGMAS, cfg, state=state, progress=False)


def test_check_losses_ignores_skipped_steps_only():
    T.check_losses([1.0, float("inf"), 1.1], [1.0] * 10, step=3, skipped=[False, True, False])  # no error
    with pytest.raises(FloatingPointError, match="at step 2"):
        T.check_losses([1.0, float("inf"), 1.1], [1.0] * 10, step=3, skipped=[False, False, False])
    with pytest.raises(FloatingPointError, match="jumped from about 1 to 5000 at step 3"):
        T.check_losses([1.0, float("nan"), 5000.0], [1.0] * 10, step=3, skipped=[False, True, False])
    with pytest.raises(FloatingPointError, match="jumped from about 1 to 9e\\+09 at step 2"):  # skipped, still diverged
        T.check_losses([1.0, 9e9, 1.0], [1.0] * 10, step=3, skipped=[False, True, False])


# ---------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("precision") / "data", classes=("horse", "bird"), per_class=4)


def _train(folder, out, *extra):
    return [str(a) for a in ("train", "--dataset", "folder", "--data-root", folder, "--profile", "ci", "--batch-size",
                             "4", "--num-scales", "3", "--steps", "2", "--sample-every", "1000", "--out", out,
                             "--no-progress", "--device", "cpu", *extra)]


def _run(argv, capsys):
    from pegasus_course import cli

    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_records_each_legs_precision(folder, tmp_path, capsys):
    out = tmp_path / "run"
    code, text, err = _run(_train(folder, out, "--precision", "fp16"), capsys)
    assert code == 0, err
    assert "fp16 autocast with a gradient scaler (asked for)" in text and "the gradient scaler skipped" in text
    code, text, err = _run(_train(folder, out, "--resume", "--steps", "3", "--no-bf16"), capsys)
    assert code == 0, err
    assert "precision fp16 -> fp32" in text  # the change of precision is noted ...
    meta = C.load_checkpoint(out / "checkpoint.safetensors").meta
    assert [leg["precision"] for leg in meta["legs"]] == ["fp16", "fp32"]  # ... and recorded, leg by leg
    assert json.dumps(meta["train_config"]["precision"]) == '"fp32"'


@pytest.mark.parametrize("extra,fix", [(["--precision", "fp8"], "auto, bf16, fp16, fp32"),
                                       (["--precision", "fp16", "--no-bf16"], "not allowed with")])
def test_cli_bad_precision_is_refused_where_parsed(folder, tmp_path, capsys, extra, fix):
    code, _, err = _run(_train(folder, tmp_path / "run", *extra), capsys)
    assert code == 2 and fix in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
