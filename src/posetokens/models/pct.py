"""PCT (CVPR'23, "Human Pose as Compositional Tokens"): tokenizer, EMA codebook, classifier head, model.

A pose is M = 34 discrete tokens from a learned codebook (spec: ``shared/specs/pct.md``).

* **Stage 1, tokenizer.** Joints (x, y, v) in crop pixels -> Linear 2 -> (1-r)·512, concatenated with
  Linear C -> r·512 of the backbone feature at each joint's stride-32 cell (image guidance, r = 0.5; r = 0
  without) -> unlabelled joints (and, in training, 20 % random ones) replaced by a learned invisible token
  -> 4 MLP-Mixer layers over the 17 joints -> LayerNorm -> Linear along the joint axis 17 -> 34 ->
  Linear 512 -> 512 -> nearest codebook row (squared L2, straight-through). The codebook (V x 512, a
  buffer) is updated by EMA (decay 0.9, Laplace smoothing 1e-5, N(0, 1) initialisation), with the
  cross-process sum done only when a process group exists. The tiny decoder maps 34 token vectors back
  to 17 x 2 pixels. Loss: smooth-L1 (beta 0.05) + 15 x commitment.
* **Stage 2, classifier.** The frozen Swin V2 stride-32 map -> 1x1 conv + BN + ReLU -> 2 BasicBlocks ->
  flatten (h, w, c) -> FC to 34 x 64 -> 4 Mixer layers -> FC -> Linear to V logits per token. Decoding is
  ``softmax(logits) @ codebook`` through the frozen decoder, in training and at test. Loss: CE against
  the frozen encoder's token indices + smooth-L1 on the decoded joints (1 : 1). Pose score: mean over
  tokens of the top-1 raw logit, copied to every joint.

Sections: config -> mixer blocks -> tokenizer -> classifier head -> model -> official checkpoint
conversion -> family registration -> variants.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from posetokens.layers import Mlp
from posetokens.layers.checks import check_image_batch, require_positive
from posetokens.layers.init import init_conv_bn
from posetokens.models.backbones.hrnet import BasicBlock
from posetokens.models.backbones.swin_v2 import (
    SWIN_V2_B,
    SWIN_V2_H,
    SWIN_V2_L,
    SwinV2,
    SwinV2Cfg,
    convert_official_swin_v2,
    is_official_swin_v2,
)
from posetokens.registry import (Family, InitLoader, PaperRow, get_entry, register_family, register_model,
                                 rename_by_rules)


# --------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class MixerCfg:
    """A stack of MLP-Mixer layers: ``hidden`` channels, token MLP ``tokens -> token_inter -> tokens``."""

    num_blocks: int = 4
    hidden: int = 512
    token_inter: int = 64
    hidden_inter: int = 512


@dataclass(frozen=True)
class TokenizerCfg:
    """Stage-1 tokenizer: encoder, codebook, decoder and loss."""

    num_joints: int = 17
    num_tokens: int = 34  # M
    token_dim: int = 512
    codebook_size: int = 2048  # V (every released config)
    encoder: MixerCfg = field(default_factory=MixerCfg)
    decoder: MixerCfg = MixerCfg(num_blocks=1, hidden=32, token_inter=64, hidden_inter=64)
    guide_ratio: float = 0.5  # share of the 512 encoder channels given to image features (0: no guidance)
    drop_rate: float = 0.2  # random joint masking while training the tokenizer
    ema_decay: float = 0.9
    laplace_eps: float = 1e-5
    dead_code_threshold: float = 0.0  # >0: restart codes whose EMA size falls below it (off = faithful)
    joint_loss_weight: float = 1.0
    commitment_weight: float = 15.0
    smooth_l1_beta: float = 0.05  # pixels

    @property
    def guided(self) -> bool:
        """Whether the encoder takes image features."""
        return self.guide_ratio > 0


@dataclass(frozen=True)
class HeadCfg:
    """Stage-2 classifier head."""

    conv_channels: int = 256
    conv_blocks: int = 2
    mixer: MixerCfg = MixerCfg(num_blocks=4, hidden=64, token_inter=64, hidden_inter=256)
    token_loss_weight: float = 1.0
    joint_loss_weight: float = 1.0


@dataclass(frozen=True)
class PCTCfg:
    """A PCT model: ``stage`` "tokenizer" (stage 1) or "classifier" (stage 2). Sizes are (height, width).

    ``backbone`` is the frozen Swin V2 (None: features are given directly, as in the parity fixtures;
    a guided stage-1 model needs it for its joint features). ``tokenizer_ckpt`` (stage 2) is the path of a
    stage-1 checkpoint (ours or official) and ``backbone_ckpt`` the heatmap-pretrained backbone (official Swin V2
    layout, ``backbone.``/``module.`` prefixes allowed, or ours), loaded by :func:`~posetokens.registry.create_model`
    when it builds the model (:func:`load_init_files`; ``PCT(cfg)`` alone reads no file).
    """

    stage: str = "classifier"
    image_size: tuple[int, int] = (256, 256)
    backbone: SwinV2Cfg | None = SWIN_V2_B
    in_channels: int = 1024  # feature channels when backbone is None
    tokenizer: TokenizerCfg = field(default_factory=TokenizerCfg)
    head: HeadCfg = field(default_factory=HeadCfg)
    tokenizer_ckpt: str | None = None
    backbone_ckpt: str | None = None
    freeze_backbone: bool = True  # the official recipe (frozen_stages=5 in both stages)

    @property
    def num_keypoints(self) -> int:
        """Number of joints."""
        return self.tokenizer.num_joints

    @property
    def feature_channels(self) -> int:
        """Channels of the stride-32 feature map."""
        return self.backbone.num_features if self.backbone is not None else self.in_channels

    @property
    def feature_size(self) -> tuple[int, int]:
        """(h, w) of the stride-32 feature map."""
        return self.image_size[0] // 32, self.image_size[1] // 32

    def validate(self) -> None:
        """Raise ``ValueError`` for inconsistent settings."""
        require_positive(self, "image_size", "in_channels")
        if self.stage not in ("tokenizer", "classifier"):
            raise ValueError(f"PCTCfg.stage must be 'tokenizer' or 'classifier', got {self.stage!r}")
        h, w = self.image_size
        if h % 32 or w % 32:
            raise ValueError(f"PCTCfg.image_size {self.image_size} must be a multiple of 32 (stride-32 features)")
        if self.tokenizer.guided and h != w:
            raise ValueError(f"PCTCfg: image guidance needs a square input (official), got {self.image_size}")
        if self.backbone is not None and self.backbone.stride != 32:
            raise ValueError(f"PCTCfg.backbone has stride {self.backbone.stride}; PCT needs the stride-32 map")
        if self.backbone is not None and self.backbone.num_features != self.in_channels:
            raise ValueError(f"PCTCfg.in_channels {self.in_channels} differs from the backbone's "
                             f"{self.backbone.num_features} output channels")
        t = self.tokenizer
        if not 0 <= t.guide_ratio < 1:
            raise ValueError(f"PCTCfg.tokenizer.guide_ratio must be in [0, 1), got {t.guide_ratio}")
        if t.codebook_size < 2 or t.num_tokens < 1 or t.num_joints < 1:
            raise ValueError("PCTCfg.tokenizer: codebook_size >= 2, num_tokens >= 1 and num_joints >= 1 required")


class TokenizerOutput(NamedTuple):
    """Stage-1 forward: recovered joints (B, K, 2), token indices (B, M), encoder features (B, M, D)
    and the commitment loss (0 outside tokenizer training)."""

    joints: Tensor
    indices: Tensor
    features: Tensor
    commitment: Tensor


# --------------------------------------------------------------------------------------------- blocks
class MixerLayer(nn.Module):
    """MLP-Mixer layer ``y = tokenMLP(LN1(x)^T)^T; z = channelMLP(LN2(x + y)); out = x + y + z``."""

    def __init__(self, hidden: int, hidden_inter: int, tokens: int, token_inter: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden)
        self.token_mlp = Mlp(tokens, token_inter)
        self.norm2 = nn.LayerNorm(hidden)
        self.channel_mlp = Mlp(hidden, hidden_inter)

    def forward(self, x: Tensor) -> Tensor:
        """(B, tokens, hidden) -> same."""
        y = self.token_mlp(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        z = self.channel_mlp(self.norm2(x + y))
        return x + y + z


def _mixer(cfg: MixerCfg, tokens: int) -> nn.Sequential:
    return nn.Sequential(*(MixerLayer(cfg.hidden, cfg.hidden_inter, tokens, cfg.token_inter) for _ in range(cfg.num_blocks)))


def _fc_block(cin: int, cout: int) -> nn.Sequential:
    """Linear -> LayerNorm -> ReLU (the official FCBlock)."""
    return nn.Sequential(nn.Linear(cin, cout), nn.LayerNorm(cout), nn.ReLU(inplace=True))


def smooth_l1_joints(pred: Tensor, target: Tensor, beta: float) -> Tensor:
    """Visibility-masked smooth-L1 over (x, y): ``target`` (B, K, 3) with v in the last channel; averaged
    over coordinates, joints and batch (unlabelled joints stay in the denominator, as officially)."""
    vis = target[..., 2:]
    loss = F.smooth_l1_loss(pred[..., :2], target[..., :2], reduction="none", beta=beta) * vis
    return loss.mean()


def joint_features(feature_map: Tensor, joints: Tensor, image_size: int) -> Tensor:
    """(B, C, h, w) map and (B, K, >=2) crop-pixel joints -> (B, K, C): the nearest stride cell
    (``int(x / stride + 0.5)``, clamped), as the official head looks it up."""
    b, c, h, w = feature_map.shape
    stride = image_size / w
    jx = (joints[..., 0] / stride + 0.5).int().clamp(0, w - 1)
    jy = (joints[..., 1] / stride + 0.5).int().clamp(0, h - 1)
    idx = (jy * w + jx).long()  # (B, K)
    flat = feature_map.flatten(2)  # (B, C, hw)
    return flat.gather(2, idx[:, None, :].expand(-1, c, -1)).transpose(1, 2)


# ------------------------------------------------------------------------------------------ tokenizer
class PCTTokenizer(nn.Module):
    """Compositional encoder, EMA codebook and decoder (stage 1); frozen in stage 2."""

    def __init__(self, cfg: TokenizerCfg, guide_channels: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        hid = cfg.encoder.hidden
        n_img = int(hid * cfg.guide_ratio)
        self.invisible_token = nn.Parameter(torch.zeros(1, 1, hid))
        nn.init.trunc_normal_(self.invisible_token, std=0.02, a=-0.02, b=0.02)
        self.start_img_embed = nn.Linear(guide_channels, n_img) if cfg.guided else None
        if cfg.guided and guide_channels <= 0:
            raise ValueError("PCTTokenizer: image guidance (guide_ratio > 0) needs the backbone's channel count")
        self.start_embed = nn.Linear(2, int(hid * (1 - cfg.guide_ratio)))
        if self.start_embed.out_features + n_img != hid:
            raise ValueError(f"PCTTokenizer: guide_ratio {cfg.guide_ratio} splits {hid} channels unevenly")
        self.encoder = _mixer(cfg.encoder, cfg.num_joints)
        self.encoder_norm = nn.LayerNorm(hid)
        self.token_mlp = nn.Linear(cfg.num_joints, cfg.num_tokens)
        self.feature_embed = nn.Linear(hid, cfg.token_dim)
        v, d = cfg.codebook_size, cfg.token_dim
        self.register_buffer("codebook", torch.randn(v, d))
        self.register_buffer("ema_cluster_size", torch.zeros(v))
        self.register_buffer("ema_w", torch.randn(v, d))
        self.decoder_token_mlp = nn.Linear(cfg.num_tokens, cfg.num_joints)
        self.decoder_start = nn.Linear(d, cfg.decoder.hidden)
        self.decoder = _mixer(cfg.decoder, cfg.num_joints)
        self.decoder_norm = nn.LayerNorm(cfg.decoder.hidden)
        self.recover_embed = nn.Linear(cfg.decoder.hidden, 2)

    # -- encoder
    def encode(self, joints: Tensor, joint_feats: Tensor | None = None, drop: bool = False) -> Tensor:
        """Joints (B, K, 3) crop pixels + visibility (and (B, K, C) image features when guided) ->
        pre-quantisation token features (B, M, D). ``drop`` masks 20 % of the joints at random."""
        k = self.cfg.num_joints
        if joints.dim() != 3 or joints.shape[1] != k or joints.shape[2] != 3:
            raise ValueError(f"PCTTokenizer expects joints (B, {k}, 3) = x, y (crop pixels), visibility; "
                             f"got {tuple(joints.shape)}")
        visible = joints[..., 2] != 0
        feat = self.start_embed(joints[..., :2])
        if self.start_img_embed is not None:
            if joint_feats is None:
                raise ValueError("PCTTokenizer: the image-guided encoder needs joint features (a backbone map)")
            feat = torch.cat((feat, self.start_img_embed(joint_feats)), dim=2)
        if drop and self.cfg.drop_rate > 0:
            visible = visible & (torch.rand(visible.shape, device=joints.device) > self.cfg.drop_rate)
        w = visible[..., None].to(feat.dtype)
        feat = feat * w + self.invisible_token * (1 - w)
        feat = self.encoder_norm(self.encoder(feat))
        feat = self.token_mlp(feat.transpose(1, 2)).transpose(1, 2)
        return self.feature_embed(feat)

    def quantize(self, feats: Tensor) -> Tensor:
        """Nearest codebook rows (squared L2, ties to the lowest index): (B, M, D) -> indices (B, M)."""
        flat = feats.reshape(-1, feats.shape[-1])
        base = flat.pow(2).sum(1, keepdim=True) + self.codebook.pow(2).sum(1)
        dist2 = torch.addmm(base, flat, self.codebook.t(), alpha=-2.0)  # |f|^2 + |c|^2 - 2 f.c, one pass
        return dist2.argmin(dim=1).reshape(feats.shape[:2])

    # -- decoder
    def decode(self, token_feats: Tensor) -> Tensor:
        """Token vectors (B, M, D) -> joints (B, K, 2) in crop pixels."""
        x = self.decoder_token_mlp(token_feats.transpose(1, 2)).transpose(1, 2)
        x = self.decoder_norm(self.decoder(self.decoder_start(x)))
        return self.recover_embed(x)

    def decode_indices(self, indices: Tensor) -> Tensor:
        """Token indices (B, M) -> joints (B, K, 2)."""
        return self.decode(self.codebook[indices])

    def decode_logits(self, logits: Tensor) -> Tensor:
        """Soft decoding: ``softmax(logits) @ codebook`` through the decoder, (B, M, V) -> (B, K, 2)."""
        return self.decode(logits.softmax(dim=-1) @ self.codebook)

    # -- stage-1 step
    def forward(self, joints: Tensor, joint_feats: Tensor | None = None) -> TokenizerOutput:
        """Encode, quantise, decode. In training mode: random joint drop, EMA codebook update (before
        which the quantised vectors are taken), straight-through gradients and the commitment loss."""
        train = self.training
        enc = self.encode(joints, joint_feats, drop=train)
        idx = self.quantize(enc)
        quant = self.codebook[idx]
        if train:
            self._ema_update(enc.detach(), idx)
            commitment = F.mse_loss(enc, quant.detach())
            quant = enc + (quant - enc).detach()
        else:
            commitment = enc.new_zeros(())
        return TokenizerOutput(self.decode(quant), idx, enc, commitment)

    @torch.no_grad()
    def _ema_update(self, enc: Tensor, idx: Tensor) -> None:
        cfg = self.cfg
        v, d = self.codebook.shape
        flat, ids = enc.reshape(-1, d).float(), idx.reshape(-1)
        counts = torch.zeros(v, device=enc.device).index_add_(0, ids, torch.ones_like(ids, dtype=torch.float32))
        dw = torch.zeros(v, d, device=enc.device).index_add_(0, ids, flat)
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if distributed:  # the official code all-reduces unconditionally (breaks single-process runs)
            both = torch.cat((counts, dw.flatten()))
            dist.all_reduce(both)
            counts, dw = both[:v], both[v:].reshape(v, d)
        decay, eps = cfg.ema_decay, cfg.laplace_eps
        size = self.ema_cluster_size * decay + (1 - decay) * counts
        n = size.sum()
        size = (size + eps) / (n + v * eps) * n
        ema_w = self.ema_w * decay + (1 - decay) * dw
        if cfg.dead_code_threshold > 0:  # explicit restarts (not in the official code): no host sync
            dead = size < cfg.dead_code_threshold
            fresh = flat[torch.randint(flat.shape[0], (v,), device=enc.device)]
            if distributed:
                dist.broadcast(fresh, 0)
            size = torch.where(dead, torch.ones_like(size), size)
            ema_w = torch.where(dead[:, None], fresh, ema_w)
        self.ema_cluster_size.copy_(size)
        self.ema_w.copy_(ema_w)
        self.codebook.copy_(ema_w / size[:, None])


# ----------------------------------------------------------------------------------------------- head
class PCTClassifierHead(nn.Module):
    """Stride-32 features (B, C, h, w) -> token logits (B, M, V)."""

    def __init__(self, cfg: HeadCfg, in_channels: int, feature_size: tuple[int, int], num_tokens: int,
                 codebook_size: int) -> None:
        super().__init__()
        c = cfg.conv_channels
        self.num_tokens = num_tokens
        self.conv_trans = nn.Sequential(nn.Conv2d(in_channels, c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.conv_blocks = nn.Sequential(*(BasicBlock(c, c) for _ in range(cfg.conv_blocks)))
        self.mixer_trans = _fc_block(c * feature_size[0] * feature_size[1], num_tokens * cfg.mixer.hidden)
        self.mixer = _mixer(cfg.mixer, num_tokens)
        self.mixer_norm = _fc_block(cfg.mixer.hidden, cfg.mixer.hidden)
        self.cls_pred = nn.Linear(cfg.mixer.hidden, codebook_size)
        init_conv_bn(self.modules(), std=0.001)

    def forward(self, feat: Tensor) -> Tensor:
        """(B, C, h, w) -> logits (B, M, V)."""
        b = feat.shape[0]
        x = self.conv_blocks(self.conv_trans(feat))
        x = self.mixer_trans(x.flatten(2).transpose(1, 2).flatten(1))  # (h, w, c) order, c fastest
        x = self.mixer(x.reshape(b, self.num_tokens, x.shape[-1] // self.num_tokens))
        return self.cls_pred(self.mixer_norm(x))


# ---------------------------------------------------------------------------------------------- model
class PCT(nn.Module):
    """PCT stage 1 (tokenizer, ``cfg.stage == "tokenizer"``) or stage 2 (classifier) in one class.

    Stage 2: ``forward(img)`` -> (joints (B, K, 2) crop pixels, pose scores (B, K)); :meth:`logits` gives
    the token logits (B, M, V) of a feature map.
    Stage 1: ``forward(joints, img=None)`` -> (recovered joints (B, K, 2), token indices (B, M)).
    """

    def __init__(self, cfg: PCTCfg) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        t = cfg.tokenizer
        need_backbone = cfg.stage == "classifier" or t.guided
        self.backbone = SwinV2(cfg.backbone) if (cfg.backbone is not None and need_backbone) else None
        self.head = (PCTClassifierHead(cfg.head, cfg.feature_channels, cfg.feature_size, t.num_tokens, t.codebook_size)
                     if cfg.stage == "classifier" else None)
        self.tokenizer = PCTTokenizer(t, cfg.feature_channels if t.guided else 0)
        if cfg.stage == "classifier":  # the files the config names are loaded by create_model (load_init_files)
            for p in self.tokenizer.parameters():
                p.requires_grad_(False)
        if self.backbone is not None and cfg.freeze_backbone:
            for p in self.backbone.parameters():
                p.requires_grad_(False)
        self.train()

    output_kind = "coords"  # the trainer/evaluator see crop-pixel joints, not heatmaps
    auto_precision = "bf16-gemm"  # --precision auto where the CPU's bfloat16 GEMMs pay (docs/speed.md "The default")
    # none for --precision bf16-backbone: the Swin V2 backbone is most of PCT and casts parts to float32 itself, and
    # full bfloat16 missed the bar on a trained PCT (-0.19 AP; PCT runs float32 under that choice, said once)
    image_backbone = None
    prunes = False  # every visual token is kept: nothing for --show-tokens
    train_loss = "pct"  # stage 1: reconstruction + commitment; stage 2: token cross-entropy + joint loss

    @property
    def task(self) -> str:
        """``tokenizer`` (stage 1: joints in, joints out) or ``topdown`` (stage 2: images to joints)."""
        return "tokenizer" if self.cfg.stage == "tokenizer" else "topdown"

    # -- public API
    @property
    def input_size(self) -> tuple[int, int]:
        """Expected input (height, width)."""
        return self.cfg.image_size

    @property
    def is_tokenizer(self) -> bool:
        """Whether this is a stage-1 (tokenizer) model."""
        return self.cfg.stage == "tokenizer"

    @property
    def needs_images(self) -> bool:
        """Whether a training step reads images (stage 2, or a guided tokenizer)."""
        return self.backbone is not None

    def dummy_inputs(self, batch: int = 1) -> tuple[Tensor, ...]:
        """A random input batch: images (stage 2), or joints (+ images when guided) (stage 1)."""
        h, w = self.cfg.image_size
        if self.cfg.stage == "classifier":
            return (torch.randn(batch, 3, h, w),)
        joints = torch.cat((torch.rand(batch, self.cfg.num_keypoints, 2) * torch.tensor([w, h]),
                            torch.ones(batch, self.cfg.num_keypoints, 1)), dim=-1)
        return (joints, torch.randn(batch, 3, h, w)) if self.cfg.tokenizer.guided else (joints,)

    def train(self, mode: bool = True) -> PCT:
        """Train mode, keeping frozen parts (backbone; tokenizer in stage 2) in eval mode."""
        super().train(mode)
        if self.backbone is not None and self.cfg.freeze_backbone:
            self.backbone.eval()
        if self.cfg.stage == "classifier":
            self.tokenizer.eval()
        return self

    def features(self, img: Tensor) -> Tensor:
        """Backbone stride-32 map (B, C, h, w) of images (B, 3, H, W)."""
        if self.backbone is None:
            raise ValueError("PCT: this model has no backbone (features must be given)")
        self._check_images(img)
        if self.cfg.freeze_backbone:
            with torch.no_grad():
                return self.backbone(img)
        return self.backbone(img)

    def forward(self, x: Tensor, img: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Stage 2: images -> (joints (B, K, 2), scores (B, K): the pose score copied to every joint).
        Stage 1: joints (B, K, 3) [, images when guided] -> (recovered joints (B, K, 2), indices (B, M))."""
        if self.cfg.stage == "classifier":
            logits = self.logits(self.features(x))
            joints = self.tokenizer.decode_logits(logits)
            return joints, self.pose_score(logits)[:, None].expand(-1, joints.shape[1])
        out = self.tokenize(x, img)
        return out.joints, out.indices

    def logits(self, feat: Tensor) -> Tensor:
        """Classifier logits (B, M, V) from the stride-32 map."""
        if self.head is None:
            raise ValueError("PCT: a stage-1 (tokenizer) model has no classifier head")
        return self.head(feat)

    def tokenize(self, joints: Tensor, img: Tensor | None = None, feat: Tensor | None = None) -> TokenizerOutput:
        """Run the tokenizer on joints (B, K, 3); image features come from ``feat`` or ``img`` when guided."""
        jf = None
        if self.cfg.tokenizer.guided:
            if feat is None:
                if img is None:
                    raise ValueError("PCT: the image-guided tokenizer needs the images (or their features)")
                feat = self.features(img)
            jf = joint_features(feat, joints, self.cfg.image_size[1])
        return self.tokenizer(joints, jf)

    @staticmethod
    def pose_score(logits: Tensor) -> Tensor:
        """Official pose score: the mean over tokens of the top-1 raw logit, (B, M, V) -> (B,)."""
        return logits.max(dim=-1).values.mean(dim=1)

    @torch.no_grad()
    def predict(self, img: Tensor, flip_indices: Sequence[int] | None = None) -> tuple[Tensor, Tensor]:
        """Stage 2 inference: (keypoints (B, K, 2) crop pixels, scores (B, K)); with ``flip_indices`` the
        mirrored image's prediction is un-flipped (``x -> W - 1 - x``) and averaged, scores too."""
        joints, score = self(img)
        if flip_indices is not None:
            joints, score = merge_flipped(joints, score, *self(img.flip(-1)), flip_indices, img.shape[-1])
        return joints, score

    def forward_train(self, joints: Tensor, img: Tensor | None = None) -> dict[str, Tensor]:
        """One training step's losses and statistics (``loss`` is the total): stage 1 joint + commitment
        loss, perplexity and codes in use; stage 2 token CE + joint loss and top-1 token accuracy."""
        t = self.cfg.tokenizer
        if self.cfg.stage == "tokenizer":
            out = self.tokenize(joints, img)
            joint = smooth_l1_joints(out.joints, joints, t.smooth_l1_beta)
            stats = codebook_usage(out.indices, t.codebook_size)
            loss = t.joint_loss_weight * joint + t.commitment_weight * out.commitment
            return {"loss": loss, "joint_loss": joint.detach(), "commitment_loss": out.commitment.detach(), **stats}
        feat = self.features(img)
        with torch.no_grad():
            target = self.tokenize(joints, feat=feat).indices  # frozen encoder, eval mode: no random drop
        logits = self.logits(feat)
        pred = self.tokenizer.decode_logits(logits)
        h = self.cfg.head
        token = F.cross_entropy(logits.flatten(0, 1).float(), target.flatten())
        joint = smooth_l1_joints(pred.float(), joints, t.smooth_l1_beta)
        acc = (logits.argmax(-1) == target).float().mean()
        return {"loss": h.token_loss_weight * token + h.joint_loss_weight * joint, "token_loss": token.detach(),
                "joint_loss": joint.detach(), "top1_acc": acc}

    def _check_images(self, img: Tensor) -> None:
        check_image_batch(img, self.cfg.image_size, "PCT", why="the head's spatial FC fixes the size")


def merge_flipped(joints: Tensor, score: Tensor, flipped_joints: Tensor, flipped_score: Tensor,
                  flip_indices: Sequence[int], width: int) -> tuple[Tensor, Tensor]:
    """PCT's flip test: the mirrored image's keypoints (B, K, 2) put back in the plain image's order and frame
    (``x -> width - 1 - x``) and averaged with the plain ones, scores (B, K) too. One home for the eager model
    and the onnxruntime session."""
    fj = flipped_joints[:, list(flip_indices)]
    fj = torch.stack((width - 1 - fj[..., 0], fj[..., 1]), dim=-1)
    return (joints + fj) / 2, (score + flipped_score) / 2


def codebook_usage(indices: Tensor, codebook_size: int) -> dict[str, Tensor]:
    """Perplexity of the token-index histogram and the number of distinct codes among ``indices``."""
    return codebook_usage_from_counts(torch.bincount(indices.flatten(), minlength=codebook_size))


def codebook_usage_from_counts(counts: Tensor) -> dict[str, Tensor]:
    """Perplexity and the number of codes in use of a code-count histogram (V,)."""
    counts = counts.float()
    p = counts / counts.sum().clamp(min=1)
    perplexity = torch.exp(-(p * torch.log(p.clamp(min=1e-12))).sum())
    return {"perplexity": perplexity, "codes_in_use": (counts > 0).sum().float()}


# ------------------------------------------------------------------------- official checkpoint conversion
_MIXER_KEY = re.compile(r"^(.*?)(encoder|decoder|mixer_head)\.(\d+)\.(layernorm1|layernorm2|MLP_token\.ff|MLP_channel\.ff)\.?(.*)$")
_MIXER_PART = {"layernorm1": "norm1", "layernorm2": "norm2", "MLP_token.ff": "token_mlp", "MLP_channel.ff": "channel_mlp"}
_MLP_IDX = {"0": "fc1", "3": "fc2"}
_TOKENIZER_RENAMES = {"encoder_layer_norm": "encoder_norm", "decoder_layer_norm": "decoder_norm"}
_HEAD_RENAMES = (
    (re.compile(r"^conv_head\.0\."), "conv_blocks."),
    (re.compile(r"^mixer_trans\.ff\."), "mixer_trans."),
    (re.compile(r"^mixer_norm_layer\.ff\."), "mixer_norm."),
    (re.compile(r"^cls_pred_layer\."), "cls_pred."),
)


def _convert_mixer_key(key: str) -> str | None:
    m = _MIXER_KEY.match(key)
    if not m:
        return None
    prefix, stack, i, part, rest = m.groups()
    stack = "mixer" if stack == "mixer_head" else stack
    new = _MIXER_PART[part]
    if part.endswith(".ff"):
        idx, _, leaf = rest.partition(".")
        if idx not in _MLP_IDX:
            return None
        return f"{prefix}{stack}.{i}.{new}.{_MLP_IDX[idx]}.{leaf}"
    return f"{prefix}{stack}.{i}.{new}.{rest}"


def convert_official_tokenizer(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Official ``PCT_Tokenizer`` keys (no prefix) -> :class:`PCTTokenizer` keys."""
    out = {}
    for key, value in state_dict.items():
        new = _convert_mixer_key(key)
        if new is None:
            head, _, rest = key.partition(".")
            new = _TOKENIZER_RENAMES.get(head, head) + (f".{rest}" if rest else "")
        out[new] = value
    return out


def convert_official_head(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Official ``PCT_Head`` classifier keys (no prefix, tokenizer excluded) -> :class:`PCTClassifierHead` keys."""
    out = {}
    for key, value in state_dict.items():
        new = _convert_mixer_key(key)
        out[new if new is not None else rename_by_rules(key, _HEAD_RENAMES)] = value
    return out


def is_official_layout(state_dict: Mapping[str, Tensor]) -> bool:
    """True for a Gengzigang/PCT state dict: a bare tokenizer, a ``PCT_Head`` or a whole mmpose model."""
    return any(k.endswith("encoder_layer_norm.weight") for k in state_dict)  # ours: encoder_norm


def checkpoint_filter_fn(state_dict: Mapping[str, Tensor], model: PCT) -> dict[str, Tensor]:
    """Map an official PCT state dict to this model's keys.

    Accepts the bare ``PCT_Tokenizer`` dict, the ``PCT_Head`` dict (``tokenizer.*`` + head keys), or a
    released mmpose checkpoint (``backbone.*``, ``extra_backbone.*``, ``keypoint_head.*``). The extra
    backbone (image guidance) is a frozen copy of the main one and is dropped when both exist; it becomes
    the backbone of a guided stage-1 model. Our own layout passes through unchanged.
    """
    if not is_official_layout(state_dict):
        return dict(state_dict)
    sd = dict(state_dict)
    if any(k.startswith("keypoint_head.") for k in sd):
        head = {k[len("keypoint_head."):]: v for k, v in sd.items() if k.startswith("keypoint_head.")}
        bb = {k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")}
        extra = {k[len("extra_backbone."):]: v for k, v in sd.items() if k.startswith("extra_backbone.")}
        rest = {k: v for k, v in sd.items() if not k.startswith(("keypoint_head.", "backbone.", "extra_backbone."))}
        sd = dict(head, **{f"backbone.{k}": v for k, v in (bb or extra).items()}, **rest)
    elif "encoder_layer_norm.weight" in sd:  # bare tokenizer
        sd = {f"tokenizer.{k}": v for k, v in sd.items()}
    out: dict[str, Tensor] = {}
    tok = {k[len("tokenizer."):]: v for k, v in sd.items() if k.startswith("tokenizer.")}
    bb = {k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")}
    head = {k: v for k, v in sd.items() if not k.startswith(("tokenizer.", "backbone."))}
    out.update({f"tokenizer.{k}": v for k, v in convert_official_tokenizer(tok).items()})
    if head:
        out.update({f"head.{k}": v for k, v in convert_official_head(head).items()})
    if bb:
        if is_official_swin_v2(bb):
            bb = convert_official_swin_v2(bb, model.backbone)
        out.update({f"backbone.{k}": v for k, v in bb.items()})
    return out


def tokenizer_state(sd: dict[str, Tensor], cfg: TokenizerCfg, path: str) -> dict[str, Tensor]:
    """A stage-1 checkpoint's tokenizer state dict (ours: ``tokenizer.*``; official: bare,
    ``keypoint_head.tokenizer.*`` or ``tokenizer.*``) in our layout; a codebook, joint-count or token-count
    mismatch with ``cfg`` names both sizes (``path`` names the file)."""
    for prefix in ("keypoint_head.tokenizer.", "tokenizer."):
        if any(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
            break
    if "encoder_layer_norm.weight" in sd:
        sd = convert_official_tokenizer(sd)
    if "codebook" not in sd:
        raise ValueError(f"{path}: no tokenizer codebook found (expected a stage-1 PCT checkpoint)")
    v, d = sd["codebook"].shape
    if (v, d) != (cfg.codebook_size, cfg.token_dim):
        raise ValueError(f"{path}: the tokenizer codebook is {v} x {d} but the config expects codebook_size "
                         f"{cfg.codebook_size} x token_dim {cfg.token_dim} (tokenizer.codebook_size)")
    k = sd["token_mlp.weight"].shape[1] if "token_mlp.weight" in sd else None
    m = sd["token_mlp.weight"].shape[0] if "token_mlp.weight" in sd else None
    if k is not None and k != cfg.num_joints:
        raise ValueError(f"{path}: the tokenizer was trained for {k} joints but the config expects "
                         f"num_joints {cfg.num_joints} (tokenizer.num_joints)")
    if m is not None and m != cfg.num_tokens:
        raise ValueError(f"{path}: the tokenizer has {m} tokens but the config expects num_tokens {cfg.num_tokens}")
    return sd


def backbone_state(sd: dict[str, Tensor], backbone: SwinV2) -> dict[str, Tensor]:
    """The heatmap-pretrained Swin V2's state dict (official layout, optional ``module.``/``backbone.`` prefix;
    heatmap-head keys are ignored; or ours) for ``backbone``."""
    for prefix in ("backbone.", "module.backbone."):
        if any(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
            break
    return convert_official_swin_v2(sd, backbone) if is_official_swin_v2(sd) else sd


def load_init_files(model: PCT, load: InitLoader) -> None:
    """Load the files ``model.cfg`` names to start from, strictly, through ``load``
    (:func:`posetokens.convert.load_init_file`, which :func:`~posetokens.registry.create_model` passes): the
    heatmap-pretrained backbone (``backbone_ckpt``) and, for stage 2, the stage-1 tokenizer (``tokenizer_ckpt``)."""
    cfg = model.cfg
    if cfg.backbone_ckpt and model.backbone is not None:
        load(model.backbone, cfg.backbone_ckpt, "PCT backbone", lambda sd, path: backbone_state(sd, model.backbone))
    if cfg.stage == "classifier" and cfg.tokenizer_ckpt:
        described = load(model.tokenizer, cfg.tokenizer_ckpt, "PCT tokenizer",
                         lambda sd, path: tokenizer_state(sd, cfg.tokenizer, path))
        trained_at = _image_size_of(described)
        if trained_at is not None and trained_at != tuple(cfg.image_size):
            raise ValueError(f"{cfg.tokenizer_ckpt}: the tokenizer was trained at {trained_at[0]}x{trained_at[1]} "
                             f"crops but this model's image_size is {cfg.image_size[0]}x{cfg.image_size[1]}; the "
                             "tokenizer reads and writes crop pixels: train stage 1 at the same model.overrides."
                             "image_size")


def _image_size_of(described: dict | None) -> tuple[int, int] | None:
    """The (height, width) a checkpoint of ours was trained at (its overrides, else its zoo model's), or None
    when the file does not say (an official release, a bare state dict, a model not in the zoo)."""
    if not described or "zoo_name" not in described:
        return None
    size = (described.get("model_overrides") or {}).get("image_size")
    if size is None:
        try:
            size = get_entry(described["zoo_name"]).cfg.image_size
        except (KeyError, ValueError):
            return None
    return tuple(int(v) for v in size)


# ----------------------------------------------------------------------------------------- family + zoo
register_family(
    Family(
        name="pct",
        protocol="pct",
        build=PCT,
        convert=checkpoint_filter_fn,
        init_files=load_init_files,
        paper_counter="linear_conv",
        convention="MACs of nn.Linear / nn.Conv2d module calls only (mmcv/fvcore-style hook), called 'GFLOPs': "
        "misses Swin's functional q/k/v projection and every attention/codebook matmul; params: every "
        "parameter incl. the (unused at test) tokenizer encoder, codebook buffer excluded",
        param_counter="all",
    )
)

_SRC = "PCT (CVPR'23) Table; official-code figures measured in shared/specs/pct.md"
_TOK = TokenizerCfg()
_WO = TokenizerCfg(guide_ratio=0.0)
_STAGE1 = dict(stage="tokenizer")

for _name, _bb, _kw, _paper in [
    ("pct_tokenizer_base", SWIN_V2_B, dict(_STAGE1, tokenizer=_TOK), None),
    ("pct_tokenizer_base_woimgguide", None, dict(_STAGE1, tokenizer=_WO), None),
    ("pct_tokenizer_large", SWIN_V2_L, dict(_STAGE1, tokenizer=_TOK), None),
    ("pct_tokenizer_huge", SWIN_V2_H, dict(_STAGE1, tokenizer=_TOK), None),
    ("pct_base_coco_256x256", SWIN_V2_B, dict(tokenizer=_TOK), PaperRow(None, 15.2, 128.1, 15.32, _SRC)),
    ("pct_base_woimgguide_coco_256x256", SWIN_V2_B, dict(tokenizer=_WO), None),
    ("pct_large_coco_256x256", SWIN_V2_L, dict(tokenizer=_TOK), PaperRow(None, None, 236.7, 34.04, _SRC)),
    ("pct_huge_coco_256x256", SWIN_V2_H, dict(tokenizer=_TOK), PaperRow(None, None, 691.3, 118.60, _SRC)),
]:
    _in = _bb.num_features if _bb is not None else 1024
    register_model(_name, "pct", PCTCfg(backbone=_bb, in_channels=_in, **_kw), _paper)
