import math

import pytest
import torch

from pegasus_course import exercises as E
from pegasus_course import interpolation, losses, sigmas


@pytest.fixture(autouse=True)
def _fresh():
    E.reset_attempts()


def _twice(check, fn):
    first = check(fn, verbose=False)
    second = check(fn, verbose=False)
    return first, second


def _assert_caught(check, fn, words):
    E.reset_attempts()
    first, second = _twice(check, fn)
    assert first.status == second.status == "wrong"
    assert "likely mistake" not in first.message  # the first try gets the general hint only
    assert "likely mistake" in second.message and words in second.message, second.message


def test_stub_is_not_attempted_and_errors_do_not_raise():
    def stub(*a):
        raise NotImplementedError("write me")

    assert E.check_dsm_loss(stub, verbose=False).status == "not attempted"
    assert E.check_mix_noise(lambda *a: 1 / 0, verbose=False).status == "error"


def test_dsm_loss_checker():
    assert E.check_dsm_loss(lambda f, x, s, g: losses.dsm_loss(f, x, s, generator=g), verbose=False).passed

    def parts(f, x, s, g):
        lv = s[torch.randint(0, len(s), (x.shape[0],), generator=g)][:, None]
        z = torch.randn(x.shape, generator=g)
        return lv, z, f(x + lv * z, lv[:, 0])

    def unweighted(*a):
        lv, z, sc = parts(*a)
        return 0.5 * (sc + z / lv).pow(2).sum(1).mean()

    def summed(*a):
        lv, z, sc = parts(*a)
        return 0.5 * (lv * sc + z).pow(2).sum(1).sum()

    def sign(*a):
        lv, z, sc = parts(*a)
        return 0.5 * (lv * sc - z).pow(2).sum(1).mean()

    _assert_caught(E.check_dsm_loss, unweighted, "sigma^2 weighting")
    _assert_caught(E.check_dsm_loss, summed, "summed over the batch")
    _assert_caught(E.check_dsm_loss, sign, "wrong sign")


def test_langevin_step_checker():
    assert E.check_langevin_step(lambda x, s, a, z: x + a * s + math.sqrt(2 * a) * z, verbose=False).passed
    _assert_caught(E.check_langevin_step, lambda x, s, a, z: x + a * s + math.sqrt(a) * z, "sqrt(alpha)")
    _assert_caught(E.check_langevin_step, lambda x, s, a, z: x + a * s - math.sqrt(2 * a) * z, "sign of the noise")
    _assert_caught(E.check_langevin_step, lambda x, s, a, z: x - a * s + math.sqrt(2 * a) * z, "against the score")


def test_geometric_sigmas_checker():
    assert E.check_geometric_sigmas(sigmas.geometric_sigmas, verbose=False).passed
    _assert_caught(E.check_geometric_sigmas, lambda a, b, n: torch.linspace(a, b, n), "linear spacing")
    _assert_caught(E.check_geometric_sigmas, lambda a, b, n: sigmas.geometric_sigmas(a, b, n).flip(0), "ascending")
    _assert_caught(E.check_geometric_sigmas,
                   lambda a, b, n: torch.exp(torch.linspace(math.log(a), math.log(b), n - 1)), "too few")


def test_step_size_checker():
    assert E.check_step_size(lambda s, e: e * (s / s[-1]) ** 2, verbose=False).passed
    _assert_caught(E.check_step_size, lambda s, e: e * s / s[-1], "not squared")
    _assert_caught(E.check_step_size, lambda s, e: e * (s / s[0]) ** 2, "sigma_1 instead of sigma_L")
    _assert_caught(E.check_step_size, lambda s, e: torch.full_like(s, e), "not scaled")


def test_mix_noise_checker():
    assert E.check_mix_noise(interpolation.mix_noise, verbose=False).passed
    ang = lambda k, n: k * math.pi / (2 * (n + 1))  # noqa: E731
    _assert_caught(E.check_mix_noise, lambda a, b, k, n: math.sin(ang(k, n)) * a + math.cos(ang(k, n)) * b,
                   "sin and cos swapped")
    _assert_caught(E.check_mix_noise, lambda a, b, k, n: (1 - k / (n + 1)) * a + k / (n + 1) * b, "linear weights")
    _assert_caught(E.check_mix_noise,
                   lambda a, b, k, n: math.cos(k * math.pi / (2 * n)) * a + math.sin(k * math.pi / (2 * n)) * b,
                   "2 N")


def test_unrecognised_mistake_still_reported():
    res = E.check_mix_noise(lambda a, b, k, n: a * 0, verbose=False)
    again = E.check_mix_noise(lambda a, b, k, n: a * 0, verbose=False)
    assert res.status == again.status == "wrong" and again.diagnosis is None and "first mismatch" in again.message


def test_printed_verdict(capsys):
    E.check_step_size(lambda s, e: e * (s / s[-1]) ** 2)
    assert "[step_size] correct" in capsys.readouterr().out
