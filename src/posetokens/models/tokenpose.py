"""TokenPose (ICCV'21) and PPT (ECCV'22) as one model: PPT is TokenPose plus a pruning config.

Layout of a forward pass (spec: ``shared/specs/tokenpose_ppt.md``):

1. CNN (stem or truncated HRNet) to a stride-4 map; non-overlapping ``ph x pw`` patches flattened in
   (p1, p2, c) order and embedded by a Linear: N visual tokens.
2. J learnable keypoint tokens are prepended; the fixed 2-D sine PE is added to the visual tokens at the
   input and re-added before the attention of every layer with index >= 1 within its block ("sine-full").
3. Pre-norm transformer layers. At the configured layers (PPT) the visual tokens are pruned after the
   attention residual, keeping ``ceil(N * r)`` by keypoint-to-visual attention (head mean, keypoint sum).
4. The keypoint tokens (of each block, concatenated, for the L variants) go through the MLP head to
   J heatmaps at stride 4.

Sections: config -> model -> official checkpoint conversion -> family registration -> variants.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor, nn

from posetokens.layers import (
    Block, PatchEmbed, PruneCfg, keep_counts, keypoint_attention_score, prune_topk, sine_pos_embed_2d,
    check_sine_pos_embed,
    missing_sine_pos_embed,
)
from posetokens.layers.checks import check_image_batch, require_positive
from posetokens.layers.init import init_transformer_weights
from posetokens.models.backbones.hrnet import HRNet, HRNetCfg, hrnet_stem, hrnet_w32_truncated, hrnet_w48_truncated
from posetokens.registry import Family, PaperRow, register_family, register_model


# --------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class TokenPoseCfg:
    """Every hyperparameter of a TokenPose/PPT model. Sizes are (height, width)."""

    num_keypoints: int = 17
    image_size: tuple[int, int] = (256, 192)
    backbone: HRNetCfg = field(default_factory=hrnet_stem)
    patch_size: tuple[int, int] = (4, 3)  # on the stride-4 feature map
    dim: int = 192
    depth: int = 12  # layers per block
    num_blocks: int = 1  # L variants: 3 blocks whose keypoint tokens are concatenated for the head
    heads: int = 8
    mlp_ratio: float = 3.0
    scale_with_head: bool = True  # False: attention scale dim**-0.5 (TokenPose-S), True: head_dim**-0.5
    head_hidden: int | None = None  # default heatmap area / 8
    prune: PruneCfg = field(default_factory=PruneCfg)
    feature_stride: int = 4

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """Heatmap (height, width): the input over the feature stride."""
        return self.image_size[0] // self.feature_stride, self.image_size[1] // self.feature_stride

    @property
    def patch_grid(self) -> tuple[int, int]:
        """Number of patches (rows, cols)."""
        (h, w), (ph, pw) = self.heatmap_size, self.patch_size
        return h // ph, w // pw

    def validate(self) -> None:
        """Raise ``ValueError`` when the sizes do not tile."""
        require_positive(self, "num_keypoints", "image_size", "patch_size", "dim", "depth", "num_blocks", "heads",
                         "head_hidden", "feature_stride")
        (h, w), (ph, pw) = self.heatmap_size, self.patch_size
        if self.image_size[0] % self.feature_stride or self.image_size[1] % self.feature_stride:
            raise ValueError(f"TokenPoseCfg.image_size {self.image_size} must be divisible by {self.feature_stride}")
        if h % ph or w % pw:
            raise ValueError(f"TokenPoseCfg.patch_size {self.patch_size} does not tile the {h}x{w} feature map")
        if self.dim % self.heads:
            raise ValueError(f"TokenPoseCfg.dim {self.dim} is not divisible by heads {self.heads}")
        total = self.depth * self.num_blocks
        if any(i >= total for i in self.prune.layers):
            raise ValueError(f"TokenPoseCfg.prune.layers {self.prune.layers} out of range for {total} layers")


class PrunedTokens(NamedTuple):
    """What one pruning layer did: indices into its input tokens, original patch ids, and the scores."""

    layer: int
    keep_idx: Tensor  # (B, K), relative to the visual tokens entering the layer, descending score
    patch_idx: Tensor  # (B, K), original patch index (row-major over the patch grid)
    score: Tensor  # (B, N_in), keypoint-attention score of the tokens entering the layer


class TokenPoseOutput(NamedTuple):
    """Heatmaps plus the record of every pruning step."""

    heatmaps: Tensor
    pruned: list[PrunedTokens]

    @property
    def prediction(self) -> Tensor:
        """What :meth:`TokenPose.forward` returns: the heatmaps."""
        return self.heatmaps


# ---------------------------------------------------------------------------------------------- model
class TokenPose(nn.Module):
    """TokenPose, and PPT when ``cfg.prune`` names layers and a keep ratio below 1."""

    task = "topdown"  # what the trainer, test and inference do with it (posetokens.protocols: Protocol.task)
    auto_precision = "fp32"  # --precision auto: exact, one precision at every batch (docs/speed.md "The default")
    output_kind = "heatmap"  # what its forward returns: the codec, loss and flip test follow it
    image_backbone = "backbone"  # the CNN before the tokens: what --precision bf16-backbone runs in bfloat16
    train_loss = "joints_mse"  # the recipe's loss (posetokens.engine.losses), what config loss "auto" trains with
    anneals_keep_ratio = True  # PPT: the trainer eases keep_ratio from 1 to the config's (set_keep_ratio)
    keypoint_rows = (("keypoint_token", 1),)  # one row per keypoint (output order): a partial load maps them by name

    def __init__(self, cfg: TokenPoseCfg) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.keep_ratio = cfg.prune.keep_ratio  # runtime knob: the training schedule changes it
        self.backbone = HRNet(cfg.backbone)
        ph, pw = cfg.patch_size
        gh, gw = cfg.patch_grid
        self.num_patches = gh * gw
        self.patch_embed = PatchEmbed(self.backbone.out_channels, (ph, pw), cfg.dim)
        self.keypoint_token = nn.Parameter(torch.zeros(1, cfg.num_keypoints, cfg.dim))
        self.register_buffer("pos_embed", sine_pos_embed_2d(gh, gw, cfg.dim), persistent=False)
        scale = None if cfg.scale_with_head else cfg.dim**-0.5
        hidden = int(cfg.dim * cfg.mlp_ratio)
        self.blocks = nn.ModuleList(
            Block(cfg.dim, cfg.heads, hidden, qkv_bias=False, scale=scale) for _ in range(cfg.depth * cfg.num_blocks)
        )
        hm_h, hm_w = cfg.heatmap_size
        head_in = cfg.dim * cfg.num_blocks
        head_hidden = cfg.head_hidden or hm_h * hm_w // 8
        if head_in <= head_hidden * 0.5:
            self.head = nn.Sequential(
                nn.LayerNorm(head_in), nn.Linear(head_in, head_hidden), nn.LayerNorm(head_hidden),
                nn.Linear(head_hidden, hm_h * hm_w),
            )
        else:
            self.head = nn.Sequential(nn.LayerNorm(head_in), nn.Linear(head_in, hm_h * hm_w))
        self._prune_layers = frozenset(cfg.prune.layers)
        self._init_weights()

    @property
    def prunes(self) -> bool:
        """Whether visual tokens are dropped (PPT: pruning layers and a keep ratio below 1; TokenPose: none)."""
        return bool(self._prune_layers) and self.keep_ratio < 1.0

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.keypoint_token, std=0.02)
        init_transformer_weights([self.patch_embed, *self.blocks.modules(), *self.head.modules()])

    # -- public API
    @property
    def input_size(self) -> tuple[int, int]:
        """Expected input (height, width)."""
        return self.cfg.image_size

    def dummy_inputs(self, batch: int = 1) -> tuple[Tensor]:
        """A random input batch of the model's size (for FLOPs, benchmarks and export)."""
        return (torch.randn(batch, 3, *self.cfg.image_size),)

    def set_keep_ratio(self, ratio: float) -> None:
        """Set the keep ratio used at the pruning layers (1.0 turns pruning off)."""
        if not 0.0 < ratio <= 1.0:
            raise ValueError(f"keep ratio must be in (0, 1], got {ratio}")
        self.keep_ratio = float(ratio)

    def token_counts(self) -> list[int]:
        """Visual-token counts after each pruning layer at the current keep ratio."""
        if self.keep_ratio >= 1.0:
            return []
        return keep_counts(self.num_patches, self.keep_ratio, len(self._prune_layers))

    def forward(self, img: Tensor) -> Tensor:
        """Images (B, 3, H, W), ImageNet-normalised RGB, to heatmaps (B, J, H/4, W/4)."""
        return self._forward(img, record=False).prediction

    def forward_tokens(self, img: Tensor) -> TokenPoseOutput:
        """Like :meth:`forward`, also returning the kept-token indices and scores of every pruning layer."""
        return self._forward(img, record=True)

    # -- internals
    def _check_input(self, img: Tensor) -> None:
        check_image_batch(img, self.cfg.image_size, type(self).__name__)

    def embed(self, img: Tensor) -> tuple[Tensor, Tensor]:
        """Images (B, 3, H, W) to the input sequence [J keypoint tokens ; N visual tokens + PE] (B, J+N, C),
        and the sine PE of the visual tokens (B, N, C)."""
        self._check_input(img)
        x = self.patch_embed(self.backbone(img))
        b = x.shape[0]
        pos = self.pos_embed.expand(b, -1, -1)
        return torch.cat((self.keypoint_token.expand(b, -1, -1), x + pos), dim=1), pos

    def run_layers(
        self, x: Tensor, pos: Tensor, layers: range, patch_ids: Tensor | None = None, carry: tuple[Tensor, ...] = ()
    ) -> tuple[Tensor, Tensor, Tensor | None, tuple[Tensor, ...], list[PrunedTokens], list[Tensor]]:
        """Run transformer ``layers`` on (B, J+N, C) tokens: sine-full PE re-add, PPT pruning, FFN.

        ``pos`` (B, N, C), ``patch_ids`` (B, N) (given: record every pruning step) and every ``carry`` tensor
        (B, N, ...) are gathered with the kept indices. Returns ``(x, pos, patch_ids, carry, pruned,
        keypoint_outs)``; ``keypoint_outs`` holds the keypoint tokens at the end of each block.
        """
        cfg, j = self.cfg, self.cfg.num_keypoints
        prune = self.keep_ratio < 1.0
        record = patch_ids is not None
        pruned: list[PrunedTokens] = []
        keypoint_outs = []
        for layer in layers:
            blk = self.blocks[layer]
            if layer % cfg.depth:  # sine-full: re-add the PE before every layer but a block's first
                x = torch.cat((x[:, :j], x[:, j:] + pos), dim=1)
            if prune and layer in self._prune_layers:
                x, rows = blk.attend_scored(x, j)
                score = keypoint_attention_score(rows, j)
                x, idx, carried = prune_topk(x, score, j, self.keep_ratio, (pos, *carry, *((patch_ids,) if record else ())))
                pos, carry = carried[0], carried[1 : 1 + len(carry)]
                if record:
                    patch_ids = carried[-1]
                    pruned.append(PrunedTokens(layer, idx, patch_ids, score))
            else:
                x = blk.attend(x)
            x = blk.feed(x)
            if (layer + 1) % cfg.depth == 0:
                keypoint_outs.append(x[:, :j])
        return x, pos, patch_ids, carry, pruned, keypoint_outs

    def _forward(self, img: Tensor, record: bool) -> TokenPoseOutput:
        cfg, j = self.cfg, self.cfg.num_keypoints
        x, pos = self.embed(img)
        b = x.shape[0]
        patch_ids = torch.arange(self.num_patches, device=x.device).expand(b, -1) if record else None
        _, _, _, _, pruned, keypoint_outs = self.run_layers(x, pos, range(len(self.blocks)), patch_ids)
        tokens = keypoint_outs[0] if len(keypoint_outs) == 1 else torch.cat(keypoint_outs, dim=2)
        heatmaps = self.head(tokens).reshape(b, j, *cfg.heatmap_size)
        return TokenPoseOutput(heatmaps, pruned)


# ------------------------------------------------------------------------- official checkpoint conversion
_BACKBONE_KEY = re.compile(r"^(?:features|pre_feature)\.((?:conv[12]|bn[12]|layer1|transition\d|stage\d)\..*)$")
_LAYER_KEY = re.compile(r"^transformer(\d*)\.layers\.(\d+)\.([01])\.(.*)$")
# (sub-layer, rest of key) -> our name; both official layouts: HowieMa/PPT and leeyegy/TokenPose.
_LAYER_MAP = {
    ("0", "norm.weight"): "norm1.weight", ("0", "norm.bias"): "norm1.bias",
    ("0", "fn.norm.weight"): "norm1.weight", ("0", "fn.norm.bias"): "norm1.bias",
    ("0", "fn.to_qkv.weight"): "attn.qkv.weight", ("0", "fn.fn.to_qkv.weight"): "attn.qkv.weight",
    ("0", "fn.to_out.0.weight"): "attn.proj.weight", ("0", "fn.to_out.0.bias"): "attn.proj.bias",
    ("0", "fn.fn.to_out.0.weight"): "attn.proj.weight", ("0", "fn.fn.to_out.0.bias"): "attn.proj.bias",
    ("1", "fn.norm.weight"): "norm2.weight", ("1", "fn.norm.bias"): "norm2.bias",
    ("1", "fn.fn.net.0.weight"): "mlp.fc1.weight", ("1", "fn.fn.net.0.bias"): "mlp.fc1.bias",
    ("1", "fn.fn.net.3.weight"): "mlp.fc2.weight", ("1", "fn.fn.net.3.bias"): "mlp.fc2.bias",
}


def is_official_layout(state_dict: Mapping[str, Tensor]) -> bool:
    """True when the keys look like a HowieMa/PPT or leeyegy/TokenPose checkpoint."""
    return any(k.endswith("patch_to_embedding.weight") for k in state_dict)


def checkpoint_filter_fn(state_dict: Mapping[str, Tensor], model: TokenPose) -> dict[str, Tensor]:
    """Map an official TokenPose/PPT state dict (either repo's layout) to this model's keys.

    The fixed sine PE stored in official checkpoints is checked against ours and dropped. Keys that match
    no rule are kept under their own name, so the strict load that follows reports them as unexpected.
    """
    if not is_official_layout(state_dict):
        return dict(state_dict)
    out: dict[str, Tensor] = {}
    depth = model.cfg.depth
    has_pe = False
    for key, value in state_dict.items():
        m = _BACKBONE_KEY.match(key)
        if m:
            out["backbone." + m.group(1)] = value
            continue
        rest = key.split(".", 1)[1] if key.startswith(("features.", "transformer.")) else key
        if rest == "pos_embedding":
            _check_official_pos_embed(value, model)
            has_pe = True
            continue
        if rest == "keypoint_token":
            out["keypoint_token"] = value
            continue
        if rest.startswith("patch_to_embedding."):
            out["patch_embed." + rest.split(".", 1)[1]] = value
            continue
        if rest.startswith("mlp_head."):
            out["head." + rest.split(".", 1)[1]] = value
            continue
        m = _LAYER_KEY.match(rest)
        if m and (m.group(3), m.group(4)) in _LAYER_MAP:
            block = int(m.group(1)) - 1 if m.group(1) else 0
            out[f"blocks.{block * depth + int(m.group(2))}.{_LAYER_MAP[(m.group(3), m.group(4))]}"] = value
            continue
        out[key] = value  # unknown: reported by the strict load
    if not has_pe:
        raise missing_sine_pos_embed("TokenPose/PPT")
    return out


def _check_official_pos_embed(pos: Tensor, model: TokenPose) -> None:
    shape_differs = tuple(pos.shape) != tuple(model.pos_embed.shape)
    check_sine_pos_embed(pos, model.pos_embed, f" (patch grid {model.cfg.patch_grid}, dim {model.cfg.dim}): wrong "
                         "input size or model" if shape_differs else ": only the 'sine-full' TokenPose/PPT configs "
                         "are supported")


# ----------------------------------------------------------------------------------------- family + zoo
register_family(
    Family(
        name="tokenpose",
        protocol="tokenpose",
        build=TokenPose,
        convert=checkpoint_filter_fn,
        paper_counter="hrnet_summary",
        convention="the official repos' HRNet get_model_summary: Conv/Linear modules only (attention "
        "matmuls skipped), Linear = output elements x input.size(1), over 1024**3",
    )
)

_PPT = PruneCfg(layers=(3, 6, 9), keep_ratio=0.7)
# PPT-L/D6: the paper's 8.7 G needs three pruning points; the official repo gives no 3-point placement
# for the 6-layer model (its default prunes once). Layers 1, 2, 3 give 8.71 G in the paper's counter.
_PPT_L = PruneCfg(layers=(1, 2, 3), keep_ratio=0.7)
_S = dict(scale_with_head=False)
_B = dict(backbone=hrnet_w32_truncated())
_L = dict(backbone=hrnet_w48_truncated(), depth=2, num_blocks=3)
_MPII = dict(num_keypoints=16, image_size=(256, 256), patch_size=(4, 4))
_SRC = "PPT (ECCV'22) Table 1; official figures: shared/specs/tokenpose_ppt.md"

for _name, _kw, _paper in [
    ("tokenpose_s_coco_256x192", _S, PaperRow(6.6, 2.2, 6.670, 2.226, _SRC)),
    ("tokenpose_b_coco_256x192", _B, PaperRow(13.5, 5.7, 13.514, 5.655, _SRC)),
    ("tokenpose_l_d6_coco_256x192", _L, PaperRow(20.8, 9.1, 20.865, 9.064, _SRC)),
    ("ppt_s_coco_256x192", {**_S, "prune": _PPT}, PaperRow(6.6, 1.6, 6.670, 1.614, _SRC)),
    ("ppt_b_coco_256x192", {**_B, "prune": _PPT}, PaperRow(13.5, 5.0, 13.514, 5.043, _SRC)),
    ("ppt_l_d6_coco_256x192", {**_L, "prune": _PPT_L}, PaperRow(20.8, 8.7, 20.865, None, _SRC)),
    ("tokenpose_s_mpii_256x256", {**_S, **_MPII}, PaperRow(None, None, 7.810, 2.528, _SRC)),
    ("ppt_s_mpii_256x256", {**_S, **_MPII, "prune": _PPT}, PaperRow(None, None, 7.810, 1.919, _SRC)),
]:
    register_model(_name, "tokenpose", TokenPoseCfg(**_kw), _paper)
