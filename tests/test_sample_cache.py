"""The sample cache: a hit gives the very image computed before without running the network, any change of
what determines an image misses, the bound evicts the least recently used, damage is a miss, two writers at
once leave whole files, and a learner's own guided score never goes near it."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from pegasus_course import sample_cache as sc
from pegasus_course.checks import float32_tolerance
from pegasus_course.classifier import ClassifierConfig, NoisyClassifier
from pegasus_course.generate import Guidance, Schedule, generate, pegasus_batch, pegasus_rows
from pegasus_course.nn import ScoreUNet, ScoreUNetConfig

REPO = Path(__file__).resolve().parents[1]
SHORT = Schedule(sigma_max=1.0, sigma_min=0.1, num_scales=3, n_steps_each=1)


@pytest.fixture
def cache_on(tmp_path, monkeypatch) -> Path:
    """The sample cache on, under this test's own PEGASUS_CACHE; the folder its images go to."""
    monkeypatch.setenv("PEGASUS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(sc.SAMPLES_ENV, "1")
    monkeypatch.delenv(sc.SAMPLES_MB_ENV, raising=False)
    return tmp_path / "cache" / "samples"


def counted(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` whose forward calls are counted in ``model.calls``."""
    model.calls = 0
    forward = model.forward

    def forward_counted(*args, **kwargs):
        model.calls += 1
        return forward(*args, **kwargs)

    model.forward = forward_counted
    return model


def tiny_model(seed: int = 0) -> ScoreUNet:
    torch.manual_seed(seed)
    return counted(ScoreUNet(ScoreUNetConfig.for_image_size(16, 8, num_res_blocks=1, attn_heads=2,
                                                             attn_dim_head=8)).eval())


def tiny_classifier(seed: int = 0) -> NoisyClassifier:
    torch.manual_seed(seed)
    return NoisyClassifier(ClassifierConfig(image_size=16, class_names=("horse", "bird"), base_channels=8,
                                            emb_dim=16)).eval()


def test_a_hit_is_the_computed_image_bit_for_bit_and_runs_no_network(cache_on, capsys):
    model = tiny_model()
    first = generate(model, [0, 1], SHORT)
    assert model.calls > 0
    assert capsys.readouterr().out.splitlines() == [
        "sample cache: loaded 0 of 2 images from $PEGASUS_CACHE/samples, computed 2 (PEGASUS_CACHE_SAMPLES=0 recomputes)"]
    assert len(list(cache_on.glob("*.safetensors"))) == 2
    fresh = generate(model, [0, 1], SHORT, cache=False)
    assert torch.equal(fresh, first) and capsys.readouterr().out == ""  # not consulted: no line
    calls = model.calls
    again = generate(model, [0, 1], SHORT)
    assert model.calls == calls and torch.equal(again, first) and again.device == first.device
    assert capsys.readouterr().out.splitlines() == [
        "sample cache: loaded 2 of 2 images from $PEGASUS_CACHE/samples (PEGASUS_CACHE_SAMPLES=0 recomputes)"]
    generate(model, [0, 1], SHORT, progress=False)
    assert capsys.readouterr().out == ""


def test_only_the_missing_images_are_sampled(cache_on, capsys):
    model = tiny_model()
    first = generate(model, [0, 1], SHORT, progress=False)
    more = generate(model, [1, 7, 0], SHORT)
    assert capsys.readouterr().out.startswith("sample cache: loaded 2 of 3 images from ")
    assert torch.equal(more[0], first[1]) and torch.equal(more[2], first[0])
    alone = generate(model, [1, 7, 0], SHORT, cache=False)  # another batch shape: float32 rounding apart
    assert torch.allclose(more, alone, atol=float32_tolerance(1.0, 3), rtol=0)


def test_pegasus_rows_and_batches_reuse_each_interpolant(cache_on, capsys):
    model = tiny_model()
    rows = pegasus_rows(model, [(0, 1)], 2, SHORT, progress=False)
    assert torch.equal(rows, pegasus_rows(model, [(0, 1)], 2, SHORT, cache=False))
    calls = model.calls
    part = pegasus_batch(model, [(0, 1)], 2, [3, 1], SHORT)
    assert model.calls == calls and torch.equal(part[0], rows[0, [3, 1]])
    assert "loaded 2 of 2 images" in capsys.readouterr().out
    wider = pegasus_batch(model, [(0, 1), (4, 5)], 2, [1, 2], SHORT)  # (0, 1) has both, (4, 5) neither
    assert "loaded 2 of 4 images" in capsys.readouterr().out
    assert torch.equal(wider[0], rows[0, [1, 2]])
    assert torch.allclose(wider, pegasus_batch(model, [(0, 1), (4, 5)], 2, [1, 2], SHORT, cache=False),
                          atol=float32_tolerance(1.0, 3), rtol=0)


def test_the_environment_switch_recomputes(cache_on, monkeypatch, capsys):
    model = tiny_model()
    first = generate(model, [3], SHORT, progress=False)
    monkeypatch.setenv(sc.SAMPLES_ENV, "0")
    calls = model.calls
    assert torch.equal(generate(model, [3], SHORT), first) and model.calls > calls
    assert capsys.readouterr().out == ""
    calls = model.calls
    generate(model, [3], SHORT, cache=True, progress=False)  # asked for by the call: on
    assert model.calls == calls


def _perturbed(model):
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 1e-3
    return model


def _other_default(monkeypatch):
    """The package's default sampling precision flipped: bf16 where it is float32 and float32 where the CPU's
    native bf16 already makes it bf16 (the key must follow the default, whichever way it changes)."""
    from pegasus_course import device

    real = device.sampling_precision

    def flipped(d, asked=None):
        if asked is not None:
            return real(d, asked)
        return device.Precision("fp32" if real(d).name == "bf16" else "bf16")

    monkeypatch.setattr(device, "sampling_precision", flipped)


def _half_eps(monkeypatch):
    real = Schedule.step_lr
    monkeypatch.setattr(Schedule, "step_lr", lambda self: 0.5 * real(self))


GUIDED = dict(guidance=("clf", 1.0), classes=["horse"])
SAMPLE_CHANGES = {  # name: (changes to the base call, a patch applied before the second call)
    "weights": ({}, lambda m, mp, call: _perturbed(call["model"])),
    "sigma_max": ({"schedule": dataclasses.replace(SHORT, sigma_max=1.5)}, None),
    "sigma_min": ({"schedule": dataclasses.replace(SHORT, sigma_min=0.2)}, None),
    "L": ({"schedule": dataclasses.replace(SHORT, num_scales=4)}, None),
    "T": ({"schedule": dataclasses.replace(SHORT, n_steps_each=2)}, None),
    "eps": ({}, lambda m, mp, call: _half_eps(mp)),
    "denoise": ({"denoise": False}, None),
    "seed": ({"seeds": [6]}, None),
    "precision default": ({}, lambda m, mp, call: _other_default(mp)),
}
GUIDED_CHANGES = {
    "guidance scale": ({"guidance": ("clf", 2.0)}, None),
    "classifier weights": ({"guidance": ("other clf", 1.0)}, None),
    "target class": ({"classes": ["bird"]}, None),
    "unguided": ({"guidance": None, "classes": None}, None),
}


def _call(model, clfs, seeds=(5,), schedule=SHORT, denoise=True, guidance=None, classes=None):
    g = None if guidance is None else Guidance(clfs[guidance[0]], guidance[1])
    return generate(model, list(seeds), schedule, denoise=denoise, guidance=g, classes=classes, progress=False)


@pytest.mark.parametrize("name, guided", [*[(name, False) for name in SAMPLE_CHANGES],
                                          *[(name, True) for name in ("weights", "T", "seed", *GUIDED_CHANGES)]])
def test_any_change_of_what_makes_a_sample_misses(cache_on, monkeypatch, name, guided):
    change, patch = {**SAMPLE_CHANGES, **GUIDED_CHANGES}[name]
    model, clfs = tiny_model(), {"clf": tiny_classifier(0), "other clf": tiny_classifier(1)}
    base = dict(GUIDED) if guided else {}
    _call(model, clfs, **base)
    calls = model.calls
    _call(model, clfs, **base)
    assert model.calls == calls, "the same call must hit"
    call = {"model": model, **base, **change}
    if patch is not None:
        patch(model, monkeypatch, call)
    _call(clfs=clfs, **call)
    assert model.calls > calls, f"changing {name} must miss"


PEGASUS_CHANGES = {  # name: (the base call's guidance scale, None unguided; the change)
    "pair": (None, {"pairs": [(0, 2)]}), "pair order": (None, {"pairs": [(1, 0)]}), "k": (None, {"ks": [2]}),
    "n": (None, {"n": 3}), "denoise": (None, {"denoise": False}),
    "L": (None, {"schedule": dataclasses.replace(SHORT, num_scales=4)}),
    "guidance scale": (1.0, {"scale": 2.0}), "ends": (1.0, {"ends": ("bird", "horse")}),
    "unguided": (1.0, {"scale": None}), "guided": (None, {"scale": 1.0}),
}


@pytest.mark.parametrize("name", PEGASUS_CHANGES)
def test_any_change_of_what_makes_an_interpolant_misses(cache_on, name):
    model, clf = tiny_model(), tiny_classifier()
    base_scale, change = PEGASUS_CHANGES[name]

    def call(pairs=((0, 1),), n=2, ks=(1,), schedule=SHORT, denoise=True, scale=base_scale, ends=("horse", "bird")):
        g = None if scale is None else Guidance(clf, scale)
        return pegasus_batch(model, list(pairs), n, list(ks), schedule, denoise=denoise, guidance=g, ends=ends,
                             progress=False)

    call()
    calls = model.calls
    call()
    assert model.calls == calls
    call(**change)
    assert model.calls > calls, f"changing {name} must miss"


@pytest.mark.parametrize("field, other", [
    ("seed", 2), ("eps", 0.1 + 2**-56), ("eps", 1), ("sigmas", torch.tensor([1.0, 0.5000001])),
    ("denoise", False), ("shape", [3, 32, 32]), ("precision", "bf16"), ("device", "cuda"), ("new field", 0)])
def test_sample_key_changes_with_every_field(field, other):
    base = {"seed": 1, "eps": 0.1, "sigmas": torch.tensor([1.0, 0.5]), "denoise": True, "shape": [3, 16, 16],
            "precision": "fp32", "device": "cpu"}
    key = sc.sample_key(**base)
    assert key == sc.sample_key(**dict(reversed(list(base.items()))))  # the order of the fields does not count
    assert sc.sample_key(**{**base, field: other}) != key


def test_sample_key_refuses_what_it_cannot_key():
    with pytest.raises(TypeError, match="cannot key a object"):
        sc.sample_key(x=object())
    with pytest.raises(ValueError, match="no fields given"):
        sc.sample_key()


def test_a_change_of_the_samplers_code_misses(cache_on, monkeypatch):
    """Images stored before an edit of sampling.py (or any of SAMPLER_MODULES) are not served after it."""
    model = tiny_model()
    generate(model, [0, 1], SHORT, progress=False)
    calls = model.calls
    generate(model, [0, 1], SHORT, progress=False)
    assert model.calls == calls  # same code: read back
    monkeypatch.setattr(sc, "sampler_code_hash", lambda: "0" * 64)
    generate(model, [0, 1], SHORT, progress=False)
    assert model.calls > calls, "an edited sampler must recompute"


def test_the_code_hash_is_of_the_sampler_modules_source_files():
    import hashlib

    folder = Path(sc.__file__).parent
    h = hashlib.sha256()
    for name in ("sampling", "interpolation", "generate", "classifier", "sigmas", "nn"):
        h.update(f"|{name}|".encode() + (folder / f"{name}.py").read_bytes())
    assert sc.sampler_code_hash() == h.hexdigest()
    with pytest.raises(ValueError, match="'code' is the sampler's own source hash"):
        sc.sample_key(code="mine")


@pytest.mark.parametrize("a, b, same", [
    (np.array(0.7), np.array(0.2), False),  # 0-d float arrays were truncated to 0 through __index__
    (np.array(0.7), torch.tensor(0.7, dtype=torch.float64), True),
    (np.array([0.5, 0.25]), torch.tensor([0.5, 0.25]), True),
    (np.float64(0.7), 0.7, True),  # its repr is "np.float64(0.7)": keyed by the value instead
    (np.float32(0.5), 0.5, True),
    (np.float32(0.7), np.float32(0.2), False),
    (np.int64(3), 3, True),
    (np.array(3), np.array(3.5), False),
    (True, 1, False),
])
def test_numpy_values_key_by_their_value(a, b, same):
    assert (sc.sample_key(eps=a) == sc.sample_key(eps=b)) is same


def test_weights_hash_follows_the_weights():
    a, b = tiny_model(0), tiny_model(0)
    assert sc.weights_hash(a) == sc.weights_hash(b)
    assert sc.weights_hash(_perturbed(b)) != sc.weights_hash(a)
    training, evaluating = sc.weights_hash(a.train()), sc.weights_hash(a.eval())
    assert training != evaluating  # the mode counts (dropout, batch statistics)
    assert sc.weights_hash(a.eval()) != sc.weights_hash(tiny_model(1))


def _entry_names(root: Path) -> set[str]:
    return {p.name.split(".")[0] for p in root.glob("*.safetensors")}


def test_eviction_removes_the_least_recently_used_first(tmp_path):
    cache = sc.SampleCache(tmp_path, max_bytes=10**9)
    keys = [sc.sample_key(i=i) for i in range(5)]
    for i, key in enumerate(keys):
        cache.put(key, torch.full((3, 4, 4), float(i)))
        os.utime(cache.path(key), ns=(10**18 + i * 10**9,) * 2)  # put one second apart, the first oldest
    one = cache.path(keys[0]).stat().st_size
    assert torch.equal(cache.get(keys[0]), torch.zeros(3, 4, 4))  # the oldest, used again: now the newest
    cache.max_bytes = 3 * one
    cache.put(sc.sample_key(i=5), torch.ones(3, 4, 4))
    assert _entry_names(tmp_path) == {keys[0], keys[4], sc.sample_key(i=5)}
    assert cache.size_bytes() == 3 * one
    assert cache.get(keys[1]) is None


def test_a_damaged_or_foreign_entry_is_a_miss_and_is_removed(tmp_path):
    cache = sc.SampleCache(tmp_path)
    a, b = sc.sample_key(i=0), sc.sample_key(i=1)
    cache.put(a, torch.rand(3, 4, 4))
    cache.path(b).write_bytes(cache.path(a).read_bytes())  # a's image under b's name
    assert cache.get(b) is None and not cache.path(b).exists()
    assert cache.get(a, shape=(3, 8, 8)) is None  # another shape than asked
    cache.path(a).write_bytes(b"\x00garbage")
    assert cache.get(a) is None and not cache.path(a).exists()


def test_generate_recomputes_a_damaged_entry(cache_on, capsys):
    model = tiny_model()
    first = generate(model, [0, 1], SHORT, progress=False)
    damaged = sorted(cache_on.glob("*.safetensors"))[0]
    damaged.write_bytes(damaged.read_bytes()[:40])  # cut short
    again = generate(model, [0, 1], SHORT)
    assert "loaded 1 of 2 images" in capsys.readouterr().out
    assert torch.allclose(again, first, atol=float32_tolerance(1.0, 3), rtol=0)
    assert len(list(cache_on.glob("*.safetensors"))) == 2


def test_an_unwritable_cache_does_not_stop_sampling(tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("PEGASUS_CACHE", str(tmp_path / "file"))
    monkeypatch.setenv(sc.SAMPLES_ENV, "1")
    images = generate(tiny_model(), [0], SHORT)
    assert images.shape == (1, 3, 16, 16)
    assert "computed 1 (could not store them: " in capsys.readouterr().out


WRITER = textwrap.dedent("""
    import sys, torch
    from pegasus_course.sample_cache import SampleCache, sample_key
    root, me, bound = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    cache = SampleCache(root, max_bytes=bound)
    shared = sample_key(shared=True)
    image = torch.arange(3 * 8 * 8, dtype=torch.float32).reshape(3, 8, 8)
    sys.stdin.readline()  # both start together
    for i in range(60):
        assert cache.put(shared, image), cache.failed
        assert cache.put(sample_key(writer=me, i=i), image + me)
        got = cache.get(shared)
        assert got is None or torch.equal(got, image), "a torn read"
    print("done")
""")


@pytest.mark.parametrize("bound", [10**9, 3000], ids=["roomy", "evicting"])
def test_two_writers_at_once_leave_whole_entries(tmp_path, bound):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(me), str(bound)], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for me in (1, 2)]
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [p.communicate(timeout=300) for p in procs]
    assert [r[0].strip() for r in results] == ["done", "done"], [r[1][-800:] for r in results]
    cache = sc.SampleCache(tmp_path, max_bytes=bound)
    image = torch.arange(3 * 8 * 8, dtype=torch.float32).reshape(3, 8, 8)
    names = _entry_names(tmp_path)
    assert not list(tmp_path.glob("*.tmp")), "a temporary file was left behind"
    for name in names:
        assert cache.get(name) is not None, "an unreadable entry was left"
    if bound == 10**9:
        assert len(names) == 1 + 2 * 60
        assert torch.equal(cache.get(sc.sample_key(shared=True)), image)
        assert torch.equal(cache.get(sc.sample_key(writer=2, i=59)), image + 2)


def test_a_learners_guided_score_never_reads_or_writes_the_cache(cache_on, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the cache was used")

    monkeypatch.setattr(sc.SampleCache, "get", refuse)
    monkeypatch.setattr(sc.SampleCache, "put", refuse)
    calls = []

    def mine(score_fn, classifier, x, sigma, y, scale):
        calls.append(len(x))
        return score_fn(x, sigma)

    model = tiny_model()
    guided = Guidance(tiny_classifier(), 1.0, guided_score=mine)
    for cache in (None, True):
        generate(model, [0], SHORT, guidance=guided, classes=["horse"], cache=cache, progress=False)
    assert calls and not cache_on.exists()


def test_default_cache_follows_the_call_then_the_environment(cache_on, monkeypatch):
    assert sc.default_cache(None).root == cache_on
    assert sc.default_cache(None).where == "$PEGASUS_CACHE/samples"  # no machine path in a notebook's output
    monkeypatch.delenv("PEGASUS_CACHE")
    assert sc.default_cache(None).where == "~/.cache/pegasus-course/samples"
    assert sc.SampleCache(Path.home() / "x").where == "~/x" and sc.SampleCache(cache_on).where == str(cache_on)
    monkeypatch.setenv("PEGASUS_CACHE", str(cache_on.parent))
    assert sc.default_cache(False) is None
    monkeypatch.setenv(sc.SAMPLES_ENV, "0")
    assert sc.default_cache(None) is None and sc.default_cache(True).root == cache_on
    monkeypatch.setenv(sc.SAMPLES_MB_ENV, "2")
    assert sc.default_cache(True).max_bytes == 2 * 2**20
    monkeypatch.delenv(sc.SAMPLES_MB_ENV)
    assert sc.default_cache(True).max_bytes == 512 * 2**20
    monkeypatch.setenv(sc.SAMPLES_MB_ENV, "lots")
    with pytest.raises(ValueError, match="PEGASUS_CACHE_SAMPLES_MB='lots': give the sample cache's size in MB"):
        sc.default_cache(True)
    with pytest.raises(TypeError, match="cache must be True, False or None"):
        sc.default_cache("yes")


def test_the_linear_mix_is_its_own_entry_and_the_package_row_of_interpolate(cache_on):
    """pegasus_batch(mix="linear") samples what interpolate(mix="linear") samples, and is cached apart from eq. 4."""
    from pegasus_course.interpolation import interpolate

    model = tiny_model()
    eq4 = pegasus_batch(model, [(0, 1)], 2, [1], SHORT, progress=False)
    calls = model.calls
    linear = pegasus_batch(model, [(0, 1)], 2, [1], SHORT, progress=False, mix="linear")
    assert model.calls > calls, "the linear mix must not be read from eq. 4's entry"
    calls = model.calls
    again = pegasus_batch(model, [(0, 1)], 2, [1], SHORT, progress=False, mix="linear")
    assert model.calls == calls and torch.equal(again, linear)
    from pegasus_course.generate import model_score_fn

    with torch.no_grad():  # in the package's sampling precision, as pegasus_batch samples
        direct = interpolate(model_score_fn(model, precision="auto"), (0, 1), 2, SHORT.sigmas(), SHORT.n_steps_each, SHORT.step_lr(),
                             image_shape=(3, 16, 16), ks=[1], mix="linear", progress=False).clamp(0, 1)
    assert torch.allclose(linear[0], direct, atol=1e-5) and not torch.allclose(linear, eq4, atol=1e-3)
    with pytest.raises(ValueError, match="mix 'cubic' is not one of eq4, linear"):
        pegasus_batch(model, [(0, 1)], 2, [1], SHORT, progress=False, mix="cubic")
