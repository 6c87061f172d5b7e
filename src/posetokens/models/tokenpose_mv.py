"""Multi-view PPT (ECCV'22, "human area fusion"): PPT on every view, then joint attention over all views.

Layout of a forward pass (spec: ``shared/specs/tokenpose_ppt.md`` section 5):

1. Every view runs the PPT of :mod:`posetokens.models.tokenpose` (shared weights, views folded into the
   batch) through its first ``depth - num_fusion_layers`` layers, pruning at the configured layers, so each
   view keeps K human tokens (256 -> 180 -> 126 -> 89 at 256x256).
2. The views are concatenated as ``[V*J keypoint tokens ; V*K kept visual tokens]`` (keypoint tokens of
   view 0, 1, ... then visual tokens of view 0, 1, ...). Keypoint tokens are shared across views, with no
   view embedding.
3. Before each of the last ``num_fusion_layers`` layers, the kept tokens' 2-D sine PE plus a 3-D PE are
   re-added to the visual tokens. The 3-D PE is ``Linear(3, dim)`` of the unit camera ray (world frame)
   through each kept patch centre; :func:`posetokens.geometry.patch_rays` computes the rays from the
   cameras and the crop. Every token attends to every token of every view.
4. The keypoint tokens are split per view and go through the shared head to per-view heatmaps.

With ``rays=None`` the 3-D PE is left out (2-D PE only). One view without rays is exactly PPT.

Sections: config -> model -> official checkpoint conversion -> family registration -> variants.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from posetokens.layers import PruneCfg
from posetokens.layers.init import init_transformer_weights
from posetokens.models.tokenpose import PrunedTokens, TokenPose, TokenPoseCfg, checkpoint_filter_fn, is_official_layout
from posetokens.registry import Family, PaperRow, register_family, register_model


# --------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class MultiViewPPTCfg(TokenPoseCfg):
    """A :class:`TokenPoseCfg` (one block) plus the number of views and of cross-view fusion layers."""

    num_views: int = 4
    num_fusion_layers: int = 2  # the last layers attend over all views' kept tokens
    ray_pe: bool = True  # the 3-D PE (Linear(3, dim) of camera rays) exists

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field when the multi-view layout is impossible."""
        super().validate()
        if self.num_views < 1:
            raise ValueError(f"MultiViewPPTCfg.num_views must be >= 1, got {self.num_views}")
        if self.num_blocks != 1:
            raise ValueError(f"MultiViewPPTCfg.num_blocks must be 1 (one layer stack), got {self.num_blocks}")
        if not 0 <= self.num_fusion_layers < self.depth:
            raise ValueError(
                f"MultiViewPPTCfg.num_fusion_layers must be in [0, depth={self.depth}), got {self.num_fusion_layers}"
            )
        first_fusion = self.depth - self.num_fusion_layers
        if any(i >= first_fusion for i in self.prune.layers):
            raise ValueError(
                f"MultiViewPPTCfg.prune.layers {self.prune.layers}: pruning must happen in the per-view layers "
                f"0..{first_fusion - 1}, before the {self.num_fusion_layers} fusion layers"
            )


def stack_views(views: Tensor | Sequence[Tensor]) -> Tensor:
    """A list of V per-view batches (B, 3, H, W) (the official call) to one (B, V, 3, H, W) tensor.

    Views of different sizes or batch sizes raise ``ValueError`` naming the view.
    """
    if isinstance(views, Tensor):
        return views
    if not isinstance(views, (list, tuple)) or not all(isinstance(v, Tensor) for v in views):
        raise ValueError(f"stack_views: expected a torch tensor (B, V, 3, H, W) or a list of (B, 3, H, W) tensors, "
                         f"got a {type(views).__name__}")
    if not views:
        raise ValueError("stack_views: no views given")
    ref = tuple(views[0].shape)
    for i, v in enumerate(views):
        if tuple(v.shape) != ref:
            raise ValueError(
                f"views have mismatched sizes: view {i} is {tuple(v.shape)}, view 0 is {ref}; every view must be "
                "(B, 3, H, W) with the same B, H, W (crop every camera to the model's input size)"
            )
    return torch.stack(list(views), dim=1)


class MultiViewOutput(NamedTuple):
    """Per-view heatmaps (B, V, J, h, w) and every pruning step, with (B, V, ...) index/score tensors."""

    heatmaps: Tensor
    pruned: list[PrunedTokens]


# ---------------------------------------------------------------------------------------------- model
class MultiViewPPT(TokenPose):
    """Multi-view PPT: per-view PPT layers, then cross-view fusion layers with a camera-ray 3-D PE.

    It *is* a :class:`TokenPose` (same backbone, blocks, head and keys) plus ``pos_3d``; a single-view
    PPT state dict loads into it with only ``pos_3d.*`` missing.
    """

    task = "multiview"  # what the trainer, test and inference do with it (posetokens.protocols: Protocol.task)

    cfg: MultiViewPPTCfg

    def __init__(self, cfg: MultiViewPPTCfg) -> None:
        super().__init__(cfg)
        self.pos_3d = nn.Linear(3, cfg.dim) if cfg.ray_pe else None
        if self.pos_3d is not None:
            init_transformer_weights([self.pos_3d])

    # -- public API
    @property
    def num_views(self) -> int:
        """Number of views the model expects."""
        return self.cfg.num_views

    def dummy_inputs(self, batch: int = 1) -> tuple[Tensor, ...]:
        """Random images (B, V, 3, H, W) and unit rays (B, V, N, 3) (for FLOPs, benchmarks and export)."""
        images = torch.randn(batch, self.num_views, 3, *self.cfg.image_size)
        if self.pos_3d is None:
            return (images,)
        rays = F.normalize(torch.randn(batch, self.num_views, self.num_patches, 3), dim=-1)
        return images, rays

    def forward(self, images: Tensor | Sequence[Tensor], rays: Tensor | None = None) -> Tensor:
        """Synchronised views (B, V, 3, H, W) and camera rays (B, V, N, 3) to heatmaps (B, V, J, H/4, W/4).

        ``rays`` are world-frame direction vectors of the camera ray through each patch centre, row-major
        over the patch grid (normalised here); ``None`` leaves the 3-D PE out. ``images`` may also be a list
        of V (B, 3, H, W) views.
        """
        return self._forward_views(stack_views(images), rays, record=False).heatmaps

    def forward_tokens(self, images: Tensor | Sequence[Tensor], rays: Tensor | None = None) -> MultiViewOutput:  # type: ignore[override]
        """Like :meth:`forward`, also returning the kept-token indices (B, V, K) and scores of every pruning."""
        return self._forward_views(stack_views(images), rays, record=True)

    def forward_independent(self, images: Tensor) -> MultiViewOutput:
        """Every view through all layers on its own (no fusion, no 3-D PE): PPT per view, (B, V, ...) outputs."""
        b, v = self._check_views(images, None)
        out = TokenPose._forward(self, images.flatten(0, 1), record=True)
        return MultiViewOutput(out.heatmaps.unflatten(0, (b, v)), self._per_view(out.pruned, b, v))

    # -- internals
    def _check_views(self, images: Tensor, rays: Tensor | None) -> tuple[int, int]:
        h, w = self.cfg.image_size
        if not isinstance(images, Tensor) or not images.is_floating_point():
            got = f"{images.dtype} tensor" if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"{type(self).__name__} expects views as a floating-point torch tensor (B, V, 3, {h}, "
                             f"{w}) (or a list of (B, 3, {h}, {w})), got a {got}")
        if images.dim() != 5 or tuple(images.shape[2:]) != (3, h, w):
            raise ValueError(
                f"{type(self).__name__} expects views of shape (B, V, 3, {h}, {w}) (RGB, height {h}, width {w}); "
                f"got {tuple(images.shape)}"
            )
        b, v = images.shape[:2]
        if v != self.num_views:
            raise ValueError(
                f"{type(self).__name__} is configured for num_views={self.num_views}, got {v} views in images "
                f"{tuple(images.shape)}; build it with num_views={v}"
            )
        if rays is not None:
            if self.pos_3d is None:
                raise ValueError(f"{type(self).__name__} was built with ray_pe=False but rays were given")
            want = (b, v, self.num_patches, 3)
            if not isinstance(rays, Tensor) or rays.dtype != images.dtype:  # patch_rays gives float64 numpy
                got = f"{rays.dtype} tensor" if isinstance(rays, Tensor) else type(rays).__name__
                raise ValueError(f"rays must be a torch tensor of the images' dtype ({images.dtype}), got a {got}: "
                                 f"torch.as_tensor(rays, dtype={images.dtype})")
            if tuple(rays.shape) != want:
                raise ValueError(f"rays must have shape {want} (B, V, patches, xyz), got {tuple(rays.shape)}")
        return b, v

    @staticmethod
    def _per_view(pruned: list[PrunedTokens], b: int, v: int) -> list[PrunedTokens]:
        return [
            PrunedTokens(p.layer, p.keep_idx.unflatten(0, (b, v)), p.patch_idx.unflatten(0, (b, v)), p.score.unflatten(0, (b, v)))
            for p in pruned
        ]

    def _forward_views(self, images: Tensor, rays: Tensor | None, record: bool) -> MultiViewOutput:
        b, v = self._check_views(images, rays)
        cfg, j = self.cfg, self.cfg.num_keypoints
        x, pos = self.embed(images.flatten(0, 1))  # views folded into the batch: (B*V, J+N, C)
        carry: tuple[Tensor, ...] = ()
        if rays is not None:
            carry = (self.pos_3d(F.normalize(rays.flatten(0, 1), p=2, dim=-1)),)
        patch_ids = torch.arange(self.num_patches, device=x.device).expand(b * v, -1) if record else None
        first_fusion = cfg.depth - cfg.num_fusion_layers
        x, pos, patch_ids, carry, pruned, _ = self.run_layers(x, pos, range(first_fusion), patch_ids, carry)
        if cfg.num_fusion_layers:
            c, k = x.shape[-1], x.shape[1] - j
            vj = v * j
            pe = pos + carry[0] if carry else pos
            x = torch.cat((x[:, :j].reshape(b, vj, c), x[:, j:].reshape(b, v * k, c)), dim=1)
            pe = pe.reshape(b, v * k, c)
            for layer in range(first_fusion, cfg.depth):
                blk = self.blocks[layer]
                x = torch.cat((x[:, :vj], x[:, vj:] + pe), dim=1)
                x = blk.feed(blk.attend(x))
            keypoints = x[:, :vj].reshape(b * v, j, c)
        else:
            keypoints = x[:, :j]
        heatmaps = self.head(keypoints).reshape(b, v, j, *cfg.heatmap_size)
        return MultiViewOutput(heatmaps, self._per_view(pruned, b, v) if record else [])


# ------------------------------------------------------------------------- official checkpoint conversion
def mv_checkpoint_filter_fn(state_dict: Mapping[str, Tensor], model: MultiViewPPT) -> dict[str, Tensor]:
    """Map an official multi-view PPT state dict (HowieMa/PPT ``multiview_ppt.py``) to this model's keys.

    The layout is single-view PPT-S's plus ``features.pos_3d_linear.*``; everything else goes through
    :func:`posetokens.models.tokenpose.checkpoint_filter_fn`.
    """
    if not is_official_layout(state_dict):
        return dict(state_dict)
    ray_keys = {k: v for k, v in state_dict.items() if k.split(".", 1)[-1].startswith("pos_3d_linear.")}
    rest = {k: v for k, v in state_dict.items() if k not in ray_keys}
    out = checkpoint_filter_fn(rest, model)
    for key, value in ray_keys.items():
        out["pos_3d." + key.rsplit(".", 1)[1]] = value
    return out


# ----------------------------------------------------------------------------------------- family + zoo
register_family(
    Family(
        name="tokenpose_mv",
        protocol="multiview_ppt",
        build=MultiViewPPT,
        convert=mv_checkpoint_filter_fn,
        paper_counter="thop",
        convention="PPT's multi-view table (H36M): thop-style MACs (Conv/Linear MACs, BatchNorm/LayerNorm "
        "4 x input elements, attention matmuls not counted) of one sample of ALL views together; the "
        "paper's 9.7 G is 4 views, i.e. about 2.4 G per view",
    )
)

_SRC_MV = "PPT (ECCV'22) multi-view table (Human3.6M, 4 views); official figures: shared/specs/tokenpose_ppt.md s.1/s.5"
_MV_S = dict(num_keypoints=17, image_size=(256, 256), patch_size=(4, 4), scale_with_head=False, num_views=4,
             num_fusion_layers=2)
register_model(
    "ppt_multiview_h36m_256x256",
    "tokenpose_mv",
    MultiViewPPTCfg(**_MV_S, prune=PruneCfg(layers=(3, 6, 9), keep_ratio=0.7)),
    PaperRow(None, 9.7, 7.811, None, _SRC_MV),
    description="multi-view PPT-S, 4 views, layers 11-12 fuse all views' kept tokens, camera-ray 3-D PE",
)
# The paper's baseline "TokenPose with cross-view transformers": the same layout without pruning (11.5 G).
register_model(
    "tokenpose_multiview_h36m_256x256",
    "tokenpose_mv",
    MultiViewPPTCfg(**_MV_S),
    PaperRow(None, 11.5, 7.811, None, _SRC_MV),
    description="multi-view TokenPose-S baseline: as ppt_multiview_h36m_256x256 with no token pruning",
)
