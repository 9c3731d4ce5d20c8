"""Reading a training run (notebook 04): legs, images seen, Adam's step sizes, the EMA's memory; and the
one-point shell model of notebook 05. Values are worked by hand."""

import math

import pytest
import torch

from pegasus_course.shell_model import shell_ratios
from pegasus_course.training_report import (SHIPPED_LEGS, Leg, adam_last_update, around_boundaries, check_legs,
                                            ema_start_weight, ema_window_weight, images_seen, mean_2se)


def test_images_seen_adds_each_legs_batch():
    assert images_seen([Leg(0, 2, 3), Leg(2, 3, 5)]).tolist() == [3.0, 6.0, 11.0]


def test_shipped_legs_see_the_readmes_5_05_million_images():
    assert images_seen(SHIPPED_LEGS)[-1] == 5_875 * 128 + 8_400 * 512  # 5,052,800


@pytest.mark.parametrize("legs, steps", [([Leg(0, 2, 3), Leg(3, 4, 3)], None),  # a gap
                                         ([Leg(1, 2, 3)], None),  # not from step 0
                                         ([Leg(0, 2, 0)], None),  # batch 0
                                         ([Leg(0, 2, 3)], 5),  # another run's history
                                         ([], None)])
def test_bad_legs_are_refused(legs, steps):
    with pytest.raises(ValueError, match="check_legs"):
        check_legs(legs, steps)


@pytest.mark.parametrize("values, mean, two_se", [([1.0, 3.0], 2.0, 2.0), ([5.0, 5.0, 5.0], 5.0, 0.0),
                                                  ([0.0, 0.0, 0.0, 4.0], 1.0, 2.0)])
def test_mean_2se(values, mean, two_se):
    m, e = mean_2se(values)
    assert m == pytest.approx(mean) and e == pytest.approx(two_se)


def test_mean_2se_needs_two_values():
    with pytest.raises(ValueError, match="at least 2"):
        mean_2se([1.0])


def test_around_boundaries_by_hand():
    (b,) = around_boundaries([1.0, 1.0, 3.0, 5.0], [Leg(0, 2, 4), Leg(2, 4, 8)], width=2)
    assert (b["step"], b["batch_before"], b["batch_after"]) == (2, 4, 8)
    assert b["before"] == pytest.approx((1.0, 0.0)) and b["after"] == pytest.approx((4.0, 2.0))
    assert (b["max_before"], b["max_after"]) == (1.0, 5.0)


def test_adam_last_update_is_the_last_steps_change():
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(50))
    opt = torch.optim.Adam([p], lr=0.1)
    for _ in range(3):
        before = p.detach().clone()
        opt.zero_grad()
        p.grad = torch.randn(50) * 100  # Adam's step does not grow with the gradient's scale
        opt.step()
    moved = adam_last_update(opt)
    assert torch.allclose(moved, (p.detach() - before).abs(), atol=1e-6)
    assert moved.max() < 0.1 * 3.2  # |m_hat| / sqrt(v_hat) <= (1 - beta1) / sqrt(1 - beta2) after few steps


def test_adam_first_step_moves_every_weight_by_lr():
    p = torch.nn.Parameter(torch.zeros(4))
    opt = torch.optim.Adam([p], lr=0.01)
    p.grad = torch.tensor([2.0, -3.0, 0.5, 7.0])
    opt.step()  # m_hat = g, v_hat = g^2: the step is lr * sign(g)
    assert torch.allclose(adam_last_update(opt), torch.full((4,), 0.01), atol=1e-7)


def test_adam_last_update_needs_a_step():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    with pytest.raises(ValueError, match="no step"):
        adam_last_update(opt)


@pytest.mark.parametrize("decay, steps, weight", [(0.5, 3, 0.125), (0.999, 0, 1.0), (0.999, 1000, 0.999 ** 1000)])
def test_ema_start_weight(decay, steps, weight):
    assert ema_start_weight(decay, steps) == pytest.approx(weight)


def test_ema_window_weight_of_the_last_thousand_steps():
    assert ema_window_weight(0.999, 1000) == pytest.approx(1 - math.exp(1000 * math.log(0.999)))
    assert ema_window_weight(0.999, 1000) == pytest.approx(0.632, abs=1e-3)


def test_shell_ratio_exact_score_settles_at_the_stationary_variance():
    # Last level sigma_L = 1, eps = 0.5: x <- 0.5 x + z, stationary variance 1 / (1 - 0.25) = 4/3 per coordinate.
    ratios = shell_ratios(torch.tensor([2.0, 1.0]), 0.5, 200, dim=4096, chains=8)
    assert ratios[-1] == pytest.approx(math.sqrt(4 / 3), abs=0.01)


def test_shell_ratio_fixed_length_score_lies_further_out():
    sigmas = torch.tensor([4.0, 2.0, 1.0])
    exact = shell_ratios(sigmas, 0.05, 5, dim=1024, score="exact")
    fixed = shell_ratios(sigmas, 0.05, 5, dim=1024, score="fixed-length")
    assert (fixed[1:] > exact[1:]).all()


def test_shell_ratio_refuses_an_unknown_score():
    with pytest.raises(ValueError, match="score must be one of"):
        shell_ratios(torch.tensor([2.0, 1.0]), 0.5, 2, score="learned")


def test_training_figures_are_wide_enough_and_refuse_bad_series():
    from pegasus_course.plotting_training import plot_level_losses, plot_loss_legs

    fig = plot_loss_legs([3.0, 2.0, 2.5, 1.0], [Leg(0, 2, 4), Leg(2, 4, 8)], smooth=2)
    assert fig.get_size_inches()[0] * fig.dpi >= 500
    fig = plot_level_losses([1.0, 0.1], {"w": torch.ones(2, 3)})
    assert fig.get_size_inches()[0] * fig.dpi >= 500
    with pytest.raises(ValueError, match="levels, images"):
        plot_level_losses([1.0, 0.1], {"w": torch.ones(3, 3)})
