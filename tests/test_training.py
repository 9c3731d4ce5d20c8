import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from pegasus_course import checkpoints as C, training as T
from pegasus_course.nn import ScoreUNet
from pegasus_course.sigmas import geometric_sigmas


def _images(n=64, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, 1, 1, generator=g) * 255  # flat colours: easy to learn
    return base.expand(n, 3, size, size).round().to(torch.uint8).contiguous()


def _model(cfg):
    torch.manual_seed(0)
    return ScoreUNet(cfg)


SIGMAS = geometric_sigmas(5.0, 0.1, 4)


def test_loss_goes_down_on_a_fixed_batch(tiny_config):
    model = _model(tiny_config)
    cfg = T.TrainConfig(steps=60, batch_size=16, lr=2e-3, log_every=10)
    state = T.train(model, _images(16), SIGMAS, cfg, progress=False)
    first, last = sum(state.losses[:10]) / 10, sum(state.losses[-10:]) / 10
    assert len(state.losses) == 60 and last < 0.7 * first


def test_ema_update_formula():
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    ea = [p.detach().clone() for p in a.parameters()]
    T.ema_update(a, b, 0.9)
    for e, p, q in zip(ea, b.parameters(), a.parameters()):
        assert torch.allclose(q, 0.9 * e + 0.1 * p)


def test_checkpoint_roundtrip_bit_exact(tmp_path, tiny_config):
    model = _model(tiny_config)
    cfg = T.TrainConfig(steps=3, batch_size=8, log_every=1)
    state = T.train(model, _images(16), SIGMAS, cfg, progress=False)
    T.save_train_state(state, tmp_path / "c.safetensors", cfg, {"schedule": {"num_scales": 4}})
    back = C.load_checkpoint(tmp_path / "c.safetensors")
    for k, v in T.state_tensors(state).items():
        assert torch.equal(back.tensors[k], v.cpu()), k
    assert back.step == 3 and back.meta["schedule"] == {"num_scales": 4}
    assert back.model_config == tiny_config.to_dict()


def test_resume_equals_uninterrupted(tmp_path, tiny_config):
    data = _images(40)
    full = T.train(_model(tiny_config), data, SIGMAS, T.TrainConfig(steps=8, batch_size=8, log_every=2),
                   progress=False)
    half_cfg = T.TrainConfig(steps=4, batch_size=8, log_every=2)
    T.train(_model(tiny_config), data, SIGMAS, half_cfg, checkpoint_path=tmp_path / "h.safetensors", progress=False)
    model = _model(tiny_config)
    cfg = T.TrainConfig(steps=8, batch_size=8, log_every=2)
    state = T.resume_state(tmp_path / "h.safetensors", model, cfg)
    assert state.step == 4
    resumed = T.train(model, data, SIGMAS, cfg, state=state, progress=False)
    assert resumed.losses == full.losses
    for (n, p), q in zip(full.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(p, q), n
    for p, q in zip(full.ema.parameters(), resumed.ema.parameters()):
        assert torch.equal(p, q)


def test_epoch_batches_cover_the_data_and_shard():
    b = T.EpochBatches(20, 5, seed=1)
    epoch0 = torch.cat([b(i) for i in range(4)])
    assert sorted(epoch0.tolist()) == list(range(20))
    assert not torch.equal(torch.cat([b(i) for i in range(4, 8)]), epoch0)
    r0, r1 = T.EpochBatches(20, 5, 1, rank=0, world=2), T.EpochBatches(20, 5, 1, rank=1, world=2)
    both = torch.cat([r0(0), r0(1), r1(0), r1(1)])
    assert sorted(both.tolist()) == list(range(20))
    with pytest.raises(ValueError, match="batch"):
        T.EpochBatches(3, 5, 0)


def test_nan_guard_names_the_step(tmp_path, tiny_config):
    model = _model(tiny_config)
    calls = {"n": 0}
    original = model.forward

    def poisoned(x, sigma):
        calls["n"] += 1
        out = original(x, sigma)
        return out * float("nan") if calls["n"] == 5 else out

    model.forward = poisoned
    cfg = T.TrainConfig(steps=8, batch_size=8, log_every=4)
    with pytest.raises(FloatingPointError, match="at step 5"):
        T.train(model, _images(16), SIGMAS, cfg, checkpoint_path=tmp_path / "c.safetensors", progress=False)
    assert not (tmp_path / "c.safetensors").exists()


def test_atomic_write_keeps_previous_on_interruption(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    C.save_checkpoint({"model.w": torch.ones(3)}, {"step": 1}, path)
    import safetensors.torch as st

    def crash(*a, **k):
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(st, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        C.save_checkpoint({"model.w": torch.zeros(3)}, {"step": 2}, path)
    back = C.load_checkpoint(path)
    assert back.step == 1 and torch.equal(back.tensors["model.w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]


def test_kill_during_write_leaves_previous(tmp_path):
    """A real SIGKILL while a big checkpoint is being written."""
    path = tmp_path / "c.safetensors"
    C.save_checkpoint({"model.w": torch.ones(3)}, {"step": 1}, path)
    code = textwrap.dedent(f"""
        import torch, sys
        from pegasus_course.checkpoints import save_checkpoint
        print("go", flush=True)
        while True:
            save_checkpoint({{"model.w": torch.zeros(40_000_000)}}, {{"step": 2}}, r"{path}")
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    proc.stdout.readline()
    # Kill it while a write is in progress: once its temporary file exists (waits for the file, not a guess).
    deadline = 120.0
    import time
    start = time.monotonic()
    while not list(tmp_path.glob(".c.safetensors.*.tmp")):
        assert time.monotonic() - start < deadline and proc.poll() is None, "no write started"
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    back = C.load_checkpoint(path)  # either the old or a complete new one, never a torn file
    assert back.step in (1, 2) and back.tensors["model.w"].numel() in (3, 40_000_000)


def test_mismatched_truncated_foreign(tmp_path, tiny_config):
    from safetensors.torch import save_file

    model = _model(tiny_config)
    cfg = T.TrainConfig(steps=1, batch_size=8)
    T.train(model, _images(8), SIGMAS, cfg, checkpoint_path=tmp_path / "c.safetensors", progress=False)
    other = ScoreUNet(tiny_config.__class__.for_image_size(32, 16, num_res_blocks=1, attn_heads=2, attn_dim_head=8))
    with pytest.raises(C.CheckpointError, match="base_channels: model has 16, checkpoint has 8"):
        T.resume_state(tmp_path / "c.safetensors", other, cfg)
    raw = (tmp_path / "c.safetensors").read_bytes()
    (tmp_path / "t.safetensors").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(C.CheckpointError, match="truncated"):
        C.load_checkpoint(tmp_path / "t.safetensors")
    save_file({"w": torch.ones(2)}, str(tmp_path / "f.safetensors"))
    with pytest.raises(C.CheckpointError, match="not a pegasus-course checkpoint"):
        C.load_checkpoint(tmp_path / "f.safetensors")
    with pytest.raises(FileNotFoundError, match="pegasus-course train"):
        C.load_checkpoint(tmp_path / "none.safetensors")


def test_sharded_checkpoint_roundtrip(tmp_path):
    tensors = {"model.a": torch.arange(1000.0), "model.b": torch.ones(10, 10), "ema.a": torch.zeros(300)}
    files = C.save_checkpoint(tensors, {"step": 5}, tmp_path / "s", max_shard_bytes=1024)
    assert len(files) > 2 and all(f.stat().st_size < 2048 for f in files)
    back = C.load_checkpoint(tmp_path / "s")
    assert all(torch.equal(back.tensors[k], v) for k, v in tensors.items()) and back.step == 5
    files[-1].unlink()
    with pytest.raises(C.CheckpointError, match="incomplete"):
        C.load_checkpoint(tmp_path / "s")


WORKER = """
import os, sys, torch, torch.distributed as dist
sys.path.insert(0, {repo!r})
from pegasus_course import training as T
from pegasus_course.nn import ScoreUNet, ScoreUNetConfig
from pegasus_course.sigmas import geometric_sigmas
rank, world, device = T.setup_distributed()
torch.manual_seed(rank)  # different initial weights on purpose: DDP must broadcast rank 0's
cfg = ScoreUNetConfig.for_image_size(32, 8, num_res_blocks=1, attn_heads=2, attn_dim_head=8)
model = ScoreUNet(cfg)
images = (torch.rand(32, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
out = sys.argv[1]
state = T.train(model, images, geometric_sigmas(5.0, 0.1, 4), T.TrainConfig(steps=3, batch_size=4, log_every=1),
                checkpoint_path=os.path.join(out, "ckpt.safetensors"), progress=False)
torch.save({{k: v for k, v in model.state_dict().items()}}, os.path.join(out, f"rank{{rank}}.pt"))
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_two_process_gloo_ranks_agree(tmp_path):
    from tests.conftest import REPO

    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(repo=str(REPO)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(script), str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "GLOO_SOCKET_IFNAME": "lo"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    w0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    assert C.load_checkpoint(tmp_path / "ckpt.safetensors").step == 3  # written once, by rank 0


def test_two_runs_with_one_seed_match_and_another_seed_differs(tiny_config):
    data = _images(24)
    cfg = T.TrainConfig(steps=4, batch_size=8, log_every=2, seed=3)
    a = T.train(_model(tiny_config), data, SIGMAS, cfg, progress=False)
    b = T.train(_model(tiny_config), data, SIGMAS, cfg, progress=False)
    c = T.train(_model(tiny_config), data, SIGMAS, T.TrainConfig(steps=4, batch_size=8, log_every=2, seed=4),
                progress=False)
    assert a.losses == b.losses and a.losses != c.losses
    assert all(torch.equal(p, q) for p, q in zip(a.ema.parameters(), b.ema.parameters()))


def test_step_draws_are_seeded_by_step_and_flip_half_the_batch():
    data = torch.arange(8 * 3 * 2 * 2, dtype=torch.uint8).view(8, 3, 2, 2)
    levels = torch.tensor([4.0, 2.0, 1.0])
    idx = torch.arange(8)
    x1, s1, z1 = T.step_draws(data, levels, idx, T.make_generator(T.step_seed(0, 5)))
    x2, s2, z2 = T.step_draws(data, levels, idx, T.make_generator(T.step_seed(0, 5)))
    assert torch.equal(x1, x2) and torch.equal(s1, s2) and torch.equal(z1, z2)
    _, _, z3 = T.step_draws(data, levels, idx, T.make_generator(T.step_seed(0, 6)))
    assert not torch.equal(z1, z3)  # another step, other draws
    clean = data.float() / 255
    flipped = [bool(torch.equal(x1[i], clean[i].flip(-1))) and not torch.equal(clean[i], clean[i].flip(-1))
               for i in range(8)]
    kept = [bool(torch.equal(x1[i], clean[i])) for i in range(8)]
    assert all(f != k for f, k in zip(flipped, kept))  # each image is either flipped or kept, exactly
    assert set(s1.tolist()) <= set(levels.tolist()) and z1.shape == x1.shape
    assert T.step_seed(0, 5) != T.step_seed(0, 6) != T.step_seed(1, 5) and T.step_seed(0, 5, 1) != T.step_seed(0, 5, 0)


def test_a_learners_step_fn_drives_the_loop_like_the_package_step(tiny_config):
    from pegasus_course.exercises.nb04 import mistake_step as _mistake_step

    mine = _mistake_step("none")  # a learner-style step, written out, with no mistake planted

    data = _images(24)
    cfg = T.TrainConfig(steps=3, batch_size=8, log_every=1, ema_decay=0.9)
    ref = T.train(_model(tiny_config), data, SIGMAS, cfg, progress=False)
    got = T.train(_model(tiny_config), data, SIGMAS, cfg, progress=False, step_fn=mine)
    assert torch.allclose(torch.tensor(got.losses), torch.tensor(ref.losses), rtol=1e-5)
    for p, q in zip(ref.ema.parameters(), got.ema.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    calls = []
    T.train(_model(tiny_config), data, SIGMAS, cfg, progress=False,
            step_fn=lambda *a: calls.append(a[3].shape) or mine(*a))
    assert calls == [torch.Size([8, 3, 32, 32])] * 3


def _signalling_step(signals: list[int]):
    """A step that, on its first call, sends itself ``signals`` (as a learner's Ctrl-C during the first step's
    torch.compile would), then trains normally."""
    calls = []

    def step(m, ema, opt, x, sigma, z, decay):
        if not calls:
            calls.append(1)
            for signum in signals:
                os.kill(os.getpid(), signum)
        return T.training_step(m, ema, opt, x, sigma, z, decay)

    return step


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_in_the_first_step_is_acknowledged_at_once_and_stops_after_it(tmp_path, tiny_config, capsys, signum):
    cfg = T.TrainConfig(steps=5, batch_size=8, log_every=5)
    path = tmp_path / "c.safetensors"
    with pytest.raises(T.TrainingInterrupted) as stop:
        T.train(_model(tiny_config), _images(16), SIGMAS, cfg, checkpoint_path=path, progress=False,
                step_fn=_signalling_step([signum]))
    err = capsys.readouterr().err
    assert "stopping after the running step, then writing a checkpoint; press Ctrl-C again" in err, err
    assert stop.value.step == 1 and stop.value.signum == signum and str(path) in stop.value.saved
    assert C.load_checkpoint(path).step == 1


def test_a_second_ctrl_c_stops_at_once_and_keeps_the_last_checkpoint(tmp_path, tiny_config, capsys):
    cfg = T.TrainConfig(steps=5, batch_size=8, log_every=5)
    path = tmp_path / "c.safetensors"
    C.save_checkpoint({"model.w": torch.ones(3)}, {"step": 0}, path)
    before = path.read_bytes()
    handler = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN in a job started in the background
    with pytest.raises(T.TrainingInterrupted) as stop:
        T.train(_model(tiny_config), _images(16), SIGMAS, cfg, checkpoint_path=path, progress=False,
                step_fn=_signalling_step([signal.SIGINT, signal.SIGINT]))
    assert stop.value.step == 0 and "second signal" in stop.value.saved and "no checkpoint" in stop.value.saved
    assert path.read_bytes() == before  # the earlier checkpoint is untouched
    assert signal.getsignal(signal.SIGINT) is handler  # the handlers are restored


@pytest.mark.parametrize("seed,error", [(1.7, TypeError), (True, TypeError), ("3", TypeError), (-1, ValueError),
                                        (2**64, ValueError)])
def test_make_generator_refuses_what_is_no_seed(seed, error):
    with pytest.raises(error, match="make_generator: the seed must be"):
        T.make_generator(seed)


def test_make_generator_takes_every_64_bit_seed_a_step_uses():
    a, b = T.make_generator(2**64 - 1), T.make_generator(T.step_seed(2**63 - 1, 10**6, 7))
    assert torch.rand(1, generator=a).item() != torch.rand(1, generator=b).item()
    assert torch.equal(torch.rand(3, generator=T.make_generator(5)), torch.rand(3, generator=T.make_generator(5)))
