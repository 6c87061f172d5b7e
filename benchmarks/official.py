"""Our models against the official code of every family, timed side by side in one process, appended to RESULTS.md.

    pip install einops yacs                  # the official model files and configs import them
    python benchmarks/official.py --family ppt --official-root /tmp/official      # PPT-S and TokenPose-S
    python benchmarks/official.py --family gtpt pct multiview hot --official-root /tmp/official
    python benchmarks/official.py --family ppt --batches 1 --rounds 5 --profile 1   # also the top ops of each side

``--official-root`` holds checkouts named as the repositories (``--repo NAME=PATH`` for any other place):

* ``ppt``: PPT-S from HowieMa/PPT (``single-view-PPT/lib/models/pose_tokenpose_s.py``, its yaml
  ``ppt_s_v1_256_192_patch43_dim192_depth12_heads8.yaml``) and TokenPose-S from leeyegy/TokenPose (its
  ``pose_tokenpose_s.py`` and yaml ``tokenpose_s_v1_...``) against ``ppt_s_coco_256x192`` / ``tokenpose_s_coco_256x192``.
* ``gtpt``: GTPT-T from haonanwang0522/GTPT (``lib/models/pose_gtpt_t_human.py``, yaml ``gtpt_t_256x192_...``;
  its evaluation branch, the EMA copy) against ``gtpt_t_coco_256x192``.
* ``pct``: PCT-B without image guidance, classifier stage, from Gengzigang/PCT (``models/pct_swin_v2.py``
  Swin V2-B and ``models/pct_head.py``, config ``pct_base_woimgguide_classifier.py``): the network part of the
  detector's ``forward_test`` (backbone, head with ``train=False``: joints and token scores; no flip, no
  post-processing) against ``pct_base_woimgguide_coco_256x256`` (joints and pose score).
* ``multiview``: multi-view PPT from HowieMa/PPT (``multi-view-PPT/lib/models/multiview_ppt.py``, yaml
  ``256_fusion_enc3_GPE.yaml``: 4 views at 256x256, fusion in the last 2 layers) called as its validation does
  (``ratio=0.7``, rays and camera centres, ``fuse=True``) against ``ppt_multiview_h36m_256x256``.
* ``hot``: MixSTE, HoT-MixSTE, MotionBERT, HoT-MotionBERT, MHFormer and TPC-MHFormer from NationalGAILab/HoT,
  built as ``official_hot.py`` builds them.

Nothing of the official code is copied: its files are imported from the checkout. Weights: PPT/TokenPose-S and
GTPT-T load the full-size parity fixtures (``shared/parity``, the official key layout) and their timed input is
the fixture input repeated to the batch, so the kept-token sets are those the fixture made robust; PCT and
multi-view PPT (whose fixtures are reduced in size) take the official initialisation re-drawn with the fixtures'
fan-in rule (:func:`redraw_`) and a seeded random input; the lifters keep the official initialisation. Every
official state dict goes into our model through the library's converter (``posetokens.convert.load_weights``),
and before timing the two outputs on the timed input must agree within the parity README's tolerance (1e-4 for
the image models, 1e-5 for the lifters), or the run stops; under a precision that is not float32 the check is
relative to the official output's largest magnitude, within 3% (:data:`REDUCED_REL_TOL`), the lifters included.

Our side runs the library's inference path: image models through ``optimize_for_inference`` (conv-BN folded,
channels-last, fused Linear layers), 4-D inputs in channels-last memory, as ``PoseEstimator`` does; the lifters
through ``optimize_for_inference(..., channels_last=False)``, as ``lift`` does; then every
model through ``posetokens.inference.precision.prepare`` under ``--precision/--runtime`` (default ``auto/auto``,
the library's default: TokenPose/PPT, GTPT and multi-view PPT in float32 through onnxruntime where it serves the
model and wins the race, one thread, the graph exported once and cached; PCT and the lifters in PyTorch, in
``bf16-gemm`` where oneDNN applies and speeds up that mode (AMX; what their model classes declare as
``auto_precision``), else float32; ``--runtime torch`` times PyTorch eager, ``--precision fp32`` float32
throughout). The report names what each model ran under.
Timing is ``throughput.py``'s: one intra-op thread, the calling thread's CPU time (robust on a shared host),
every model once per round, interleaved, the order rotated by one each round, the median over rounds, and
``retain_freed_memory`` for the whole process (both code bases) unless ``--system-malloc``. Images/s (frames/s
for lifters: clips x frames, images x views for multi-view) are per thread-CPU second.

Stand-ins, used only where the package is not installed, for names whose evaluation behaviour is trivial:
timm's ``DropPath`` (the identity, as timm's in eval mode), ``trunc_normal_`` (torch's), ``to_2tuple``;
mmcv's ``constant_init``/``normal_init`` (initialisers, overwritten by the loaded weights), ``get_logger``;
mmpose's registries (``register_module`` returns the class), ``build_loss`` (losses are training-only: None),
``TopdownHeatmapBaseHead`` (a bare ``nn.Module``: PCT_Head's test forward uses none of its methods); PCT's
``utils.ckpt_load.load_checkpoint_swin`` (pretrained loading, refused if called). The PCT backbone is built
with ``use_checkpoint=False`` (activation checkpointing only matters with gradients).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import io
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from throughput import append_report, cpu_name, report_path, rotated, setup_allocator
from torch import nn

import posetokens
from posetokens.convert import load_weights
from posetokens.layers import optimize_for_inference
from posetokens.registry import get_entry

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("POSETOKENS_SHARED", REPO_ROOT.parent / "shared"))
FAMILIES = ("ppt", "gtpt", "pct", "multiview", "hot")
# The batches timed by default: 1 and the batch of the family's paper or official evaluation (see the docs page).
DEFAULT_BATCHES = {"ppt": (1, 32), "gtpt": (1, 32), "pct": (1, 8), "multiview": (1, 8), "hot": (1, 8)}
REPOS = {"ppt": ("PPT", "TokenPose"), "gtpt": ("GTPT",), "pct": ("PCT",), "multiview": ("PPT",), "hot": ("HoT",)}
GITHUB = {"PPT": "HowieMa/PPT", "TokenPose": "leeyegy/TokenPose", "GTPT": "haonanwang0522/GTPT",
          "PCT": "Gengzigang/PCT", "HoT": "NationalGAILab/HoT"}
WEIGHTS = {  # where each family's weights and timed input come from (the module docstring says why)
    "ppt": "the full-size PPT-S/TokenPose-S parity fixture (PPT layout; TokenPose layout through its key map), "
           "its input repeated to the batch",
    "gtpt": "the full-size GTPT-T COCO parity fixture, its input repeated to the batch",
    "pct": "the official initialisation re-drawn with the fixtures' fan-in rule (seed 0), a seeded N(0, 1) input",
    "multiview": "the official initialisation re-drawn with the fixtures' fan-in rule (seed 0), seeded N(0, 1) "
                 "images and random camera rays",
    "hot": "the official initialisation (torch.manual_seed(0)), the zoo model's dummy input",
}
IMAGE_TOL = 1e-4  # the TokenPose/PPT, GTPT, PCT and multi-view fixture READMEs' tolerance for a re-implementation
# a choice that is not float32 (bf16, bf16-backbone, bf16-gemm, int8-dynamic) cannot meet those (nor the lifters'
# 1e-5): its outputs are checked against the official ones relative to their largest magnitude, within bfloat16's
# bound of the tests
# (tests/test_precision.py: a few layers of 8-bit significands stay within 3%), which still catches other weights
REDUCED_REL_TOL = 0.03


@dataclass
class Case:
    """One model timed in both code bases: two zero-argument forwards, an output check, its throughput unit."""

    label: str
    official: Callable[[], Any]
    ours: Callable[[], Any]
    gap: Callable[[], float]
    tol: float
    items: int
    unit: str
    twin: str | None = None  # label of the unpruned model this one prunes (for the pruning table)


# -- official code: stand-ins and loading ------------------------------------------------------------------------

def _module(name: str, **attrs: Any) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    return mod


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return name in sys.modules


class _DropPath(nn.Module):
    """Stand-in for timm's DropPath: the identity, which is what timm's does in eval mode."""

    def __init__(self, drop_prob: float | None = 0.0, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _to_2tuple(x: Any) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x, x)


class _Registry:
    """Stand-in for an mmcv registry: ``register_module()`` returns the class unchanged."""

    def register_module(self, *args: Any, **kwargs: Any) -> Callable[[type], type]:
        return lambda cls: cls


def _refuse(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("official.py: pretrained-weight loading of the official code is not available here")


def install_stand_ins() -> list[str]:
    """Register the stand-in modules (timm, mmcv, mmpose, PCT's utils.ckpt_load) that are not installed."""
    done = []
    if not _installed("timm"):
        weight_init = _module("timm.models.layers.weight_init", trunc_normal_=nn.init.trunc_normal_)
        layers = _module("timm.models.layers", DropPath=_DropPath, trunc_normal_=nn.init.trunc_normal_,
                         to_2tuple=_to_2tuple, weight_init=weight_init)
        models = _module("timm.models", layers=layers)
        sys.modules.update({"timm": _module("timm", models=models), "timm.models": models,
                            "timm.models.layers": layers, "timm.models.layers.weight_init": weight_init})
        done.append("timm")
    if not _installed("mmcv"):
        def constant_init(module: nn.Module, val: float, bias: float = 0.0) -> None:
            nn.init.constant_(module.weight, val)
            if getattr(module, "bias", None) is not None:
                nn.init.constant_(module.bias, bias)

        def normal_init(module: nn.Module, mean: float = 0.0, std: float = 1.0, bias: float = 0.0) -> None:
            nn.init.normal_(module.weight, mean, std)
            if getattr(module, "bias", None) is not None:
                nn.init.constant_(module.bias, bias)

        cnn = _module("mmcv.cnn", constant_init=constant_init, normal_init=normal_init)
        utils = _module("mmcv.utils", get_logger=lambda name, *a, **k: logging.getLogger(name), build_from_cfg=_refuse)
        sys.modules.update({"mmcv": _module("mmcv", cnn=cnn, utils=utils), "mmcv.cnn": cnn, "mmcv.utils": utils})
        done.append("mmcv")
    if not _installed("mmpose"):
        builder = _module("mmpose.models.builder", BACKBONES=_Registry(), HEADS=_Registry(), LOSSES=_Registry(),
                          NECKS=_Registry(), POSENETS=_Registry(), build_loss=lambda cfg: None)
        base = _module("mmpose.models.heads.topdown_heatmap_base_head",
                       TopdownHeatmapBaseHead=type("TopdownHeatmapBaseHead", (nn.Module,), {}))
        heads = _module("mmpose.models.heads", topdown_heatmap_base_head=base)
        models = _module("mmpose.models", builder=builder, heads=heads)
        sys.modules.update({"mmpose": _module("mmpose", models=models), "mmpose.models": models,
                            "mmpose.models.builder": builder, "mmpose.models.heads": heads,
                            "mmpose.models.heads.topdown_heatmap_base_head": base})
        done.append("mmpose")
    if "utils.ckpt_load" not in sys.modules:  # PCT's models/pct_swin_v2.py imports it at top level
        ckpt = _module("utils.ckpt_load", load_checkpoint_swin=_refuse)
        sys.modules.setdefault("utils", _module("utils", ckpt_load=ckpt))
        sys.modules["utils.ckpt_load"] = ckpt
    return done


def import_official(folder: Path, module: str, package: str) -> types.ModuleType:
    """Import ``folder/module.py`` as ``package.module`` of a package whose ``__init__`` is skipped (so sibling
    relative imports work without the official package's other imports)."""
    path = folder / f"{module}.py"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; check the official checkout (--official-root / --repo)")
    if package not in sys.modules:
        pkg = types.ModuleType(package)
        pkg.__path__ = [str(folder)]
        sys.modules[package] = pkg
    name = f"{package}.{module}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def yacs_config(repo_lib: Path, yaml: Path, package: str) -> Any:
    """The official yacs config: the repository's ``lib/config/default.py`` defaults merged with ``yaml``."""
    if not yaml.is_file():
        raise FileNotFoundError(f"{yaml} not found; check the official checkout")
    default = import_official(repo_lib / "config", "default", package)
    cfg = default._C.clone()
    cfg.defrost()
    cfg.merge_from_file(str(yaml))
    cfg.freeze()
    return cfg


def quiet(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` with stdout swallowed (official constructors print their configs)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn()


def redraw_(module: nn.Module, seed: int) -> nn.Module:
    """Re-draw every tensor with the parity fixtures' fan-in rule, so activations stay O(1) and outputs depend on
    every weight: Linear/Conv weights N(0, 1/fan_in), biases N(0, 0.02); norm weights 1 + N(0, 0.1), biases
    N(0, 0.02); BN running mean N(0, 0.1), var U(0.5, 1.5); other learned tensors N(0, 0.02) for biases and
    N(0, 0.5) otherwise. Frozen tensors (sine position tables, Swin's logit scales) keep their values."""
    g = torch.Generator().manual_seed(seed)
    done: set[int] = set()

    def normal(t: torch.Tensor, std: float, mean: float = 0.0) -> None:
        t.copy_(torch.randn(t.shape, generator=g) * std + mean)
        done.add(id(t))

    with torch.no_grad():
        for m in module.modules():
            w, b = getattr(m, "weight", None), getattr(m, "bias", None)
            if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                normal(w, 1.0 / math.sqrt(w[0].numel()))
                if b is not None:
                    normal(b, 0.02)
            elif isinstance(m, (nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm)):
                if w is not None:
                    normal(w, 0.1, 1.0)
                if b is not None:
                    normal(b, 0.02)
                if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                    normal(m.running_mean, 0.1)
                    m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
        for name, p in module.named_parameters():
            if id(p) in done or not p.requires_grad or "logit_scale" in name:
                continue
            normal(p, 0.02 if name.endswith("bias") else 0.5)
    return module


# -- our side ------------------------------------------------------------------------------------------------------

def ours_from(official_state: dict, zoo: str, source: str) -> nn.Module:
    """Our zoo model with the official state dict converted into it (strict)."""
    model = posetokens.create_model(zoo).eval()
    load_weights(model, official_state, get_entry(zoo).family, source=source)
    return model


CHOICE = {"ours": "fp32/auto"}  # --precision/--runtime of our side (main sets it)
RAN: dict[str, list[nn.Module]] = {}  # zoo name -> our side's prepared nets, one per batch (what each ran under is
                                      # read after the run: auto races onnxruntime against eager per batch bucket)


def ran(label: str, batch: int) -> str:
    """The choice our side of ``label`` ran under at ``batch`` ("?" when it was not prepared here): under ``auto``
    the verdict of that batch's bucket (``choice`` names only the latest call's runtime)."""
    if not RAN.get(label):
        return "?"
    from posetokens.inference.precision import Choice, race_bucket

    bucket = race_bucket((torch.empty(batch),))
    for net in reversed(RAN[label]):  # each batch builds its own
        choice = getattr(net, "choice", None)
        verdict = getattr(net, "verdicts", {}).get(bucket)
        if choice is not None and verdict:
            return str(Choice(choice.precision, verdict))
    return str(getattr(RAN[label][-1], "choice", "fp32/torch"))


def fast(model: nn.Module) -> nn.Module:
    """The library's inference copy (``optimize_for_inference``) under the chosen precision/runtime."""
    return run_as(optimize_for_inference(model))


def run_as(model: nn.Module) -> nn.Module:
    """``model`` prepared as PoseEstimator/lift prepare it (:func:`posetokens.inference.precision.prepare`), with
    one onnxruntime thread; records what it runs under."""
    from posetokens.inference.precision import prepare

    net = prepare(model, CHOICE["ours"], "cpu", threads=1)
    RAN.setdefault(getattr(model, "zoo_name", type(model).__name__), []).append(net)
    return net


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """4-D image batches in channels-last memory (what our inference path feeds); others unchanged."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


# the library's family whose model class declares what --precision auto runs for a family benchmarked here
LIBRARY_FAMILY = {"ppt": "tokenpose", "gtpt": "gtpt", "pct": "pct", "multiview": "tokenpose_mv", "hot": "mixste"}


def family_choice(named: str, family: str) -> str:
    """``named`` ("precision/runtime") with the precision ``auto`` resolved as the library resolves it for the
    family's models (:func:`posetokens.inference.precision.resolve_precision`, from the ``auto_precision`` their
    class declares; every lifter declares the same)."""
    from posetokens.inference.precision import parse_choice, resolve_precision
    from posetokens.registry import get_family

    precision, _, runtime = named.partition("/")
    if precision != "auto":
        return named
    kind = get_family(LIBRARY_FAMILY[family]).build  # the model class: its declaration, no model built
    return str(resolve_precision(kind, parse_choice(precision, runtime or None), "cpu"))


def reduced() -> bool:
    """Whether our side runs a choice that is not float32 (its output check is relative: :data:`REDUCED_REL_TOL`)."""
    return not CHOICE["ours"].startswith("fp32/")


def gap(a: Any, b: Any) -> float:
    """Max abs difference over matching tensors of two outputs (tensors or tuples of tensors); under a reduced
    choice (:func:`reduced`), relative to the largest magnitude of ``a`` (the official output)."""
    a = a if isinstance(a, (tuple, list)) else (a,)
    b = b if isinstance(b, (tuple, list)) else (b,)
    if len(a) != len(b):
        raise ValueError(f"outputs differ in length: {len(a)} vs {len(b)}")
    rel = reduced()
    return max(float((x.double() - y.double()).abs().max() / (x.double().abs().max() if rel else 1.0))
               for x, y in zip(a, b))


def tiled(x: torch.Tensor, batch: int) -> torch.Tensor:
    """``x`` repeated along the batch to ``batch`` samples."""
    return x.repeat(math.ceil(batch / x.shape[0]), *([1] * (x.dim() - 1)))[:batch].contiguous()


# -- families ------------------------------------------------------------------------------------------------------

def fixture_dir(name: str) -> Path:
    """``shared/parity/<name>``, or a one-line exit naming where it was looked for."""
    folder = SHARED / "parity" / name
    if not (folder / "checkpoint.pth").is_file():
        raise SystemExit(f"{folder}: parity fixture not found (expected ../shared beside the repo, or set "
                         "POSETOKENS_SHARED)")
    return folder


def build_ppt(repos: dict[str, Path], batch: int) -> list[Case]:
    """PPT-S (HowieMa/PPT) and TokenPose-S (leeyegy/TokenPose) on the PPT-S/TokenPose-S parity fixture."""
    fixture = fixture_dir("tokenpose_ppt_s_coco_256x192")
    state = torch.load(fixture / "checkpoint.pth", weights_only=True)
    key_map = json.loads((fixture / "tokenpose_repo_key_map.json").read_text())
    x = tiled(torch.load(fixture / "inputs.pt", weights_only=True)["images"], batch)
    cases = []
    specs = [("TokenPose", "tokenpose_s_coco_256x192", "tokenpose", "tokenpose_s_v1_256_192_patch43_dim192_depth12_heads8",
              {key_map.get(k, k): v for k, v in state.items()}, None),
             ("PPT", "ppt_s_coco_256x192", "ppt", "ppt_s_v1_256_192_patch43_dim192_depth12_heads8", state,
              "tokenpose_s_coco_256x192")]
    for repo_name, zoo, sub, yaml_name, sd, twin in specs:
        root = repos[repo_name] / ("single-view-PPT" if repo_name == "PPT" else "")
        pkg = f"official_{repo_name.lower()}"
        cfg = yacs_config(root / "lib", root / "experiments/coco" / sub / f"{yaml_name}.yaml", f"{pkg}_config")
        mod = import_official(root / "lib/models", "pose_tokenpose_s", f"{pkg}_models")
        official = quiet(lambda mod=mod, cfg=cfg: mod.TokenPose_S(cfg)).eval()
        official.load_state_dict(sd, strict=True)
        ours = fast(ours_from(sd, zoo, f"{repo_name}/{yaml_name}"))
        xo, xu = x, channels_last(x)
        cases.append(Case(zoo, lambda m=official, xo=xo: m(xo), lambda m=ours, xu=xu: m(xu),
                          lambda m=official, u=ours, xo=xo, xu=xu: gap(m(xo), u(xu)), IMAGE_TOL, batch, "img/s", twin))
    return cases


def build_gtpt(repos: dict[str, Path], batch: int) -> list[Case]:
    """GTPT-T (haonanwang0522/GTPT, evaluation branch) on the GTPT-T COCO parity fixture."""
    fixture = fixture_dir("gtpt_t_coco_256x192")
    state = torch.load(fixture / "checkpoint.pth", weights_only=True)
    x = tiled(torch.load(fixture / "inputs.pt", weights_only=True)["img"], batch)
    root = repos["GTPT"]
    cfg = yacs_config(root / "lib", root / "experiments/coco/gtpt/gtpt_t_256x192_adam_lr1e-3_split2_sigma4.yaml",
                      "official_gtpt_config")
    mod = import_official(root / "lib/models", "pose_gtpt_t_human", "official_gtpt_models")
    official = quiet(lambda: mod.get_pose_net(cfg, is_train=False)).eval()
    official.load_state_dict(state, strict=True)
    ours = fast(ours_from(state, "gtpt_t_coco_256x192", "GTPT/pose_gtpt_t_human"))
    xu = channels_last(x)
    return [Case("gtpt_t_coco_256x192", lambda: official(x), lambda: ours(xu),
                 lambda: gap(official(x), ours(xu)), IMAGE_TOL, batch, "img/s")]


def _pct_config(root: Path) -> dict:
    """The ``model`` dict of PCT's ``configs/pct_base_woimgguide_classifier.py`` (a Python file; ``_base_`` is
    only the dataset config, which the network does not read)."""
    path = root / "configs/pct_base_woimgguide_classifier.py"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; check the official checkout")
    import re

    text = re.sub(r"\{\{\s*_base_\.[\w.]+\s*\}\}", "None", path.read_text())  # mmcv's base-file references
    scope: dict[str, Any] = {}
    exec(compile(text, str(path), "exec"), scope)  # noqa: S102 - the official config: dict literals
    return scope["model"]


def build_pct(repos: dict[str, Path], batch: int) -> list[Case]:
    """PCT-B (no image guidance), classifier stage: official Swin V2-B + PCT_Head against ours, re-drawn weights."""
    root = repos["PCT"]
    cfg = _pct_config(root)
    swin = import_official(root / "models", "pct_swin_v2", "official_pct_models")
    head_mod = import_official(root / "models", "pct_head", "official_pct_models")
    bb_cfg = {k: v for k, v in cfg["backbone"].items() if k != "type"}
    bb_cfg["use_checkpoint"] = False
    head_cfg = {k: v for k, v in cfg["keypoint_head"].items() if k != "type"}
    torch.manual_seed(0)
    official = quiet(lambda: nn.ModuleDict({"backbone": swin.SwinV2TransformerRPE2FC(**bb_cfg),
                                            "keypoint_head": head_mod.PCT_Head(**head_cfg)})).eval()
    redraw_(official, seed=0)
    ours = fast(ours_from(official.state_dict(), "pct_base_woimgguide_coco_256x256", "PCT/pct_base_woimgguide"))
    x = torch.randn(batch, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    xu = channels_last(x)

    def run_official() -> tuple[torch.Tensor, torch.Tensor]:
        joints, token_scores = official["keypoint_head"](official["backbone"](x), None, None, train=False)
        return joints, token_scores.mean(1)[:, 0]

    def check() -> float:
        joints, score = run_official()
        ours_joints, ours_score = ours(xu)
        return gap((joints, score), (ours_joints, ours_score[:, 0]))

    return [Case("pct_base_woimgguide_coco_256x256", run_official, lambda: ours(xu), check, IMAGE_TOL, batch, "img/s")]


def build_multiview(repos: dict[str, Path], batch: int) -> list[Case]:
    """Multi-view PPT (4 views, 256x256, fusion) from HowieMa/PPT against ours, re-drawn weights."""
    root = repos["PPT"] / "multi-view-PPT"
    yaml_path = root / "experiments-local/h36m/ppt_multi/256_fusion_enc3_GPE.yaml"
    if not yaml_path.is_file():
        raise FileNotFoundError(f"{yaml_path} not found; check the official checkout")
    import yaml

    net = yaml.safe_load(yaml_path.read_text())["NETWORK"]
    cfg = types.SimpleNamespace(NETWORK=types.SimpleNamespace(**net))
    mod = import_official(root / "lib/models", "multiview_ppt", "official_mvppt_models")
    torch.manual_seed(0)
    official = quiet(lambda: mod.TokenPose_S(cfg)).eval()
    redraw_(official, seed=0)
    ours = fast(ours_from(official.state_dict(), "ppt_multiview_h36m_256x256", "PPT/multiview_ppt"))
    views = ours.num_views
    g = torch.Generator().manual_seed(1)
    images = torch.randn(batch, views, 3, 256, 256, generator=g)
    centers = torch.randn(batch, views, 1, 3, generator=g) * 3000.0  # camera centres, mm
    directions = torch.nn.functional.normalize(torch.randn(batch, views, ours.num_patches, 3, generator=g), dim=-1)
    rays = centers + 5000.0 * directions  # world points on each patch's ray, as the official dataset gives
    img_list, ray_list, c_list = list(images.unbind(1)), list(rays.unbind(1)), list(centers.unbind(1))
    ours_rays = rays - centers

    def run_official() -> torch.Tensor:
        return torch.stack(official(img_list, ratio=0.7, rays=ray_list, centers=c_list, fuse=True), dim=1)

    return [Case("ppt_multiview_h36m_256x256", run_official, lambda: ours(images, ours_rays),
                 lambda: gap(run_official(), ours(images, ours_rays)), IMAGE_TOL, batch * views, "img/s")]


def hot_gap(official: torch.nn.Module, module: Any, ours: torch.nn.Module, x: torch.Tensor) -> float:
    """official_hot's output gap (ours given the frames the official clustering kept); under a reduced choice,
    relative to the official output's largest magnitude."""
    import official_hot as oh

    g = oh.output_gap(official, module, ours, x)
    if not reduced():
        return g
    out = official(x)
    return g / float((out[0] if isinstance(out, tuple) else out).abs().max())  # TPC-MHFormer: (poses, index)


def build_hot(repos: dict[str, Path], batch: int) -> list[Case]:
    """MixSTE, MotionBERT, MHFormer and their HoT (TPC) versions from NationalGAILab/HoT (built as official_hot.py
    does)."""
    import official_hot as oh

    cases = []
    for pair, files_and_names in oh.PAIRS.items():
        for rel, zoo in zip(files_and_names[:2], files_and_names[2:]):
            official, module = oh.official_model(repos["HoT"], rel, oh.ARGS[pair])
            # the inference copy `lift` runs (fused Linear layers), then the chosen runtime
            ours = run_as(optimize_for_inference(ours_from(official.state_dict(), zoo, f"HoT/{rel}"),
                                                 channels_last=False))
            (x,) = ours.dummy_inputs(batch)
            twin = files_and_names[2] if zoo == files_and_names[3] else None
            cases.append(Case(zoo, lambda m=official, x=x: m(x), lambda m=ours, x=x: m(x),
                              lambda m=official, mod=module, u=ours, x=x: hot_gap(m, mod, u, x),
                              REDUCED_REL_TOL if reduced() else oh.TOLERANCES[pair],
                              batch * ours.cfg.num_frames, "frames/s", twin))
    return cases


BUILDERS: dict[str, Callable[[dict[str, Path], int], list[Case]]] = {
    "ppt": build_ppt, "gtpt": build_gtpt, "pct": build_pct, "multiview": build_multiview, "hot": build_hot}


# -- timing and report ---------------------------------------------------------------------------------------------

def bench(cases: list[Case], rounds: int) -> tuple[dict[str, float], dict[tuple[str, str], float]]:
    """Output gaps (which run every model once: the warm-up), then the median thread CPU seconds of every
    (label, side), interleaved and rotated."""
    gaps: dict[str, float] = {}
    runs = [((c.label, side), fn) for c in cases for side, fn in (("official", c.official), ("ours", c.ours))]
    samples: dict[tuple[str, str], list[float]] = {k: [] for k, _ in runs}
    with torch.inference_mode():
        for c in cases:
            if reduced() and c.tol == IMAGE_TOL:
                c.tol = REDUCED_REL_TOL
            gaps[c.label] = c.gap()
            if not gaps[c.label] <= c.tol:
                raise RuntimeError(f"{c.label}: official and our outputs differ by {gaps[c.label]:.2e} (> {c.tol:g})")
        for r in range(rounds):
            for key, fn in rotated(runs, r):
                t0 = time.thread_time()
                fn()
                samples[key].append(time.thread_time() - t0)
    return gaps, {k: statistics.median(v) for k, v in samples.items()}


class _OpTimes:
    """Calling-thread CPU seconds and calls per aten op, summed over the ops a forward dispatches (robust on a
    loaded host, where torch.profiler's wall-clock op times are mostly time spent preempted)."""

    def __init__(self) -> None:
        from torch.utils._python_dispatch import TorchDispatchMode

        times: dict[str, float] = {}
        calls: dict[str, int] = {}
        self.times, self.calls = times, calls

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                t0 = time.thread_time()
                out = func(*args, **(kwargs or {}))
                name = func.overloadpacket.__name__
                times[name] = times.get(name, 0.0) + time.thread_time() - t0
                calls[name] = calls.get(name, 0) + 1
                return out

        self.mode = Mode()


def profile(cases: list[Case], top: int = 10, reps: int = 3) -> str:
    """Markdown: per case, the aten ops taking the most calling-thread CPU time on each side (mean of ``reps``
    forwards after a warm-up), with the forward's total as timed without the per-op hook."""
    out = []
    with torch.inference_mode():
        for c in cases:
            rows = {}
            for side, fn in (("official", c.official), ("ours", c.ours)):
                fn()
                t0 = time.thread_time()
                for _ in range(reps):
                    fn()
                total = (time.thread_time() - t0) / reps
                ops = _OpTimes()
                with ops.mode:
                    for _ in range(reps):
                        fn()
                rows[side] = (total, sorted(((t / reps, ops.calls[k] // reps, k) for k, t in ops.times.items()),
                                            reverse=True)[:top])
            out.append(f"### {c.label}\n")
            for side, (total, ops_list) in rows.items():
                out.append(f"{side}: {total * 1e3:.0f} ms per forward (thread CPU)\n")
                out.append("| op | calls | ms | share |\n|---|---|---|---|")
                out += [f"| {k} | {n} | {t * 1e3:.1f} | {t / total:.0%} |" for t, n, k in ops_list]
                out.append("")
    return "\n".join(out)


def ours_line() -> str:
    """This checkout's commit, saying when ``src/`` has uncommitted changes (what was timed is the working tree)."""
    def git(*cmd: str) -> str:
        try:
            out = subprocess.run(["git", "-C", str(REPO_ROOT), *cmd], check=False, capture_output=True, text=True)
        except OSError:
            return ""
        return out.stdout.strip() if out.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "commit unknown"
    return f"posetokens at {commit}" + (" with uncommitted changes under src/" if git("status", "--porcelain", "src") else "")


def repo_line(repos: dict[str, Path], names: tuple[str, ...]) -> str:
    """``owner/name at commit (path)`` of each official checkout used."""
    from official_hot import repo_commit

    return "; ".join(f"{GITHUB[n]} at {repo_commit(repos[n])} ({repos[n]})" for n in names)


def report(family: str, results: list[tuple[int, list[Case], dict, dict]], repos: dict[str, Path],
           rounds: dict[int, int], allocator: str, loads: tuple[tuple[float, ...], tuple[float, ...]],
           command: str) -> str:
    """Markdown section: per model and batch, both sides' times, throughputs, the ratio and the output gap."""
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load0, load1 = (", ".join(f"{v:.1f}" for v in lv) for lv in loads)
    lines = [
        f"## official.py --family {family} — {now}",
        "",
        (f"Command: `{command}`. Machine: {cpu_name()}, {os.cpu_count()} logical CPUs, {torch.get_num_threads()} "
        f"intra-op thread, {platform.system()} {platform.machine()}, torch {torch.__version__}, CPU, {allocator} "
        f"(both code bases). Load average (1/5/15 min) {load0} at the start, {load1} at the end (a shared host: "
        f"the figures are calling-thread CPU time, so the ratios hold). Ours: {ours_line()}. Official code: "
        f"{repo_line(repos, REPOS[family])}. Weights: {WEIGHTS[family]}. Median over interleaved, rotated rounds "
        f"({', '.join(f'batch {b}: {r}' for b, r in rounds.items())}); same weights and input on both sides, "
        f"ours on the library's inference path under `{CHOICE['ours']}` (the column 'ours runs')."),
        "",
        "| model | ours runs | batch | official s/batch | ours s/batch | official | ours | ours faster by | "
        "max output diff (tol; rel: relative to the official output's largest magnitude) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    twins = []
    for batch, cases, gaps, t in results:
        for c in cases:
            o, u = t[(c.label, "official")], t[(c.label, "ours")]
            lines.append(f"| {c.label} | {ran(c.label, batch)} | {batch} | {o:.3f} | {u:.3f} | {c.items / o:.1f} {c.unit} | "
                         f"{c.items / u:.1f} {c.unit} | {o / u:.2f}x | {gaps[c.label]:.1e} ({c.tol:g}"
                         f"{' rel' if c.tol == REDUCED_REL_TOL else ''}) |")
            if c.twin is not None and (c.twin, "official") in t:  # its twin was timed too (--models)
                twins.append((batch, c.twin, c.label, t))
    if twins:
        lines += ["", "| pruned / unpruned | batch | speed-up, official code | speed-up, ours |", "|---|---|---|---|"]
        for batch, base, pruned, t in twins:
            mixed = "" if ran(base, batch) == ran(pruned, batch) else f" ({ran(pruned, batch)} / {ran(base, batch)}: not one runtime)"
            lines.append(f"| {pruned} / {base} | {batch} | {t[(base, 'official')] / t[(pruned, 'official')]:.2f}x | "
                         f"{t[(base, 'ours')] / t[(pruned, 'ours')]:.2f}x{mixed} |")
    return "\n".join(lines) + "\n"


def parse_repos(root: Path, overrides: list[str]) -> dict[str, Path]:
    """Checkout paths: ``root/<name>`` for each official repository, replaced by ``NAME=PATH`` overrides."""
    repos = {name: root / name for name in GITHUB}
    for item in overrides:
        name, sep, path = item.partition("=")
        if not sep or name not in GITHUB:
            raise SystemExit(f"--repo {item!r}: expected NAME=PATH with NAME one of {', '.join(GITHUB)}")
        repos[name] = Path(path)
    return repos


def main() -> None:
    """Build, check and time each family asked for; append one report per family."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="Default batches: " + ", ".join(f"{f} {' and '.join(map(str, b))}"
                                                                        for f, b in DEFAULT_BATCHES.items()))
    ap.add_argument("--family", nargs="+", required=True, choices=FAMILIES)
    ap.add_argument("--official-root", type=Path, default=Path("/tmp/official"),
                    help=f"folder holding checkouts named {', '.join(GITHUB)} (default /tmp/official)")
    ap.add_argument("--repo", nargs="*", default=[], metavar="NAME=PATH", help="a checkout elsewhere, e.g. HoT=/src/HoT")
    ap.add_argument("--batches", nargs="+", type=int, default=None, help="batches (default: the family's, see below)")
    ap.add_argument("--models", nargs="+", default=[], metavar="ZOO_NAME",
                    help="only these zoo models of the families (e.g. mhformer_h36m_351 tpc_mhformer_h36m_351)")
    ap.add_argument("--rounds", type=int, default=0, help="rounds per batch (default 5 at batch 1, 3 above)")
    ap.add_argument("--profile", type=int, default=0, metavar="BATCH",
                    help="instead of timing, print the aten ops taking most thread CPU time on both sides at this batch")
    ap.add_argument("--system-malloc", action="store_true", help="keep glibc's defaults (see throughput.py)")
    ap.add_argument("--precision", default="auto", help="our side's precision (default auto, the library's: "
                                                        "bf16-gemm for PCT and the lifters where oneDNN applies "
                                                        "the mode and it pays (AMX), else fp32)")
    ap.add_argument("--runtime", default="auto", help="our side's runtime: auto (default: the library's), torch, "
                                                      "compile or onnxruntime (posetokens.inference.precision)")
    ap.add_argument("--out", type=report_path, default=str(Path(__file__).with_name("RESULTS.md")))
    args = ap.parse_args()
    CHOICE["ours"] = f"{args.precision}/{args.runtime}"
    for mod in ("einops", "yacs", "yaml"):
        if importlib.util.find_spec(mod) is None:
            raise SystemExit(f"the official model files or configs import {mod}: pip install {mod}")
    repos = parse_repos(args.official_root, args.repo)
    for family in args.family:
        for name in REPOS[family]:
            if not repos[name].is_dir():
                raise SystemExit(f"--family {family}: no checkout of {GITHUB[name]} at {repos[name]} "
                                 f"(git clone https://github.com/{GITHUB[name]} {repos[name]}, or --repo {name}=PATH)")
    stand_ins = install_stand_ins()
    if stand_ins:
        print(f"stand-ins for {', '.join(stand_ins)} (not installed); see the module docstring", flush=True)
    torch.set_num_threads(1)
    allocator = setup_allocator(args.system_malloc)
    command = "python benchmarks/official.py " + " ".join(sys.argv[1:])
    named = CHOICE["ours"]
    for family in args.family:
        # the library's default precision, auto, resolves per model class (resolve_precision: auto_precision); one
        # class per family
        CHOICE["ours"] = family_choice(named, family)
        if args.profile:
            print(f"## {family}, batch {args.profile}\n\n" + profile(BUILDERS[family](repos, args.profile)))
            continue
        load0 = os.getloadavg()
        results, rounds = [], {}
        for batch in args.batches or DEFAULT_BATCHES[family]:
            rounds[batch] = args.rounds or (5 if batch == 1 else 3)
            cases = [c for c in BUILDERS[family](repos, batch) if not args.models or c.label in args.models]
            if not cases:
                raise SystemExit(f"official.py: --models {' '.join(args.models)}: none is in family {family}")
            gaps, times = bench(cases, rounds[batch])
            results.append((batch, cases, gaps, times))
            print(f"done: {family}, batch {batch}", flush=True)
        append_report(report(family, results, repos, rounds, allocator, (load0, os.getloadavg()), command), args.out)


if __name__ == "__main__":
    from throughput import run

    run(main)
