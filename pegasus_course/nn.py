"""The score network of the paper's section 1.1: a DDPM-style U-Net with NCSNv2's parts.

Pieces, each an ``nn.Module`` because it learns:

* :class:`FourierEmbedding` - random Fourier features of log(sigma), then an MLP (score SDE);
* :class:`InstanceNormPlusPlus` - instance norm that gives back the per-channel means (NCSN);
* :class:`ResBlock` - InstanceNorm++, ELU, two 3x3 convolutions, the embedding added in between;
* :class:`LinearAttention` - attention whose cost is linear in the number of positions, with ReZero;
* :class:`ScoreUNet` - three down levels, a middle, three up levels, output divided by sigma.

Import classes by name (``from pegasus_course.nn import ScoreUNet``): a star import
would shadow ``torch.nn``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass

import torch
import torch.nn as tnn
import torch.nn.functional as F

from .checks import check_image_batch, check_sigmas


class FourierEmbedding(tnn.Module):
    """Gaussian random Fourier features of log(sigma) followed by a two-layer MLP.

    The frequencies W ~ N(0, scale^2) are drawn once and kept fixed (a buffer, saved
    with the weights but never trained): features = [sin(2 pi W log sigma), cos(...)].
    """

    def __init__(self, emb_dim: int, fourier_dim: int = 64, scale: float = 16.0):
        from .checks import check_number, check_positive_int

        super().__init__()
        check_positive_int(emb_dim, "FourierEmbedding: emb_dim")
        if check_positive_int(fourier_dim, "FourierEmbedding: fourier_dim", minimum=2) % 2:
            raise ValueError(f"FourierEmbedding: fourier_dim must be even (sin and cos features), got {fourier_dim}.")
        scale = check_number(scale, "FourierEmbedding: scale", positive=True)
        self.register_buffer("freqs", torch.randn(fourier_dim // 2) * scale)
        self.mlp = tnn.Sequential(tnn.Linear(fourier_dim, emb_dim), tnn.ELU(), tnn.Linear(emb_dim, emb_dim))

    def features(self, sigma: torch.Tensor) -> torch.Tensor:
        """The fixed Fourier features, (B,) -> (B, fourier_dim)."""
        angle = 2 * math.pi * sigma.float().log()[:, None] * self.freqs[None, :]  # (B, F/2)
        return torch.cat([angle.sin(), angle.cos()], dim=1)

    def forward(self, sigma: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.features(sigma))  # (B, emb_dim)


class InstanceNormPlusPlus(tnn.Module):
    """InstanceNorm++ (NCSN): instance normalisation plus a learned term from the channel means.

    Instance norm removes each channel's spatial mean mu_c, and with it the image's colour.
    InstanceNorm++ adds back alpha_c * (mu_c - m) / s, where m and s^2 are the mean and
    variance of the mu_c over channels, then scales and shifts:
    out = gamma_c * ((x - mu_c) / sigma_c + alpha_c (mu_c - m) / s) + beta_c.
    """

    def __init__(self, num_channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.gamma = tnn.Parameter(torch.ones(num_channels))
        self.alpha = tnn.Parameter(torch.ones(num_channels))
        self.beta = tnn.Parameter(torch.zeros(num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        means = x.float().mean(dim=(2, 3))  # (B, C)
        m = means.mean(dim=1, keepdim=True)  # (B, 1)
        v = means.var(dim=1, keepdim=True, unbiased=False)
        means_hat = (means - m) / torch.sqrt(v + self.eps)  # (B, C)
        h = F.instance_norm(x.float(), eps=self.eps)  # (B, C, H, W)
        h = h + (self.alpha * means_hat)[:, :, None, None]
        out = self.gamma[None, :, None, None] * h + self.beta[None, :, None, None]
        return out.to(x.dtype)


class ResBlock(tnn.Module):
    """InstanceNorm++ -> ELU -> 3x3 conv, + embedding, InstanceNorm++ -> ELU -> 3x3 conv, + skip."""

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int):
        super().__init__()
        self.norm1 = InstanceNormPlusPlus(in_channels)
        self.conv1 = tnn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb = tnn.Linear(emb_dim, out_channels)
        self.norm2 = InstanceNormPlusPlus(out_channels)
        self.conv2 = tnn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = tnn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else tnn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.elu(self.norm1(x)))  # (B, C_out, H, W)
        h = h + self.emb(F.elu(emb))[:, :, None, None]  # noise level enters here
        h = self.conv2(F.elu(self.norm2(h)))
        return self.skip(x) + h


class LinearAttention(tnn.Module):
    """Linear self-attention over the H*W positions, as a ReZero residual branch.

    Queries are softmaxed over their feature axis and keys over the positions, so
    context = sum_n k_n v_n^T is a (d x d) matrix per head and out_n = context^T q_n:
    cost O(N d^2) instead of O(N^2 d). The branch is multiplied by a scalar that
    starts at 0 (ReZero), so the block is the identity at initialisation.
    """

    def __init__(self, channels: int, heads: int = 4, dim_head: int = 32):
        super().__init__()
        self.heads, self.dim_head = heads, dim_head
        inner = heads * dim_head
        self.norm = InstanceNormPlusPlus(channels)
        self.to_qkv = tnn.Conv2d(channels, 3 * inner, 1, bias=False)
        self.to_out = tnn.Conv2d(inner, channels, 1)
        self.rezero = tnn.Parameter(torch.zeros(()))

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        """The attention branch alone (without ReZero and the residual)."""
        b, _, h, w = x.shape
        qkv = self.to_qkv(self.norm(x)).reshape(b, 3, self.heads, self.dim_head, h * w)  # (B, 3, h, d, N)
        q, k, v = qkv.unbind(1)  # each (B, h, d, N)
        q = q.softmax(dim=2) * self.dim_head**-0.5  # over features
        k = k.softmax(dim=3)  # over positions
        context = torch.einsum("bhdn,bhen->bhde", k, v)  # (B, h, d, d): N summed out, so linear in N
        out = torch.einsum("bhde,bhdn->bhen", context, q)  # (B, h, d, N)
        return self.to_out(out.reshape(b, self.heads * self.dim_head, h, w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.rezero * self.attend(x)


@dataclass(frozen=True)
class ScoreUNetConfig:
    """Sizes of a :class:`ScoreUNet`; plain values only, so it round-trips through JSON."""

    image_size: int = 32
    in_channels: int = 3
    base_channels: int = 64
    channel_mults: tuple[int, int, int] = (1, 2, 2)
    num_res_blocks: int = 2
    emb_dim: int = 256
    fourier_dim: int = 64
    fourier_scale: float = 16.0
    attn_heads: int = 4
    attn_dim_head: int = 32

    def __post_init__(self):
        for name in ("image_size", "in_channels", "base_channels", "num_res_blocks", "emb_dim", "fourier_dim",
                     "attn_heads", "attn_dim_head"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"ScoreUNetConfig: {name} must be a positive whole number, got {v!r}.")
            object.__setattr__(self, name, int(v))
        if self.fourier_dim % 2:
            raise ValueError(f"ScoreUNetConfig: fourier_dim must be even (sin and cos features), got {self.fourier_dim}.")
        if isinstance(self.fourier_scale, bool) or not isinstance(self.fourier_scale, numbers.Real) or not (
                math.isfinite(self.fourier_scale) and self.fourier_scale > 0):
            raise ValueError(f"ScoreUNetConfig: fourier_scale must be a positive finite number, got {self.fourier_scale!r}.")
        if self.image_size % 8 != 0:
            raise ValueError(f"image_size={self.image_size} is not divisible by 8 (three 2x poolings).")
        mults = self.channel_mults
        if isinstance(mults, (str, bytes)) or not hasattr(mults, "__len__") or len(mults) != 3 or any(
                isinstance(m, bool) or not isinstance(m, numbers.Integral) or m < 1 for m in mults):
            raise ValueError(f"channel_mults needs three positive whole numbers (three levels), got {mults!r}.")
        object.__setattr__(self, "channel_mults", tuple(int(m) for m in self.channel_mults))

    @classmethod
    def for_image_size(cls, image_size: int, base_channels: int | None = None, **overrides) -> "ScoreUNetConfig":
        """Defaults per size: 32 (CIFAR-10), 48 and 64 (STL-10); ``base_channels`` from the profile."""
        mults = {32: (1, 2, 2), 48: (1, 2, 3), 64: (1, 2, 4)}.get(image_size, (1, 2, 2))
        base = base_channels if base_channels is not None else 64
        kwargs = dict(image_size=image_size, base_channels=base, channel_mults=mults, emb_dim=4 * base)
        kwargs.update(overrides)
        return cls(**kwargs)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channel_mults"] = list(self.channel_mults)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ScoreUNetConfig":
        """The config a checkpoint stored; refuses keys it does not know (another network, or a typo)."""
        if not isinstance(d, dict):
            raise ValueError(f"ScoreUNetConfig.from_dict: expected a mapping of sizes, got {type(d).__name__}.")
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"ScoreUNetConfig: unknown key(s) {unknown}; known: {', '.join(cls.__dataclass_fields__)}.")
        return cls(**d)


class _Level(tnn.Module):
    def __init__(self, blocks: list[ResBlock], attn: LinearAttention):
        super().__init__()
        self.blocks = tnn.ModuleList(blocks)
        self.attn = attn


class ScoreUNet(tnn.Module):
    """s_theta(x, sigma): the U-Net of the paper's section 1.1; returns a score of x's shape.

    down x3: ResBlock(s) -> (skip) -> 2x2 average pooling -> linear attention
    middle:  ResBlock -> linear attention -> ResBlock
    up x3:   nearest 2x upsampling -> concat skip -> ResBlock(s) -> linear attention
    The output is divided by sigma (NCSNv2 technique 3).
    """

    def __init__(self, config: ScoreUNetConfig):
        super().__init__()
        self.config = config
        c = config
        chs = [c.base_channels * m for m in c.channel_mults]
        attn = lambda ch: LinearAttention(ch, c.attn_heads, c.attn_dim_head)  # noqa: E731
        self.embed = FourierEmbedding(c.emb_dim, c.fourier_dim, c.fourier_scale)
        self.conv_in = tnn.Conv2d(c.in_channels, c.base_channels, 3, padding=1)
        self.down = tnn.ModuleList()
        prev = c.base_channels
        for ch in chs:
            blocks = [ResBlock(prev if b == 0 else ch, ch, c.emb_dim) for b in range(c.num_res_blocks)]
            self.down.append(_Level(blocks, attn(ch)))
            prev = ch
        self.mid1 = ResBlock(prev, prev, c.emb_dim)
        self.mid_attn = attn(prev)
        self.mid2 = ResBlock(prev, prev, c.emb_dim)
        self.up = tnn.ModuleList()
        for ch in reversed(chs):
            blocks = [ResBlock(prev + ch if b == 0 else ch, ch, c.emb_dim) for b in range(c.num_res_blocks)]
            self.up.append(_Level(blocks, attn(ch)))
            prev = ch
        self.norm_out = InstanceNormPlusPlus(prev)
        self.conv_out = tnn.Conv2d(prev, c.in_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, "ScoreUNet", self.config.in_channels)
        if not torch.is_tensor(sigma):
            raise TypeError(f"ScoreUNet: sigma must be a tensor of shape ({x.shape[0]},), one level per image, got "
                            f"{type(sigma).__name__}; use torch.full((B,), sigma).")
        b, ch, h, w = x.shape
        if h % 8 or w % 8:
            raise ValueError(f"Input of {h}x{w} pixels: height and width must be divisible by 8 (three poolings).")
        if ch != self.config.in_channels:
            raise ValueError(f"Expected {self.config.in_channels} channels, got {ch}.")
        if sigma.shape != (b,):
            raise ValueError(f"sigma must hold one value per image, shape ({b},), got {tuple(sigma.shape)}.")
        check_sigmas(sigma, "ScoreUNet")
        emb = self.embed(sigma)  # (B, E)
        hid = self.conv_in(x)  # (B, C0, H, W)
        skips = []
        for level in self.down:
            for block in level.blocks:
                hid = block(hid, emb)
            skips.append(hid)
            hid = level.attn(F.avg_pool2d(hid, 2))  # (B, C_i, H/2^i, W/2^i)
        hid = self.mid2(self.mid_attn(self.mid1(hid, emb)), emb)  # (B, C2, H/8, W/8)
        for level in self.up:
            hid = F.interpolate(hid, scale_factor=2.0, mode="nearest")
            hid = torch.cat([hid, skips.pop()], dim=1)  # (B, C + C_i, ., .)
            for block in level.blocks:
                hid = block(hid, emb)
            hid = level.attn(hid)
        out = self.conv_out(F.elu(self.norm_out(hid)))  # (B, 3, H, W)
        # NCSNv2 technique 3; divided in float32 so that bf16 autocast keeps the small-sigma scores accurate
        return out.float() / sigma.float()[:, None, None, None]


@torch.no_grad()
def stage_shapes(model: ScoreUNet, x: torch.Tensor, sigma: torch.Tensor) -> list[tuple[str, tuple[int, ...]]]:
    """The activation shape after each stage of the U-Net, in order, for one forward pass."""
    shapes: list[tuple[str, tuple[int, ...]]] = [("input", tuple(x.shape))]
    hooks = [model.conv_in.register_forward_hook(lambda m, i, o: shapes.append(("conv_in", tuple(o.shape))))]
    names = [(f"down {i + 1}", lvl) for i, lvl in enumerate(model.down)]
    names += [("middle", model.mid2)] + [(f"up {3 - i}", lvl) for i, lvl in enumerate(model.up)]
    for name, mod in names:
        target = mod.attn if isinstance(mod, _Level) else mod
        hooks.append(target.register_forward_hook(lambda m, i, o, name=name: shapes.append((name, tuple(o.shape)))))
    try:
        out = model(x, sigma)
    finally:
        for h in hooks:
            h.remove()
    return shapes + [("output (score)", tuple(out.shape))]


def count_parameters(module: tnn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def parameter_table(model: ScoreUNet) -> dict[str, int]:
    """Parameters per part of the U-Net, for notebook 03's table."""
    parts = {"embedding": model.embed, "conv_in": model.conv_in}
    for i, level in enumerate(model.down):
        parts[f"down {i + 1}"] = level
    parts["middle"] = tnn.ModuleList([model.mid1, model.mid_attn, model.mid2])
    for i, level in enumerate(model.up):
        parts[f"up {3 - i}"] = level
    parts["output"] = tnn.ModuleList([model.norm_out, model.conv_out])
    return {name: count_parameters(m) for name, m in parts.items()}


def softmax_attention(x: torch.Tensor, to_qkv: tnn.Conv2d, heads: int, dim_head: int) -> torch.Tensor:
    """Standard (quadratic) self-attention with the same projections, for cost comparisons: O(N^2 d)."""
    b, _, h, w = x.shape
    q, k, v = to_qkv(x).reshape(b, 3, heads, dim_head, h * w).unbind(1)  # (B, h, d, N)
    attn = torch.einsum("bhdn,bhdm->bhnm", q, k).mul(dim_head**-0.5).softmax(-1)  # (B, h, N, N)
    return torch.einsum("bhnm,bhdm->bhdn", attn, v)


@torch.no_grad()
def compare_attention_cost(sizes=(32, 48, 64, 96), channels: int = 64, batch: int = 4, repeats: int = 3):
    """Milliseconds of linear vs softmax attention at each input side (full resolution, for contrast)."""
    import time

    att = LinearAttention(channels)
    rows = []
    for size in sizes:
        x = torch.randn(batch, channels, size, size)
        timings = []
        for fn in (lambda: att.attend(x), lambda: softmax_attention(x, att.to_qkv, att.heads, att.dim_head)):
            fn()
            t0 = time.perf_counter()
            for _ in range(repeats):
                fn()
            timings.append(1000 * (time.perf_counter() - t0) / repeats)
        rows.append((size, size * size, *timings))
    return rows


@torch.no_grad()
def level_similarity(embed: FourierEmbedding, sigmas: torch.Tensor, after_mlp: bool = True) -> torch.Tensor:
    """Cosine similarity between the noise-level embeddings of every pair of levels, (L, L).

    ``after_mlp=False`` compares the fixed random Fourier features; ``True`` the embedding the
    ResBlocks receive (features, then the learned MLP)."""
    sigmas = check_sigmas(torch.as_tensor(sigmas, dtype=torch.float32), "level_similarity").to(embed.freqs.device)
    v = embed(sigmas) if after_mlp else embed.features(sigmas)
    v = F.normalize(v.float(), dim=1)
    return (v @ v.T).cpu()
