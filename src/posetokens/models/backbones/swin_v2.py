"""Swin Transformer V2 backbone as PCT configures it (``SwinV2TransformerRPE2FC``): B, L and H.

Forward pass (spec: ``shared/specs/pct.md`` §3):

1. Patch embedding: 4x4 conv, LayerNorm -> a stride-4 token map (B, H/4, W/4, C).
2. Four stages of res-post-norm blocks ``x + LN(attn(x))``, ``x + LN(mlp(x))``. Attention runs in
   non-overlapping windows (shifted by half a window in every second block of the stages with
   ``use_shift``), as **scaled cosine attention**: ``cos(q, k) * exp(min(logit_scale, log 100))`` plus a
   **continuous position bias**: a 2->512->heads MLP over log-spaced relative coordinates
   (normalised by the pretraining window, x8, ``sign * log2(1 + |x|) / 3``), squashed to ``16 sigmoid``.
   q and v have a bias, k has none. Shifted windows get the classic -100 region mask.
3. Patch merging (2x2 neighbours concatenated, Linear 4C->2C, LayerNorm) at the end of stages 1-3.
4. Output: the stride-32 map of stage 4 after a final LayerNorm, (B, 8C, H/32, W/32).

Every LayerNorm has eps 1e-6 and runs in float32. The position-coordinate table and the relative index
are rebuilt from the window sizes (non-persistent buffers); :func:`convert_official_swin_v2` maps the
official key layout (``layers.{i}.blocks.{j}.attn.rpe_mlp``, ``norm3``) to ours and checks those buffers.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from posetokens.layers import DropPath, FusableBlock, FusedLinear, Mlp, fused_attn_enabled
from posetokens.layers.checks import tracing
from posetokens.registry import rename_by_rules


# --------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class SwinV2Cfg:
    """Swin V2 hyperparameters (per-stage tuples have one entry per stage)."""

    embed_dim: int = 128
    depths: tuple[int, ...] = (2, 2, 18, 2)
    num_heads: tuple[int, ...] = (4, 8, 16, 32)
    window_size: tuple[int, ...] = (16, 16, 16, 8)
    pretrain_window_size: tuple[int, ...] = (12, 12, 12, 6)
    use_shift: tuple[bool, ...] = (True, True, False, False)
    patch_size: int = 4
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.3
    cpb_hidden: int = 512
    norm_eps: float = 1e-6

    @property
    def num_stages(self) -> int:
        """Number of stages."""
        return len(self.depths)

    @property
    def num_features(self) -> int:
        """Channels of the output (last-stage) map."""
        return self.embed_dim * 2 ** (self.num_stages - 1)

    @property
    def stride(self) -> int:
        """Output stride."""
        return self.patch_size * 2 ** (self.num_stages - 1)

    def validate(self) -> None:
        """Raise ``ValueError`` for inconsistent sizes."""
        n = self.num_stages
        for name in ("num_heads", "window_size", "pretrain_window_size", "use_shift"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"SwinV2Cfg.{name} needs {n} entries (one per stage), got {getattr(self, name)}")
        for i, h in enumerate(self.num_heads):
            if (self.embed_dim * 2**i) % h:
                raise ValueError(f"SwinV2Cfg: stage {i} width {self.embed_dim * 2**i} is not divisible by {h} heads")
        for i, (w, p) in enumerate(zip(self.window_size, self.pretrain_window_size)):
            if w < 2 or p < 2:
                raise ValueError(f"SwinV2Cfg: stage {i} window {w} / pretrain window {p} must be >= 2")


SWIN_V2_B = SwinV2Cfg()
SWIN_V2_L = SwinV2Cfg(embed_dim=192, num_heads=(6, 12, 24, 48), drop_path_rate=0.5)
SWIN_V2_H = SwinV2Cfg(embed_dim=256, depths=(2, 2, 42, 2), num_heads=(8, 16, 32, 64), drop_path_rate=0.5)


# --------------------------------------------------------------------------------------------- blocks
class LayerNormFP32(nn.LayerNorm):
    """LayerNorm computed in float32 (the output keeps the input dtype)."""

    def forward(self, x: Tensor) -> Tensor:
        """Normalise the last dimension in float32."""
        return F.layer_norm(x.float(), self.normalized_shape, self.weight.float(), self.bias.float(), self.eps).type_as(x)


def log_spaced_coords_table(window: int, pretrain_window: int) -> Tensor:
    """Relative coordinates (1, 2w-1, 2w-1, 2) of a window, normalised by the pretraining window, x8 and
    log-spaced: ``sign(t) * log2(1 + |t|) / log2(8)`` ("norm8_log_bylayer")."""
    r = torch.arange(-(window - 1), window, dtype=torch.float32)
    table = torch.stack(torch.meshgrid(r, r, indexing="ij"), dim=-1)[None]
    table = table / (pretrain_window - 1) * 8
    return torch.sign(table) * torch.log2(table.abs() + 1.0) / math.log2(8)


def relative_position_index(window: int) -> Tensor:
    """(w*w, w*w) index into the flattened (2w-1)^2 coordinate table for every query/key pair."""
    c = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (c[:, :, None] - c[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def shift_window_mask(hp: int, wp: int, window: int, shift: int, device: torch.device) -> Tensor:
    """(nW, N, N) additive mask of shifted windows: 0 within a region, -100 across regions."""
    img = torch.zeros(hp, wp, device=device)
    cuts = ((0, hp - window), (hp - window, hp - shift), (hp - shift, hp))
    cols = ((0, wp - window), (wp - window, wp - shift), (wp - shift, wp))
    label = 0
    for r0, r1 in cuts:
        for c0, c1 in cols:
            img[r0:r1, c0:c1] = label
            label += 1
    win = img.reshape(hp // window, window, wp // window, window).transpose(1, 2).reshape(-1, window * window)
    diff = win[:, None, :] - win[:, :, None]
    return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)


# the mask depends on sizes only: built once per (size, window, shift, device), shared read-only by the blocks;
# only outside tracing: a mask built inside an export is a fake tensor, and every later call would compute on it
_shift_window_mask_cached = functools.lru_cache(maxsize=16)(shift_window_mask)


def window_partition(x: Tensor, window: int) -> Tensor:
    """(B, H, W, C) -> (B, nW, w*w, C), windows in row-major order."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // window, window, w // window, window, c).transpose(2, 3)
    return x.reshape(b, (h // window) * (w // window), window * window, c)


def window_merge(x: Tensor, window: int, h: int, w: int) -> Tensor:
    """Inverse of :func:`window_partition`: (B, nW, w*w, C) -> (B, H, W, C)."""
    b, _, _, c = x.shape
    x = x.reshape(b, h // window, w // window, window, window, c).transpose(2, 3)
    return x.reshape(b, h, w, c)


class WindowAttention(FusableBlock):
    """Scaled cosine window attention with the log-spaced continuous position bias (q/v bias only)."""

    fused = False  # the inference form (fuse_for_inference): qkv one fused Linear with its q/0/v bias

    def __init__(self, dim: int, num_heads: int, window: int, pretrain_window: int, cpb_hidden: int = 512) -> None:
        super().__init__()
        self.num_heads, self.window = num_heads, window
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(num_heads, 1, 1)))
        self.cpb_mlp = nn.Sequential(nn.Linear(2, cpb_hidden), nn.ReLU(inplace=True), nn.Linear(cpb_hidden, num_heads, bias=False))
        self.register_buffer("coords_table", log_spaced_coords_table(window, pretrain_window), persistent=False)
        self.register_buffer("rel_index", relative_position_index(window), persistent=False)
        self.qkv = nn.Linear(dim, dim * 3, bias=False)  # called functionally with the q/0/v bias
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def position_bias(self) -> Tensor:
        """(heads, N, N) continuous position bias, ``16 * sigmoid(cpb_mlp(table))``."""
        n = self.window * self.window
        table = self.cpb_mlp(self.coords_table).reshape(-1, self.num_heads).float()
        # elementwise, so squashing the (2w-1)^2 table before the gather gives the same values N^2 / (2w-1)^2
        # times cheaper; gathering along the rows of the transposed table writes (h, N, N) contiguously
        table = (16 * torch.sigmoid(table)).t().contiguous()
        return table.index_select(1, self.rel_index.reshape(-1)).reshape(-1, n, n)

    def qkv_bias(self) -> Tensor:
        """The qkv projection's bias: the q bias, zeros for k, the v bias."""
        return torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))

    def fuse_for_inference(self) -> None:
        """Inference form, in place: ``qkv`` becomes a :class:`~posetokens.layers.FusedLinear` whose bias is the
        q/0/v bias concatenated once (instead of at every call), so the bias runs inside the GEMM."""
        qkv = self.qkv if isinstance(self.qkv, FusedLinear) else FusedLinear.from_linear(self.qkv)
        qkv.bias = nn.Parameter(self.qkv_bias().detach(), requires_grad=False)
        self.qkv, self.fused = qkv, True

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Attention within windows: x (B, nW, N, C), mask (nW, N, N) or None -> (B, nW, N, C)."""
        b, nw, n, c = x.shape
        if self.fused:
            qkv = self.qkv(x)
        else:
            qkv = F.linear(x, self.qkv.weight, self.qkv_bias())
        qkv = qkv.reshape(b, nw, n, 3, self.num_heads, c // self.num_heads)
        qkv = qkv.permute(3, 0, 1, 4, 2, 5)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, nW, h, N, d)
        scale = torch.clamp(self.logit_scale, max=math.log(100.0)).exp().float()
        q = F.normalize(q.float(), dim=-1) * scale
        k = F.normalize(k.float(), dim=-1)
        pos = self.position_bias()  # (h, N, N)
        if fused_attn_enabled():
            # SDPA's fast CPU kernel takes 4-D input only (5-D falls back to the slow math path): one bias
            # for every window folds the windows into the batch (views); a per-window shift mask folds
            # them into the heads, with the bias and mask combined once per call.
            h, v = self.num_heads, v.float()
            if mask is None:
                out = F.scaled_dot_product_attention(
                    q.flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1), attn_mask=pos[None], scale=1.0
                )
            else:
                attn_bias = (pos[None] + mask[:, None]).reshape(1, nw * h, n, n)
                q, k, v = (t.reshape(b, nw * h, n, c // h) for t in (q, k, v))
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias, scale=1.0)
            out = out.reshape(b, nw, h, n, c // h)
        else:
            attn_bias = pos[None, None] if mask is None else pos[None, None] + mask[None, :, None]
            out = ((q @ k.transpose(-2, -1)) + attn_bias).softmax(dim=-1) @ v.float()
        out = out.type_as(x).transpose(2, 3).reshape(b, nw, n, c)
        return self.proj(out)


class SwinV2Block(nn.Module):
    """Res-post-norm block: ``x + LN(attn(x))`` then ``x + LN(mlp(x))``, (shifted) window attention."""

    def __init__(self, dim: int, num_heads: int, window: int, pretrain_window: int, shift: int, mlp_ratio: float,
                 drop_path: float, cpb_hidden: int, eps: float) -> None:
        super().__init__()
        if not 0 <= shift < window:
            raise ValueError(f"SwinV2Block: shift {shift} must be in [0, window {window})")
        self.window, self.shift = window, shift
        self.attn = WindowAttention(dim, num_heads, window, pretrain_window, cpb_hidden)
        self.norm1 = LayerNormFP32(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.norm2 = LayerNormFP32(dim, eps=eps)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """x (B, H, W, C) with H, W multiples of the window (the stage pads)."""
        _, h, w, _ = x.shape
        y = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2)) if self.shift else x
        y = self.attn(window_partition(y, self.window), mask if self.shift else None)
        y = window_merge(y, self.window, h, w)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + self.drop_path(self.norm1(y))
        return x + self.drop_path(self.norm2(self.mlp(x)))


class PatchMerging(nn.Module):
    """2x2 neighbours concatenated (order (0,0), (1,0), (0,1), (1,1)), Linear 4C -> 2C, LayerNorm."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = LayerNormFP32(2 * dim, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        """(B, H, W, C) -> (B, ceil(H/2), ceil(W/2), 2C)."""
        _, h, w, _ = x.shape
        if h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat((x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]), dim=-1)
        return self.norm(self.reduction(x))


class SwinV2Stage(nn.Module):
    """Blocks of one stage (shift every second block when enabled), then optional patch merging."""

    def __init__(self, cfg: SwinV2Cfg, i: int, drop_paths: list[float], downsample: bool) -> None:
        super().__init__()
        dim, win = cfg.embed_dim * 2**i, cfg.window_size[i]
        self.window = win
        self.shift = win // 2 if cfg.use_shift[i] else 0
        self.blocks = nn.ModuleList(
            SwinV2Block(dim, cfg.num_heads[i], win, cfg.pretrain_window_size[i], self.shift if j % 2 else 0,
                        cfg.mlp_ratio, drop_paths[j], cfg.cpb_hidden, cfg.norm_eps)
            for j in range(cfg.depths[i])
        )
        self.downsample = PatchMerging(dim, cfg.norm_eps) if downsample else None

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, H, W, C) -> (stage output (B, H, W, C), input of the next stage)."""
        _, h, w, _ = x.shape
        pad_b, pad_r = (-h) % self.window, (-w) % self.window
        y = F.pad(x, (0, 0, 0, pad_r, 0, pad_b)) if pad_b or pad_r else x
        mask = None
        if self.shift:  # a tracer's tensors (export, compile, jit) must not enter the process-wide cache
            build = shift_window_mask if tracing() else _shift_window_mask_cached
            mask = build(h + pad_b, w + pad_r, self.window, self.shift, x.device)
        for blk in self.blocks:
            if pad_b or pad_r:  # each block sees the zero-padded map, as the official code does
                y = F.pad(y[:, :h, :w], (0, 0, 0, pad_r, 0, pad_b))
            y = blk(y, mask)
        y = y[:, :h, :w]
        return y, (self.downsample(y) if self.downsample is not None else y)


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection (conv) and LayerNorm."""

    def __init__(self, patch: int, dim: int, eps: float) -> None:
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)
        self.norm = LayerNormFP32(dim, eps=eps)

    def forward(self, img: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, H/p, W/p, C) (right/bottom zero padding to a multiple of p)."""
        h, w = img.shape[-2:]
        if h % self.patch or w % self.patch:
            img = F.pad(img, (0, (-w) % self.patch, 0, (-h) % self.patch))
        return self.norm(self.proj(img).permute(0, 2, 3, 1))


# ---------------------------------------------------------------------------------------------- model
class SwinV2(nn.Module):
    """Swin Transformer V2 returning the stride-32 map of its last stage, (B, C_out, H/32, W/32)."""

    def __init__(self, cfg: SwinV2Cfg) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.embed_dim, cfg.norm_eps)
        n = sum(cfg.depths)
        dpr = [cfg.drop_path_rate * i / max(1, n - 1) for i in range(n)]  # linear stochastic-depth rule
        starts = [sum(cfg.depths[:i]) for i in range(cfg.num_stages)]
        self.stages = nn.ModuleList(
            SwinV2Stage(cfg, i, dpr[starts[i]:starts[i] + cfg.depths[i]], i < cfg.num_stages - 1)
            for i in range(cfg.num_stages)
        )
        self.norm = LayerNormFP32(cfg.num_features, eps=cfg.norm_eps)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, img: Tensor) -> Tensor:
        """Images (B, 3, H, W) -> last-stage features after the output LayerNorm, (B, C, H/32, W/32)."""
        x = self.patch_embed(img)
        out = x
        for stage in self.stages:
            out, x = stage(x)
        return self.norm(out.float()).permute(0, 3, 1, 2).contiguous()


# ------------------------------------------------------------------------- official checkpoint conversion
_OFFICIAL_BUFFERS = re.compile(r"^layers\.(\d+)\.blocks\.(\d+)\.attn\.(relative_coords_table|relative_position_index)$")
_OFFICIAL_RENAMES = (
    (re.compile(r"^layers\.(\d+)\.blocks\.(\d+)\.attn\.rpe_mlp\."), r"stages.\1.blocks.\2.attn.cpb_mlp."),
    (re.compile(r"^layers\.(\d+)\."), r"stages.\1."),
    (re.compile(r"^norm3\."), "norm."),
)


def is_official_swin_v2(state_dict: Mapping[str, Tensor]) -> bool:
    """True for the official ``SwinV2TransformerRPE2FC`` key layout (without a prefix)."""
    return any(k.endswith("attn.rpe_mlp.0.weight") and k.startswith("layers.") for k in state_dict)


def convert_official_swin_v2(state_dict: Mapping[str, Tensor], model: SwinV2 | None = None) -> dict[str, Tensor]:
    """Map official Swin V2 keys (no prefix) to :class:`SwinV2` keys.

    The deterministic coordinate-table / relative-index buffers are dropped; when ``model`` is given
    they are first checked against the ones this config rebuilds (a mismatch means other window sizes).
    Keys that match no rule keep their name, so a strict load reports them.
    """
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        m = _OFFICIAL_BUFFERS.match(key)
        if m:
            if model is not None:
                _check_buffer(model, int(m.group(1)), int(m.group(2)), m.group(3), value, key)
            continue
        out[rename_by_rules(key, _OFFICIAL_RENAMES)] = value
    return out


def _check_buffer(model: SwinV2, stage: int, block: int, kind: str, value: Tensor, key: str) -> None:
    if stage >= len(model.stages) or block >= len(model.stages[stage].blocks):
        raise ValueError(f"official Swin V2 key {key}: this config has no stage {stage} block {block}")
    attn = model.stages[stage].blocks[block].attn
    ours = attn.coords_table if kind == "relative_coords_table" else attn.rel_index
    if tuple(ours.shape) != tuple(value.shape) or float((ours.double() - value.double()).abs().max()) > 1e-5:
        raise ValueError(
            f"official Swin V2 {key} {tuple(value.shape)} does not match this config's stage {stage} window "
            f"{model.cfg.window_size[stage]} / pretrain window {model.cfg.pretrain_window_size[stage]} "
            f"(table {tuple(ours.shape)})"
        )
