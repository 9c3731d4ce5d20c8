import dataclasses

import pytest
import torch

from pegasus_course import profiles


def test_named_profiles_and_case(monkeypatch):
    monkeypatch.delenv("PEGASUS_PROFILE", raising=False)
    assert profiles.get_profile("ci").name == "ci"
    assert profiles.get_profile(" GPU ").name == "gpu"


def test_environment_variable_wins_over_default(monkeypatch):
    monkeypatch.setenv("PEGASUS_PROFILE", "ci")
    assert profiles.get_profile().name == "ci"


def test_default_follows_cuda(monkeypatch):
    monkeypatch.delenv("PEGASUS_PROFILE", raising=False)
    expected = "gpu" if torch.cuda.is_available() else "cpu"
    assert profiles.get_profile().name == expected
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert profiles.get_profile().name == "gpu"


def test_unknown_profile_lists_valid(monkeypatch):
    monkeypatch.setenv("PEGASUS_PROFILE", "tpu")
    with pytest.raises(ValueError, match=r"Unknown profile 'tpu'.*ci, cpu, gpu"):
        profiles.get_profile()


def test_profiles_share_fields_and_are_frozen():
    p = profiles.get_profile("cpu")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.batch_size = 3
    assert {f.name for f in dataclasses.fields(profiles.PROFILES["ci"])} == {f.name for f in dataclasses.fields(p)}
    assert profiles.PROFILES["gpu"].num_scales == 232 and profiles.PROFILES["gpu"].batch_size == 128
    assert profiles.PROFILES["ci"].train_steps < profiles.PROFILES["cpu"].train_steps < profiles.PROFILES["gpu"].train_steps
