"""CPU sampling precision: the package's samplers run the network in bf16 autocast on a CPU with native bf16
(unless PEGASUS_CPU_BF16=0), learners' model_score_fn stays float32, and the sample cache's key
(sampling_precision(device, None)) names the precision actually used. Native bf16 is mocked both ways."""

from __future__ import annotations

import pytest
import torch

from pegasus_course import device as D
from pegasus_course.generate import model_score_fn, sampling_score_fn
from pegasus_course.nn import ScoreUNet


@pytest.fixture
def cpu_only(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.delenv(D.DEVICE_ENV, raising=False)
    monkeypatch.delenv(D.CPU_BF16_ENV, raising=False)


def set_cpu(monkeypatch, native: bool, env: str | None):
    monkeypatch.setattr(D, "cpu_native_bf16", lambda: native)
    if env is None:
        monkeypatch.delenv(D.CPU_BF16_ENV, raising=False)
    else:
        monkeypatch.setenv(D.CPU_BF16_ENV, env)


@pytest.mark.parametrize("native,env,expected", [
    (True, None, "bf16"), (True, "1", "bf16"), (True, "", "bf16"), (True, "0", None), (True, " 0 ", None),
    (False, None, None), (False, "1", None), (False, "0", None)])
def test_cpu_fast_precision_needs_native_bf16_and_no_opt_out(cpu_only, monkeypatch, native, env, expected):
    set_cpu(monkeypatch, native, env)
    assert D.cpu_fast_precision() == expected
    p = D.sampling_precision("cpu")
    assert p.name == (expected or "fp32") and p.autocast == (expected == "bf16")
    assert D.sampling_precision("cpu", None).name == p.name  # the cache's key sees the same mode
    assert D.sampling_precision("cpu", "fp32").name == "fp32"  # asked for: always honoured


@pytest.mark.parametrize("native,env,words", [
    (True, None, ["bf16 autocast on this CPU", f"{D.MEASURED_CPU_BF16_SPEEDUP:g}x faster", "PEGASUS_CPU_BF16=0"]),
    (True, "0", ["float32 on this CPU", "PEGASUS_CPU_BF16=0"]),
    (False, None, ["float32 on this CPU", "no native bf16"])])
def test_describe_sampling_mode_says_which_and_how_to_change_it(cpu_only, monkeypatch, native, env, words):
    set_cpu(monkeypatch, native, env)
    line = D.describe_sampling_mode("cpu")
    assert "\n" not in line and all(w in line for w in words), line


def test_gpus_and_mps_keep_float32_for_sampling(cpu_only, monkeypatch):
    set_cpu(monkeypatch, True, None)
    assert D.sampling_precision("mps").name == "fp32"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert D.sampling_precision("cuda").name == "fp32"
    assert D.describe_sampling_mode("cuda") == "sampling in float32 on cuda"


def test_native_bf16_probe_is_false_where_torch_cannot_tell(monkeypatch):
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert D.cpu_native_bf16() is False
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)

    class NoProbe:  # a torch build without torch.ops.mkldnn._is_mkldnn_bf16_supported
        pass

    monkeypatch.setattr(torch.ops, "mkldnn", NoProbe())
    assert D.cpu_native_bf16() is False

    class FailingProbe:
        @staticmethod
        def _is_mkldnn_bf16_supported():
            raise RuntimeError("not compiled with oneDNN")

    monkeypatch.setattr(torch.ops, "mkldnn", FailingProbe())
    assert D.cpu_native_bf16() is False


@pytest.fixture
def tiny_net(tiny_config):
    torch.manual_seed(0)
    return ScoreUNet(tiny_config).eval()


def _inputs():
    g = torch.Generator().manual_seed(1)
    return torch.randn(4, 3, 32, 32, generator=g), torch.tensor([20.0, 1.0, 0.1, 0.01])


@torch.no_grad()
def test_samplers_use_bf16_where_chosen_and_it_agrees_with_float32(cpu_only, monkeypatch, tiny_net):
    x, sigma = _inputs()
    exact = tiny_net(x, sigma)
    set_cpu(monkeypatch, True, None)
    fast = sampling_score_fn(tiny_net, 4)(x, sigma)
    assert fast.dtype == torch.float32 and not torch.equal(fast, exact)  # bf16 inside, float32 out
    # bf16 keeps 8 bits of mantissa (relative rounding 2^-9 = 2e-3 per operation); a few dozen layers stay
    # within a few percent of float32 in norm
    rel = float((fast - exact).norm() / exact.norm())
    assert rel < 3e-2, rel
    # the same numbers as an explicit bf16 score_fn: the mode the cache key names is the mode used
    assert torch.equal(fast, model_score_fn(tiny_net, precision=D.sampling_precision("cpu", None).name)(x, sigma))
    set_cpu(monkeypatch, True, "0")
    assert torch.equal(sampling_score_fn(tiny_net, 4)(x, sigma), exact)
    set_cpu(monkeypatch, False, None)
    assert torch.equal(sampling_score_fn(tiny_net, 4)(x, sigma), exact)


@torch.no_grad()
@pytest.mark.parametrize("native,env", [(True, None), (False, None), (True, "0")])
def test_model_score_fn_stays_float32_by_default(cpu_only, monkeypatch, tiny_net, native, env):
    set_cpu(monkeypatch, native, env)
    x, sigma = _inputs()
    assert torch.equal(model_score_fn(tiny_net)(x, sigma), tiny_net(x, sigma))
