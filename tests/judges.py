"""A hand-set judge shared by the tests of the evaluation helpers."""

from types import SimpleNamespace

import torch


class FixedOdds(torch.nn.Module):
    """A three-class judge whose horse:bird odds are the image's first two pixels (red / green); its
    airplane logit is the largest, which a horse-against-bird probability must ignore."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(class_names=("airplane", "bird", "horse"), num_classes=3)
        self.p = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, sigma):
        logit_horse = x[:, 0, 0, 0].log() - x[:, 1, 0, 0].log()
        other = torch.full_like(logit_horse, 5.0)
        return torch.stack([other, torch.zeros_like(logit_horse), logit_horse], 1) + 0 * self.p
