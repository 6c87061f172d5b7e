"""Model-agnostic building blocks (torch only, no pose knowledge)."""

from .attention import Attention, Block, CrossAttention, Mlp, fused_attn_enabled, use_fused_attn
from .channel_pieces import ChannelPieces, take_columns
from .drop import DropPath, drop_path
from .fuse import (
    GEMM_MATH, FusableBlock, FusedConv2d, FusedLinear, fuse_conv_bn, fuse_conv_relu, fuse_linear, gemm_in_bfloat16,
    optimize_for_inference, unfuse_linear,
)
from .patch_embed import PatchEmbed
from .pos_embed import check_sine_pos_embed, missing_sine_pos_embed, sine_pos_embed_2d
from .pruning import (
    PruneCfg,
    gather_tokens,
    keep_count,
    keep_counts,
    keypoint_attention_score,
    prune_topk,
    softmax_pool,
    group_topk,
    group_slot_index,
    gather_group_tokens,
    topk_indices,
    FramePruneCfg,
    PruneStage,
    TokenRecoveryAttention,
    choose_frames,
    check_forced_frames,
    check_keep_index,
    prune_step,
    stage_pos_embeds,
    read_center_frame,
    dpc_knn_score,
    motion_score,
    recover_by_interpolation,
    select_frames,
    uniform_frame_indices,
)

__all__ = [
    "Attention", "Block", "ChannelPieces", "take_columns", "PatchEmbed", "DropPath", "drop_path", "CrossAttention", "FramePruneCfg", "PruneStage", "choose_frames", "prune_step", "check_keep_index",
    "check_forced_frames", "stage_pos_embeds", "read_center_frame", "TokenRecoveryAttention", "dpc_knn_score", "motion_score",
    "recover_by_interpolation", "select_frames", "uniform_frame_indices", "Mlp", "fused_attn_enabled", "use_fused_attn", "sine_pos_embed_2d", "check_sine_pos_embed", "missing_sine_pos_embed", "fuse_conv_bn", "optimize_for_inference", "FusedLinear", "fuse_linear", "unfuse_linear", "FusedConv2d", "fuse_conv_relu", "FusableBlock", "gemm_in_bfloat16", "GEMM_MATH", "PruneCfg",
    "gather_tokens", "keep_count", "keep_counts", "keypoint_attention_score", "prune_topk", "softmax_pool", "group_topk", "group_slot_index", "gather_group_tokens",
    "topk_indices",
]
