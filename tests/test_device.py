"""One place decides the device and the training precision (pegasus_course.device): CUDA and MPS are mocked,
so every branch runs on a CPU-only machine."""

from __future__ import annotations

import pytest
import torch

from pegasus_course import device as D, training as T, workflow
from pegasus_course.nn import ScoreUNet
from pegasus_course.profiles import get_profile


@pytest.fixture
def no_gpu(monkeypatch):
    """A machine with neither CUDA nor MPS, and no PEGASUS_DEVICE."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.delenv(D.DEVICE_ENV, raising=False)
    D.reset_checks()
    yield
    D.reset_checks()


def mock_cuda(monkeypatch, capability, name="Tesla T4"):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)


# ---------------------------------------------------------------- precision


@pytest.mark.parametrize("capability,expected", [((7, 5), "fp16"), ((7, 0), "fp16"), ((6, 1), "fp16"),
                                                 ((8, 0), "bf16"), ((8, 6), "bf16"), ((9, 0), "bf16")])
def test_training_precision_follows_the_compute_capability(no_gpu, monkeypatch, capability, expected):
    mock_cuda(monkeypatch, capability)
    p = D.training_precision(torch.device("cuda"))
    assert p.name == expected and p.autocast
    assert p.needs_scaler == (expected == "fp16")  # fp16 needs loss scaling; bf16 has float32's range
    assert p.dtype == {"fp16": torch.float16, "bf16": torch.bfloat16}[expected]
    assert f"{capability[0]}.{capability[1]}" in p.reason
    # the training loop asks the same function: a T4 trains in fp16 with a scaler, an A100 in bf16
    assert T.train_precision(T.TrainConfig(steps=1), torch.device("cuda")).name == expected
    assert T.train_precision(T.TrainConfig(steps=1, bf16=False), torch.device("cuda")).name == "fp32"


def test_cpu_and_mps_train_in_float32_unless_asked(no_gpu):
    for name in ("cpu", "mps"):
        p = D.training_precision(torch.device(name))
        assert p.name == "fp32" and not p.autocast and not p.needs_scaler
    assert D.training_precision("cpu", "fp16").needs_scaler
    assert D.training_precision("cpu", "bf16").name == "bf16"
    assert D.sampling_precision("cpu", "fp32").name == "fp32"  # by default: bf16 where native (test_sampling_precision)


def test_emulated_bf16_is_refused_with_what_to_use(no_gpu, monkeypatch):
    mock_cuda(monkeypatch, (7, 5))
    with pytest.raises(ValueError, match=r"compute capability 8\.0 or more.*7\.5.*use fp16"):
        D.training_precision(torch.device("cuda"), "bf16")
    with pytest.raises(ValueError, match="use fp16"):
        D.sampling_precision(torch.device("cuda"), "bf16")
    with pytest.raises(ValueError, match="auto, bf16, fp16, fp32"):
        D.training_precision("cpu", "fp8")


def test_model_score_fn_is_float32_unless_asked(no_gpu, tiny_config):
    from pegasus_course.generate import model_score_fn

    torch.manual_seed(0)
    net = ScoreUNet(tiny_config).eval()
    x, sigma = torch.rand(2, 3, 32, 32), torch.tensor([1.0, 0.1])
    with torch.no_grad():
        exact = net(x, sigma)
        assert torch.equal(model_score_fn(net)(x, sigma), exact)  # no autocast: the very same numbers
        half = model_score_fn(net, precision="bf16")(x, sigma)
    assert half.dtype == torch.float32 and not torch.equal(half, exact)  # bf16 inside, float32 out
    assert torch.allclose(half, exact, rtol=0.1, atol=0.1 * float(exact.abs().max()))


# ---------------------------------------------------------------- device


def test_device_order_is_cuda_then_mps_then_cpu(no_gpu, monkeypatch):
    assert D.choose_device() == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert D.choose_device() == torch.device("mps")
    assert workflow.default_device() == torch.device("mps")  # what the notebooks call
    mock_cuda(monkeypatch, (8, 0))
    assert D.choose_device() == torch.device("cuda")
    monkeypatch.setenv(D.DEVICE_ENV, "cpu")  # the override wins
    assert D.choose_device() == torch.device("cpu") and workflow.default_device() == torch.device("cpu")
    assert D.choose_device("mps") == torch.device("mps")  # and an argument wins over the environment


def test_bad_device_names_say_what_to_do(no_gpu, monkeypatch):
    monkeypatch.setenv(D.DEVICE_ENV, "tpu")
    with pytest.raises(ValueError, match="PEGASUS_DEVICE=tpu is not a device: use cpu or cuda"):
        D.choose_device()
    monkeypatch.setenv(D.DEVICE_ENV, "mps")
    with pytest.raises(ValueError, match="MPS.*not available.*set PEGASUS_DEVICE=cpu"):
        D.choose_device()
    with pytest.raises(ValueError, match="CUDA is not available.*use --device cpu"):
        D.parse_device("cuda")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert D.parse_device("gpu") == torch.device("mps")  # "gpu" is the GPU there is


def test_cli_device_option_knows_mps(no_gpu, capsys):
    from pegasus_course.cli import main

    with pytest.raises(SystemExit) as stop:  # refused where argparse parses the option
        main(["sample", "--device", "mps", "--n", "1"])
    code, err = stop.value.code, capsys.readouterr().err
    assert code == 2 and "argument --device" in err and "MPS" in err and "--device cpu" in err


# ---------------------------------------------------------------- the MPS check


def _fake_mps(monkeypatch, wrong_by: float = 0.0, calls: list | None = None):
    """MPS "available", its kernels played by the CPU's; ``wrong_by`` is added to every network output."""
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(D, "_move", lambda model, device: model)
    monkeypatch.setattr(D, "_noise_on", lambda device: _noise_cpu())

    def evaluate(model, device, x, sigma):
        if calls is not None:
            calls.append(device)
        return model(x, sigma).float() + wrong_by

    monkeypatch.setattr(D, "_evaluate_on", evaluate)


def _noise_cpu():
    from pegasus_course.sampling import SeededNoise

    return SeededNoise([0, 1])(1, (2, 3, 8, 8), torch.device("cpu"), torch.float32)



def test_a_disagreeing_mps_falls_back_to_the_cpu_with_one_line(no_gpu, monkeypatch, tiny_config):
    _fake_mps(monkeypatch, wrong_by=1.0)
    said = []
    model = D.place_model(ScoreUNet(tiny_config), "mps", say=said.append)
    assert next(model.parameters()).device.type == "cpu"
    assert len(said) == 1 and "gave other results than the CPU" in said[0] and "on the CPU instead" in said[0]


def test_an_agreeing_mps_is_used_and_checked_once(no_gpu, monkeypatch, tiny_config):
    calls = []
    _fake_mps(monkeypatch, wrong_by=0.0, calls=calls)
    said = []
    first = D.place_model(ScoreUNet(tiny_config), "mps", say=said.append)
    D.place_model(ScoreUNet(tiny_config), "mps", say=said.append)  # same kind of model: the verdict stands
    assert said == [] and len(calls) == 1 and first.training  # nothing said; train/eval mode kept


def test_mps_that_fails_leaves_the_model_on_the_cpu(no_gpu, monkeypatch, tiny_config):
    # no fake kernels: this torch has no MPS, so moving there raises, as a broken MPS would
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    said = []
    model = D.place_model(ScoreUNet(tiny_config), None, say=said.append)  # None: the workflow's choice, mps
    assert next(model.parameters()).device.type == "cpu"
    assert len(said) == 1 and said[0].startswith("Apple GPU (mps) failed (") and "on the CPU instead" in said[0]
    out = model(torch.rand(1, 3, 32, 32), torch.ones(1))  # and it still works
    assert torch.isfinite(out).all()


def test_workflow_model_on_a_failing_mps_runs_on_the_cpu(no_gpu, monkeypatch, capsys):
    from pegasus_course import checkpoints

    if not checkpoints.DEFAULT_CHECKPOINT.is_file():
        pytest.skip("the shipped checkpoint is not in this checkout")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.delenv(workflow.MODEL_ENV, raising=False)
    assert workflow.default_device().type == "mps"
    model, _, how = workflow.load_or_train_model(get_profile("ci"))
    out = capsys.readouterr().out
    assert next(model.parameters()).device.type == "cpu" and "loaded the shipped model" in how
    assert out.count("Apple GPU (mps) failed") == 1 and "on the CPU instead" in out


# ---------------------------------------------------------------- the cost of a long cell


def test_expected_seconds_adds_up_batches_and_evaluations():
    cost = workflow.NetworkCost(device="cpu", precision="fp32", fixed=0.01, per_image=0.02, measured_batch=16)
    assert cost.evaluation(16) == pytest.approx(0.01 + 0.32)
    # 64 images in one batch, 1,161 evaluations (L = 232, T = 5, the denoising step)
    assert workflow.expected_seconds(64, 1161, cost) == pytest.approx(1161 * (0.01 + 64 * 0.02))
    # 300 images in batches of at most 256: one of 256 and one of 44
    assert cost.seconds(300, 2) == pytest.approx(2 * ((0.01 + 256 * 0.02) + (0.01 + 44 * 0.02)))
    assert workflow.format_duration(0.35) == "0.35 s" and workflow.format_duration(420) == "7.0 min"
    assert workflow.format_duration(1500) == "25 min" and workflow.format_duration(5400) == "1.5 h"


def test_measure_network_is_remembered(no_gpu, tiny_config):
    torch.manual_seed(0)
    cost = workflow.measure_network(ScoreUNet(tiny_config).eval(), batch=4, repeats=1)
    assert cost.device == "cpu" and cost.precision == D.sampling_precision("cpu").name and cost.measured_batch == 4
    assert cost.fixed >= 0 and cost.per_image >= 0 and cost.evaluation(4) > 0
    assert workflow.expected_seconds(4, 10) == pytest.approx(10 * cost.evaluation(4))
    lines = workflow.sampling_cost_lines(cost, get_profile("cpu"), 232, 5)
    assert "6 samples with L = 232, T = 5 (1,161 evaluations)" in lines[0] and "pegasus" not in lines[0]
