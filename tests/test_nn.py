import pytest
import torch
import torch.nn.functional as F

from pegasus_course.checks import float32_tolerance
from pegasus_course.nn import (FourierEmbedding, InstanceNormPlusPlus, LinearAttention, ResBlock, ScoreUNet,
                               ScoreUNetConfig, count_parameters, parameter_table)


@pytest.mark.parametrize("size,batch", [(32, 3), (48, 1), (64, 5)])
def test_output_shape_equals_input(size, batch):
    cfg = ScoreUNetConfig.for_image_size(size, 8, num_res_blocks=1, attn_heads=2, attn_dim_head=8)
    net = ScoreUNet(cfg)
    x = torch.rand(batch, 3, size, size)
    assert net(x, torch.rand(batch) + 0.1).shape == x.shape


def test_clear_errors(tiny_config):
    net = ScoreUNet(tiny_config)
    with pytest.raises(ValueError, match="divisible by 8"):
        net(torch.rand(1, 3, 30, 30), torch.ones(1))
    with pytest.raises(ValueError, match="one value per image"):
        net(torch.rand(2, 3, 32, 32), torch.ones(1))
    with pytest.raises(ValueError, match="divisible by 8"):
        ScoreUNetConfig(image_size=36)


def test_instance_norm_pp_against_its_formula():
    torch.manual_seed(0)
    norm = InstanceNormPlusPlus(4)
    with torch.no_grad():
        norm.gamma.copy_(torch.tensor([1.0, 2.0, 0.5, 1.5]))
        norm.alpha.copy_(torch.tensor([0.3, -1.0, 2.0, 1.0]))
        norm.beta.copy_(torch.tensor([0.1, 0.0, -0.2, 0.3]))
    x = torch.randn(2, 4, 5, 6) * 3 + torch.arange(4.0).view(1, 4, 1, 1)
    out = norm(x)
    mu = x.mean((2, 3), keepdim=True)
    var = x.var((2, 3), keepdim=True, unbiased=False)
    m = mu.mean(1, keepdim=True)
    s2 = mu.var(1, keepdim=True, unbiased=False)
    expect = norm.gamma.view(1, 4, 1, 1) * ((x - mu) / torch.sqrt(var + 1e-5)
                                            + norm.alpha.view(1, 4, 1, 1) * (mu - m) / torch.sqrt(s2 + 1e-5)) \
        + norm.beta.view(1, 4, 1, 1)
    assert torch.allclose(out, expect, atol=1e-5)
    # what instance norm loses and InstanceNorm++ keeps: two images differing only by channel offsets
    shifted = x + torch.tensor([0.0, 5.0, -3.0, 1.0]).view(1, 4, 1, 1)
    assert torch.allclose(F.instance_norm(x), F.instance_norm(shifted), atol=1e-5)
    assert not torch.allclose(norm(x), norm(shifted), atol=1e-2)


def test_rezero_attention_is_identity_at_init_and_not_after():
    att = LinearAttention(16, heads=2, dim_head=8)
    x = torch.randn(2, 16, 8, 8)
    assert torch.equal(att(x), x)
    with torch.no_grad():
        att.rezero.fill_(0.5)
    assert not torch.allclose(att(x), x)


def test_linear_attention_permutation_equivariant():
    torch.manual_seed(0)
    att = LinearAttention(8, heads=2, dim_head=4)
    x = torch.randn(1, 8, 4, 4)
    perm = torch.randperm(16)
    out = att.attend(x).flatten(2)[:, :, perm]
    out_perm = att.attend(x.flatten(2)[:, :, perm].view(1, 8, 4, 4)).flatten(2)
    # permuting the positions reorders the attention's sums: equal up to float32 rounding
    assert torch.allclose(out, out_perm, rtol=0, atol=float32_tolerance(float(out.detach().abs().max())))


def test_output_norm_scales_as_one_over_sigma(tiny_config):
    torch.manual_seed(0)
    net = ScoreUNet(tiny_config)
    x = torch.rand(2, 3, 32, 32)
    norms = {}
    for s in (0.01, 1.0, 50.0):
        norms[s] = net(x, torch.full((2,), s)).norm().item() * s  # ~constant if output ~ 1/sigma
    ratio = max(norms.values()) / min(norms.values())
    assert ratio < 3.0, norms  # while the raw outputs differ by a factor 5000


def test_gradients_reach_every_parameter(tiny_config):
    net = ScoreUNet(tiny_config)
    with torch.no_grad():  # ReZero scalars start at 0, which would block the attention weights' gradients
        for m in net.modules():
            if isinstance(m, LinearAttention):
                m.rezero.fill_(0.1)
    net(torch.rand(2, 3, 32, 32), torch.rand(2) + 0.1).square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []


def test_bf16_autocast_close_to_fp32(tiny_config):
    torch.manual_seed(0)
    net = ScoreUNet(tiny_config)
    x, s = torch.rand(2, 3, 32, 32), torch.full((2,), 0.5)
    ref = net(x, s)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = net(x, s)
    rel = ((low.float() - ref).norm() / ref.norm()).item()
    assert rel < 0.05, rel  # stated tolerance: 5% relative error in bf16


def test_channels_last_matches(tiny_config):
    net = ScoreUNet(tiny_config)
    x, s = torch.rand(2, 3, 32, 32), torch.full((2,), 0.5)
    ref = net(x, s)
    net = net.to(memory_format=torch.channels_last)
    # channels-last runs other convolution kernels: the same sums in another order, so float32 rounding apart
    tol = float32_tolerance(float(ref.detach().abs().max()))
    assert torch.allclose(net(x.contiguous(memory_format=torch.channels_last), s), ref, rtol=0, atol=tol)


def test_fourier_embedding_fixed_frequencies():
    emb = FourierEmbedding(16, 8)
    assert "freqs" in dict(emb.named_buffers()) and all("freqs" not in n for n, _ in emb.named_parameters())
    assert emb(torch.tensor([0.1, 10.0])).shape == (2, 16)


def test_resblock_skip_and_parameter_table(tiny_config):
    blk = ResBlock(4, 8, 16)
    assert blk(torch.randn(2, 4, 8, 8), torch.randn(2, 16)).shape == (2, 8, 8, 8)
    net = ScoreUNet(tiny_config)
    assert sum(parameter_table(net).values()) == count_parameters(net)


def test_config_roundtrip():
    cfg = ScoreUNetConfig.for_image_size(48, 32)
    assert ScoreUNetConfig.from_dict(cfg.to_dict()) == cfg


def test_traces_under_torch_compile(tiny_config):
    net = ScoreUNet(tiny_config)
    x, s = torch.rand(2, 3, 32, 32), torch.full((2,), 0.5)
    compiled = torch.compile(net, backend="aot_eager", fullgraph=True)  # fullgraph: no graph breaks
    ref = net(x, s)
    assert torch.allclose(compiled(x, s), ref, rtol=0, atol=float32_tolerance(float(ref.detach().abs().max())))


def test_stage_shapes_follow_the_u(tiny_config):
    from pegasus_course.nn import stage_shapes

    net = ScoreUNet(tiny_config)
    shapes = dict(stage_shapes(net, torch.rand(2, 3, 32, 32), torch.ones(2)))
    assert shapes["down 1"] == (2, 8, 16, 16) and shapes["down 3"] == (2, 16, 4, 4)
    assert shapes["middle"] == (2, 16, 4, 4) and shapes["up 1"] == (2, 8, 32, 32)
    assert shapes["output (score)"] == (2, 3, 32, 32)
