"""GTPT (ECCV'24): group-based token pruning transformer, T/S/B, COCO and COCO-WholeBody, as one model.

Forward pass (spec: ``shared/specs/gtpt.md``):

1. ShuffleNetV2-style stem (U-shaped for B) to a stride-4 map -> BN -> (ph, pw) patches in (p1, p2, c)
   order -> Linear: N visual tokens, plus the fixed 2-D sine PE ("sine-full": re-added before each block
   but the first).
2. Coarse blocks carry one human token. After the attention of block ``expand_after`` (and its pruning)
   the human token expands into the coarse tokens (whole-body: part tokens, then body keypoint tokens).
3. Transition: the body tokens split into groups (padded to equal size with masked copies), each group
   gets its own channel-gated copy of the visual tokens and of their PE, prunes them by its keypoint
   queries and, whole-body, puts its dense keypoint tokens (never pruned, zero PE) in front of them.
4. Group blocks: multi-head group attention (queries see all groups' sparse tokens plus their own
   slots), pruned per group by the group's queries.
5. Shared SimCC heads on the output tokens (body, then dense in dataset order): raw x / y logits.

Pruning happens where the per-block budget ``int(N * keep_rate[block])`` changes; scores are the softmax
pool of pre-softmax logits over (heads x queries). Groups, dense runs and keep rates are config.

Sections: config -> model -> official checkpoint conversion -> family registration -> variants.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor, nn

from posetokens.layers.checks import check_image_batch, require_positive, tracing
from posetokens.layers import (
    Block,
    PatchEmbed,
    check_sine_pos_embed,
    missing_sine_pos_embed,
    gather_group_tokens,
    gather_tokens,
    group_slot_index,
    group_topk,
    sine_pos_embed_2d,
    softmax_pool,
    topk_indices,
)
from posetokens.models.backbones.shufflenet import ShuffleStem, ShuffleStemCfg
from posetokens.registry import Family, PaperRow, register_family, register_model, rename_by_rules


# --------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class GroupSpec:
    """One keypoint group.

    ``sparse``: body keypoint ids (padded in front with masked copies of the first to the largest group's
    size); ``parts``: part-token ids whose queries join the transition score; ``dense``: dense-run ids
    (see :attr:`GTPTCfg.dense_runs`) whose tokens fill the front of the group's slots.
    """

    name: str
    sparse: tuple[int, ...]
    parts: tuple[int, ...] = ()
    dense: tuple[int, ...] = ()

    def __post_init__(self) -> None:  # any sequence of integers (lists, NumPy ints) becomes a tuple of ints
        for part in ("sparse", "parts", "dense"):
            ids = getattr(self, part)
            try:
                if isinstance(ids, (str, bytes)) or any(isinstance(i, bool) for i in ids):
                    raise TypeError
                object.__setattr__(self, part, tuple(operator.index(i) for i in ids))
            except TypeError:
                raise ValueError(f"GroupSpec {self.name!r}.{part}: expected a list of integer ids, got "
                                 f"{ids!r}") from None


COCO_GROUPS = (
    GroupSpec("head", (0, 1, 2, 3, 4)),
    GroupSpec("upper", (5, 6, 7, 8, 9, 10)),
    GroupSpec("lower", (11, 12, 13, 14, 15, 16)),
)
# Part tokens: 0 face, 1 left hand, 2 right hand, 3 left foot, 4 right foot. Dense runs (part, count) in
# the official fine-token order; output order is body, feet, face, hands (COCO-WholeBody).
WHOLEBODY_DENSE_RUNS = ((0, 68), (1, 21), (2, 21), (3, 3), (4, 3))
WHOLEBODY_GROUPS = (
    GroupSpec("head", (0, 1, 2, 3, 4), parts=(0,), dense=(0,)),
    GroupSpec("upper", (5, 6, 7, 8, 9, 10), parts=(1, 2), dense=(1, 2)),
    GroupSpec("lower", (11, 12, 13, 14, 15, 16), parts=(3, 4), dense=(3, 4)),
)


def per_block(stage_rates: tuple[float, ...], blocks_per_rate: int = 3) -> tuple[float, ...]:
    """Expand the official per-stage ``KEEP_RATE`` (one per 3 blocks) into one rate per block."""
    return tuple(r for r in stage_rates for _ in range(blocks_per_rate))


@dataclass(frozen=True)
class GTPTCfg:
    """Every hyperparameter of a GTPT model. Sizes are (height, width)."""

    num_body: int = 17
    image_size: tuple[int, int] = (256, 192)
    stem: ShuffleStemCfg = field(default_factory=ShuffleStemCfg)
    patch_size: tuple[int, int] = (4, 3)  # on the stride-4 map
    dim: int = 128
    heads: int = 8
    mlp_ratio: float = 3.0
    scale_with_head: bool = False  # official: dim ** -0.5
    num_coarse: int = 6
    num_group_blocks: int = 6
    expand_after: int = 3  # block whose attention output expands the human token
    keep_rate: tuple[float, ...] = per_block((1.0, 0.7, 0.3, 0.1))  # one per block
    groups: tuple[GroupSpec, ...] = COCO_GROUPS
    num_parts: int = 0
    dense_runs: tuple[tuple[int, int], ...] = ()  # (part id, count) in fine-token order
    dense_output_order: tuple[int, ...] = ()  # dense-run ids in output order
    split_ratio: float = 2.0

    @property
    def num_keypoints(self) -> int:
        """Output keypoints: body plus dense."""
        return self.num_body + sum(n for _, n in self.dense_runs)

    @property
    def patch_grid(self) -> tuple[int, int]:
        """Number of patches (rows, cols)."""
        return self.image_size[0] // 4 // self.patch_size[0], self.image_size[1] // 4 // self.patch_size[1]

    @property
    def num_patches(self) -> int:
        """Visual tokens before pruning."""
        gh, gw = self.patch_grid
        return gh * gw

    @property
    def group_size(self) -> int:
        """Sparse tokens per group (largest group; smaller ones are padded)."""
        return max(len(g.sparse) for g in self.groups)

    def dense_count(self, g: int) -> int:
        """Dense tokens of group ``g``."""
        return sum(self.dense_runs[r][1] for r in self.groups[g].dense)

    def budget(self, block: int) -> int:
        """Slots (image + dense) per group / visual tokens after ``block``'s attention: ``int(N * rate)``."""
        return int(self.num_patches * self.keep_rate[block])

    def validate(self) -> None:
        """Raise ``ValueError`` for inconsistent sizes."""
        require_positive(self, "num_body", "image_size", "patch_size", "dim", "heads", "num_coarse", "num_group_blocks")
        h, w = self.image_size
        ph, pw = self.patch_size
        if h % (4 * ph) or w % (4 * pw):
            raise ValueError(f"GTPTCfg.image_size {self.image_size} is not tiled by 4x{self.patch_size} patches")
        if self.dim % self.heads:
            raise ValueError(f"GTPTCfg.dim {self.dim} is not divisible by heads {self.heads}")
        if len(self.keep_rate) != self.num_coarse + self.num_group_blocks:
            raise ValueError(f"GTPTCfg.keep_rate needs {self.num_coarse + self.num_group_blocks} rates (one per block)")
        if not 0 <= self.expand_after < self.num_coarse:
            raise ValueError(f"GTPTCfg.expand_after {self.expand_after} must be a coarse block")
        if not self.groups:
            raise ValueError("GTPTCfg.groups is empty; expected one group or more, each with its body keypoints")
        for n, g in enumerate(self.groups):
            if not isinstance(g, GroupSpec):
                raise ValueError(f"GTPTCfg.groups[{n}]: expected a GroupSpec (or a mapping of its fields), got "
                                 f"{type(g).__name__}")
            for part, ids, top, of in (("sparse", g.sparse, self.num_body, "num_body"),
                                        ("parts", g.parts, self.num_parts, "num_parts"),
                                        ("dense", g.dense, len(self.dense_runs), "len(dense_runs)")):
                if not isinstance(ids, tuple) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
                    raise ValueError(f"GTPTCfg.groups[{n}].{part}: expected a list of integer ids, got {ids!r}")
                if any(not 0 <= i < top for i in ids):
                    want = f"ids from 0 to {of} - 1 = {top - 1}" if top else f"none ({of} is 0)"
                    raise ValueError(f"GTPTCfg.groups[{n}].{part}: expected {want}, got {list(ids)}")
            if not g.sparse:
                raise ValueError(f"GTPTCfg.groups[{n}] ({g.name!r}) has no body keypoints ('sparse' is empty)")
        ids = sorted(i for g in self.groups for i in g.sparse)
        if ids != list(range(self.num_body)):
            raise ValueError(f"GTPTCfg.groups must cover body keypoints 0..{self.num_body - 1} once each, got {ids}")
        runs = sorted(r for g in self.groups for r in g.dense)
        if runs != list(range(len(self.dense_runs))) or sorted(self.dense_output_order) != runs:
            raise ValueError("GTPTCfg: every dense run must belong to one group and appear once in dense_output_order")
        for blk in range(self.num_coarse, self.num_coarse + self.num_group_blocks):
            for g in range(len(self.groups)):
                if self.budget(blk) < self.dense_count(g):
                    raise ValueError(f"GTPTCfg: block {blk} budget {self.budget(blk)} < dense tokens of group {g}")


class PruneRecord(NamedTuple):
    """One pruning step. Group steps pad per-group rows; ``counts[g]`` entries of row g are valid.

    ``keep_idx`` indexes the candidate visual tokens entering the step ((B, K), or (B, G, K) per group, in
    descending score order); ``patch_idx`` the same as patch ids (row-major over the patch grid);
    ``score`` (B, N) or (B, G, N_candidates) over the candidates (image tokens only).
    """

    block: int
    keep_idx: Tensor
    patch_idx: Tensor
    score: Tensor
    counts: tuple[int, ...] = ()


class GTPTOutput(NamedTuple):
    """SimCC logits plus every pruning step (coarse, transition, group)."""

    simcc_x: Tensor
    simcc_y: Tensor
    pruned: list[PruneRecord]

    @property
    def prediction(self) -> tuple[Tensor, Tensor]:
        """What :meth:`GTPT.forward` returns: the SimCC logits ``(x, y)``."""
        return self.simcc_x, self.simcc_y


# ---------------------------------------------------------------------------------------------- model
class GTPT(nn.Module):
    """GTPT-T/S/B for COCO or COCO-WholeBody (config :class:`GTPTCfg`)."""

    task = "topdown"  # what the trainer, test and inference do with it (posetokens.protocols: Protocol.task)
    auto_precision = "fp32"  # --precision auto: exact, one precision at every batch (docs/speed.md "The default")
    output_kind = "simcc"  # the trainer and evaluation pick the SimCC codec, loss and flip test from this
    image_backbone = "stem"  # the CNN before the tokens: what --precision bf16-backbone runs in bfloat16
    norms_to_fold = (("patch_norm", "patch_embed"),)  # optimize_for_inference folds the BN into the embedding
    keypoint_rows = (("keypoint_token", 1),)  # one row per keypoint (output order): a partial load maps them by name

    def __init__(self, cfg: GTPTCfg) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.pruning = True  # runtime switch: False runs the unpruned (teacher) path, all rates 1
        c, g = cfg.dim, len(cfg.groups)
        self.stem = ShuffleStem(cfg.stem)
        self.patch_norm = nn.BatchNorm2d(cfg.stem.out_channels)
        ph, pw = cfg.patch_size
        self.patch_embed = PatchEmbed(cfg.stem.out_channels, (ph, pw), c)
        self.register_buffer("pos_embed", sine_pos_embed_2d(*cfg.patch_grid, c), persistent=False)
        self.human_token = nn.Parameter(torch.zeros(1, 1, c))
        self.keypoint_token = nn.Parameter(torch.zeros(1, cfg.num_body, c))
        num_dense = cfg.num_keypoints - cfg.num_body
        # whole-body only: part tokens (coarse stage) and dense keypoint embeddings (group stage)
        self.part_token = nn.Parameter(torch.zeros(1, cfg.num_parts, c)) if cfg.num_parts else None
        self.dense_token = nn.Parameter(torch.zeros(1, num_dense, c)) if num_dense else None
        scale = None if cfg.scale_with_head else c**-0.5
        hidden = int(c * cfg.mlp_ratio)
        self.blocks = nn.ModuleList(
            Block(c, cfg.heads, hidden, qkv_bias=False, scale=scale) for _ in range(cfg.num_coarse + cfg.num_group_blocks)
        )
        self.gate = nn.Sequential(nn.Linear(c, c // 2), nn.ReLU(), nn.Linear(c // 2, c * g), nn.Sigmoid())
        h, w = cfg.image_size
        self.head_x = nn.Sequential(nn.LayerNorm(c), nn.Linear(c, int(w * cfg.split_ratio)))
        self.head_y = nn.Sequential(nn.LayerNorm(c), nn.Linear(c, int(h * cfg.split_ratio)))
        self._build_tables()
        for t in (self.human_token, self.part_token, self.keypoint_token, self.dense_token):
            if t is not None:
                nn.init.trunc_normal_(t, std=0.02)

    def _build_tables(self) -> None:
        """Constant index tables derived from the group spec (buffers, not saved)."""
        cfg, s = self.cfg, self.cfg.group_size
        sparse, valid, queries, qvalid = [], [], [], []
        nq = max(s + len(gr.parts) for gr in cfg.groups)
        p = cfg.num_parts
        for gr in cfg.groups:
            pad = s - len(gr.sparse)
            sparse.append([gr.sparse[0]] * pad + list(gr.sparse))
            valid.append([False] * pad + [True] * len(gr.sparse))
            q = list(gr.parts) + [p + i for i in gr.sparse]  # coarse-token ids: parts first, then body
            queries.append(q + [0] * (nq - len(q)))
            qvalid.append([True] * len(q) + [False] * (nq - len(q)))
        run_start, acc = [], 0
        for _, n in cfg.dense_runs:
            run_start.append(acc)
            acc += n
        dense_part = [part for part, n in cfg.dense_runs for _ in range(n)]
        # per group: where its dense tokens start in the fine-token order (runs of a group are consecutive)
        fixed_start, fixed_count = [], []
        for gi, gr in enumerate(cfg.groups):
            fixed_start.append(run_start[gr.dense[0]] if gr.dense else 0)
            fixed_count.append(cfg.dense_count(gi))
            if gr.dense and list(gr.dense) != list(range(gr.dense[0], gr.dense[0] + len(gr.dense))):
                raise ValueError(f"GTPTCfg: dense runs of group {gr.name} must be consecutive, got {gr.dense}")
        self._fixed_start, self._fixed_count = tuple(fixed_start), tuple(fixed_count)
        self.register_buffer("_fixed_col", torch.tensor(fixed_count, dtype=torch.long)[:, None], persistent=False)
        # each group's keypoint queries of the group-block scores: its sparse tokens (padding first) and dense slots
        self._score_rows = tuple((s - len(gr.sparse), s + fixed_count[gi]) for gi, gr in enumerate(cfg.groups))
        self.register_buffer("_sparse_idx", torch.tensor(sparse), persistent=False)  # (G, S) body ids
        self.register_buffer("_key_valid", torch.tensor(valid).flatten(), persistent=False)  # (G*S,)
        self.register_buffer("_score_q", torch.tensor(queries), persistent=False)  # (G, Q) coarse ids
        self.register_buffer("_score_q_valid", torch.tensor(qvalid), persistent=False)
        self.register_buffer("_dense_part", torch.tensor(dense_part, dtype=torch.long), persistent=False)
        # output index into the flat per-group tokens, computed for a slot count per group at runtime
        body_pos = {}
        for gi, row in enumerate(sparse):
            for si, kp in enumerate(row):
                if valid[gi][si]:
                    body_pos[kp] = (gi, si)
        dense_pos = []
        for r in cfg.dense_output_order:
            gi = next(i for i, gr in enumerate(cfg.groups) if r in gr.dense)
            off = run_start[r] - fixed_start[gi]
            dense_pos += [(gi, s + off + t) for t in range(cfg.dense_runs[r][1])]
        # (K, 2) group and slot of each output keypoint, dataset order: index gi * slots + si at runtime
        out_pos = [body_pos[j] for j in range(cfg.num_body)] + dense_pos
        self.register_buffer("_out_pos", torch.tensor(out_pos, dtype=torch.long).reshape(-1, 2), persistent=False)

    # -- public API
    @property
    def input_size(self) -> tuple[int, int]:
        """Expected input (height, width)."""
        return self.cfg.image_size

    def dummy_inputs(self, batch: int = 1) -> tuple[Tensor]:
        """A random input batch of the model's size."""
        return (torch.randn(batch, 3, *self.cfg.image_size),)

    @property
    def prunes(self) -> bool:
        """Whether the config drops any visual token (some keep rate below 1)."""
        return any(r < 1.0 for r in self.cfg.keep_rate)

    @property
    def train_loss(self) -> str:
        """The recipe's loss: ``gtpt`` (pruned and unpruned branches from one stem pass, :meth:`forward_train`,
        plus distillation) when the config prunes, else ``simcc_kl`` (one branch)."""
        return "gtpt" if self.prunes else "simcc_kl"

    def set_pruning(self, enabled: bool) -> None:
        """Turn pruning on (the deployed path) or off (the unpruned teacher path of training, all rates 1)."""
        self.pruning = bool(enabled)

    def forward(self, img: Tensor) -> tuple[Tensor, Tensor]:
        """Images (B, 3, H, W) to SimCC logits ``(x (B, K, W*r), y (B, K, H*r))``."""
        return self._forward(img, record=False).prediction

    def forward_tokens(self, img: Tensor) -> GTPTOutput:
        """Like :meth:`forward`, also returning every pruning step's kept indices and scores."""
        return self._forward(img, record=True)

    def forward_train(self, img: Tensor) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
        """Training step's two branches from one stem pass: (pruned logits, unpruned logits)."""
        tokens = self.embed(img)
        pruned = self._transformer(tokens, self.cfg.keep_rate, record=False)
        full = self._transformer(tokens, (1.0,) * len(self.cfg.keep_rate), record=False)
        return (pruned.simcc_x, pruned.simcc_y), (full.simcc_x, full.simcc_y)

    def embed(self, img: Tensor) -> Tensor:
        """Stem and patch embedding: (B, 3, H, W) -> (B, 1 + N, C), human token first, PE added."""
        self._check_input(img)
        b = img.shape[0]
        # the inference copy (patch_norm folded into the embedding, channels-last, float32 images on the CPU, where
        # it was measured) runs the stem's last stage without its interleaves and embeds the map in pieces (a
        # ChannelPieces: hooks on the stem see that, not a tensor). A tracer (export, torch.compile, jit.trace) and
        # a copy in bfloat16 (a rounding after each part) keep the one map and the one convolution. The stem is
        # called, not a method of it, so hooks on it still run: bf16-backbone's cast its input to bfloat16 and each
        # part of its output back to float32
        if (isinstance(self.patch_norm, nn.Identity) and self.stem.ends_in_shuffle and not tracing()
                and img.dtype == torch.float32 and img.device.type == "cpu"
                and img.is_contiguous(memory_format=torch.channels_last)):
            x = self.patch_embed(self.stem(img, pieces=True))
        else:
            x = self.patch_embed(self.patch_norm(self.stem(img)))
        return torch.cat((self.human_token.expand(b, -1, -1), x + self.pos_embed), dim=1)

    # -- internals
    def _check_input(self, img: Tensor) -> None:
        check_image_batch(img, self.cfg.image_size, type(self).__name__)

    def _forward(self, img: Tensor, record: bool) -> GTPTOutput:
        rates = self.cfg.keep_rate if self.pruning else (1.0,) * len(self.cfg.keep_rate)
        return self._transformer(self.embed(img), rates, record)

    def _transformer(self, x: Tensor, rates: tuple[float, ...], record: bool) -> GTPTOutput:
        cfg = self.cfg
        n_all = cfg.num_patches
        b, c = x.shape[0], cfg.dim
        pos = self.pos_embed.expand(b, -1, -1)
        ids = torch.arange(n_all, device=x.device).expand(b, -1)
        k = 1
        logits = x.new_zeros(0)
        pruned: list[PruneRecord] = []
        # ---- coarse blocks
        for i in range(cfg.num_coarse):
            blk = self.blocks[i]
            if i > 0:
                x = torch.cat((x[:, :k], x[:, k:] + pos), dim=1)
            target = int(n_all * rates[i])
            prune = x.shape[1] - k != target
            if prune or i == cfg.num_coarse - 1:
                x, logits = blk.attend_logits(x, k)
            else:
                x = blk.attend(x)
            if prune:
                score = softmax_pool(logits[..., k:].flatten(1, 2), dim=1)  # (B, N)
                idx = topk_indices(score, target)
                x = torch.cat((x[:, :k], gather_tokens(x[:, k:], idx)), dim=1)
                pos, ids = gather_tokens(pos, idx), gather_tokens(ids, idx)
                if record:
                    pruned.append(PruneRecord(i, idx, ids, score))
            if i == cfg.expand_after:
                coarse = self.keypoint_token
                if self.part_token is not None:
                    coarse = torch.cat((self.part_token, coarse), dim=1)
                x = torch.cat((x[:, :1] + coarse, x[:, 1:]), dim=1)
                k = coarse.shape[1]
            x = blk.feed(x)
        if k == 1:
            raise ValueError("GTPT: the human token was never expanded (expand_after)")
        # ---- transition: groups, gates, per-group pruning, dense tokens
        g, s, p = len(cfg.groups), cfg.group_size, cfg.num_parts
        img_tok, n = x[:, k:], x.shape[1] - k
        sparse = x[:, p:k][:, self._sparse_idx]  # (B, G, S, C)
        gate = self.gate(img_tok).reshape(b, n, g, c)  # (B, n, G, C): each token's gate for each group
        blk_t = cfg.num_coarse
        budget = int(n_all * rates[blk_t])
        keep = [budget - d for d in self._fixed_count]
        if any(kk != n for kk in keep):
            q = logits[..., k:][:, :, self._score_q]  # (B, H, G, Q, n)
            q = q.permute(0, 2, 1, 3, 4).flatten(2, 3)  # (B, G, H*Q, n)
            valid = self._score_q_valid[None, :, None, :, None].expand(1, -1, q.shape[2] // self._score_q.shape[1], -1, 1)
            score = softmax_pool(q, dim=2, valid=valid.flatten(2, 3))  # (B, G, n)
            idx = group_topk(score, keep)
            n_dense = 0 if self.dense_token is None else self.dense_token.shape[1]
            slot = group_slot_index(idx, self._fixed_start, self._fixed_count, n_dense, budget)  # [dense | image]
            # gate only the kept tokens: gather each slot's token, position and its group's gate, then multiply
            # (the products of gating all n tokens first, for the budget's share of them)
            tok = (slot - n_dense).clamp(min=0)  # (B, G, budget) image token of each slot; dense slots: replaced
            flat = tok.flatten(1)
            gate_s = gather_tokens(gate.flatten(1, 2), (tok * g + torch.arange(g, device=x.device)[:, None]).flatten(1))
            slots = (gather_tokens(img_tok, flat) * gate_s).view(b, g, budget, c)
            pos_g = (gather_tokens(pos, flat) * gate_s).view(b, g, budget, c)
            ids_g = gather_tokens(ids, flat).view(b, g, budget)
            if n_dense:  # whole-body: the fixed slots hold the dense keypoint tokens (no gate, no position, id -1)
                dense = x[:, :p][:, self._dense_part] + self.dense_token  # (B, D, C)
                is_dense = slot < n_dense
                dense_s = gather_tokens(dense, slot.clamp(max=n_dense - 1).flatten(1)).view(b, g, budget, c)
                slots = torch.where(is_dense[..., None], dense_s, slots)
                pos_g, ids_g = pos_g.masked_fill(is_dense[..., None], 0.0), ids_g.masked_fill(is_dense, -1)
            if record:
                pruned.append(PruneRecord(blk_t, idx, gather_group_tokens(ids[:, None].expand(-1, g, -1), idx), score, tuple(keep)))
        else:
            gate = gate.permute(0, 2, 1, 3)  # (B, G, n, C)
            slots, pos_g, ids_g = img_tok[:, None] * gate, pos[:, None] * gate, ids[:, None].expand(-1, g, -1)
        x = torch.cat((sparse, slots), dim=2)  # (B, G, S + M, C)
        fixed = self._fixed_count
        # ---- group blocks
        for i in range(cfg.num_coarse, cfg.num_coarse + cfg.num_group_blocks):
            blk = self.blocks[i]
            x = torch.cat((x[:, :, :s], x[:, :, s:] + pos_g), dim=2)
            m = x.shape[2] - s
            target = int(n_all * rates[i])
            keep = [target - d for d in fixed]
            prune = any(kk != m - d for kk, d in zip(keep, fixed))
            # the score's queries are the group's keypoint tokens: its sparse ones and its fixed (dense) slots, a
            # different count per group in COCO-WholeBody; only their logits against the group's own slots are made
            x, lg = blk.attend_grouped(x, s, self._key_valid, score_rows=self._score_rows if prune else ())
            if prune:
                fc = self._fixed_col  # (G, 1) fixed slots of each group
                img_key = torch.arange(m, device=x.device)[None] >= fc  # (G, M)
                # (B, G, M): pooled over the heads and rows of each group
                score = torch.stack([softmax_pool(r.flatten(1, 2), dim=1) for r in lg], dim=1)
                score = score.masked_fill(~img_key[None], float("-inf"))
                idx = group_topk(score, keep)
                slot = group_slot_index(idx, [0] * g, fixed, 0, target)
                rest = x[:, :, s:]
                x = torch.cat((x[:, :, :s], gather_group_tokens(rest, slot)), dim=2)
                if record:
                    rel = idx - fc[None]
                    pruned.append(PruneRecord(i, rel, gather_group_tokens(ids_g, idx), score, tuple(keep)))
                pos_g, ids_g = gather_group_tokens(pos_g, slot), gather_group_tokens(ids_g, slot)
            x = blk.feed(x)
        # ---- outputs in dataset order
        ln = x.shape[2]
        flat = x.flatten(1, 2)
        kp = flat[:, self._out_pos[:, 0] * ln + self._out_pos[:, 1]]
        return GTPTOutput(self.head_x(kp), self.head_y(kp), pruned)


# ------------------------------------------------------------------------- official checkpoint conversion
_LAYER_KEY = re.compile(r"^transformer\.(layers|group_layers)\.(\d+)\.([01])\.(.*)$")
_LAYER_MAP = {
    ("0", "fn.norm.weight"): "norm1.weight", ("0", "fn.norm.bias"): "norm1.bias",
    ("0", "fn.fn.to_qkv.weight"): "attn.qkv.weight",
    ("0", "fn.fn.to_out.0.weight"): "attn.proj.weight", ("0", "fn.fn.to_out.0.bias"): "attn.proj.bias",
    ("1", "fn.norm.weight"): "norm2.weight", ("1", "fn.norm.bias"): "norm2.bias",
    ("1", "fn.fn.net.0.weight"): "mlp.fc1.weight", ("1", "fn.fn.net.0.bias"): "mlp.fc1.bias",
    ("1", "fn.fn.net.3.weight"): "mlp.fc2.weight", ("1", "fn.fn.net.3.bias"): "mlp.fc2.bias",
}
_RENAMES = (
    (re.compile(r"^stem\.layer\."), "stem.down.0."),
    (re.compile(r"^stem\.down_layer(\d+)\."), lambda m: f"stem.down.{int(m.group(1)) - 1}."),
    (re.compile(r"^stem\.upsample(\d+)\."), lambda m: f"stem.upsample.{int(m.group(1)) - 1}."),
    (re.compile(r"^stem\.up_layer(\d+)\."), lambda m: f"stem.up_layers.{int(m.group(1)) - 1}."),
    (re.compile(r"^patch2emb_norm\."), "patch_norm."),
    (re.compile(r"^patch2emb_mlp\."), "patch_embed."),
    (re.compile(r"^transformer\.group_mask\."), "gate."),
    (re.compile(r"^extra_token$"), "part_token"),
    (re.compile(r"^fine_keypoint_token$"), "dense_token"),
)


def is_official_layout(state_dict: Mapping[str, Tensor]) -> bool:
    """True for a haonanwang0522/GTPT checkpoint (either copy present)."""
    return any(k.endswith("features.human_token") for k in state_dict)


def checkpoint_filter_fn(state_dict: Mapping[str, Tensor], model: GTPT, branch: str = "ema") -> dict[str, Tensor]:
    """Map an official GTPT state dict to this model's keys, taking the EMA copy (``branch="ema"``, what
    the official eval uses) or the training copy (``branch="train"``).

    The other copy is dropped; the sine table is checked and dropped, the structural group masks dropped.
    Keys that match no rule are kept under their own name so that the strict load reports them.
    """
    if not is_official_layout(state_dict):
        return dict(state_dict)
    if branch not in ("ema", "train"):
        raise ValueError(f"checkpoint_filter_fn: branch must be 'ema' or 'train', got {branch!r}")
    has_ema = any(k.startswith("ema_") for k in state_dict)
    use_ema = branch == "ema" and has_ema
    n_coarse = model.cfg.num_coarse
    out: dict[str, Tensor] = {}
    has_pe = False
    for key, value in state_dict.items():
        if key.startswith("ema_"):
            if not use_ema:
                continue  # the other copy
            rest = key[4:]
        elif key.startswith(("features.", "mlp_head_")) and use_ema:
            continue  # the training copy
        else:
            rest = key
        if rest.startswith("mlp_head_x."):
            out["head_x." + rest.split(".", 1)[1]] = value
            continue
        if rest.startswith("mlp_head_y."):
            out["head_y." + rest.split(".", 1)[1]] = value
            continue
        if not rest.startswith("features."):
            out[key] = value
            continue
        rest = rest[len("features."):]
        if rest == "pos_embedding":
            _check_pos(value, model)
            has_pe = True
            continue
        if rest.endswith(".0.fn.fn.mask") and rest.startswith("transformer.group_layers."):
            continue  # structural constant, rebuilt from the group spec
        m = _LAYER_KEY.match(rest)
        if m and (m.group(3), m.group(4)) in _LAYER_MAP:
            blk = int(m.group(2)) + (n_coarse if m.group(1) == "group_layers" else 0)
            out[f"blocks.{blk}.{_LAYER_MAP[(m.group(3), m.group(4))]}"] = value
            continue
        out[rename_by_rules(rest, _RENAMES)] = value
    if not has_pe:
        raise missing_sine_pos_embed("GTPT")
    return out


def _check_pos(pos: Tensor, model: GTPT) -> None:
    check_sine_pos_embed(pos, model.pos_embed)


# ----------------------------------------------------------------------------------------- family + zoo
register_family(
    Family(
        name="gtpt",
        protocol="gtpt",
        build=GTPT,
        convert=checkpoint_filter_fn,
        paper_counter="thop",
        convention="thop.profile MACs (conv/linear/BN/LN modules; attention einsums not counted) called "
        "'GFLOPs'; params thop-style (leaf modules only: tokens and the sine table left out)",
        param_counter="thop",
    )
)

_T = ShuffleStemCfg(stage_channels=(128,))
_S = ShuffleStemCfg(stage_channels=(256,))
_B = ShuffleStemCfg(stage_channels=(256, 384, 512))
_WB = dict(
    keep_rate=per_block((1.0, 0.7, 0.5, 0.3)),
    groups=WHOLEBODY_GROUPS,
    num_parts=5,
    dense_runs=WHOLEBODY_DENSE_RUNS,
    dense_output_order=(3, 4, 0, 1, 2),
)
_SRC = "GTPT (ECCV'24) tables; thop-style figures measured from the official code: shared/specs/gtpt.md"

for _name, _kw, _paper in [
    ("gtpt_t_coco_256x192", dict(stem=_T, dim=128), PaperRow(2.4, 0.7, 2.371, 0.663, _SRC)),
    ("gtpt_s_coco_256x192", dict(stem=_S, dim=192), PaperRow(5.4, 1.6, 5.426, 1.626, _SRC)),
    ("gtpt_b_coco_256x192", dict(stem=_B, dim=192), PaperRow(8.3, 3.6, 8.315, 3.647, _SRC)),
    ("gtpt_t_wholebody_256x192", dict(stem=_T, dim=128, **_WB), PaperRow(None, 0.8, 2.371, 0.832, _SRC)),
    ("gtpt_s_wholebody_256x192", dict(stem=_S, dim=192, **_WB), PaperRow(None, 2.0, 5.426, 1.994, _SRC)),
    ("gtpt_b_wholebody_256x192", dict(stem=_B, dim=192, **_WB), PaperRow(None, 4.0, 8.315, 4.015, _SRC)),
]:
    register_model(_name, "gtpt", GTPTCfg(**_kw), _paper)
