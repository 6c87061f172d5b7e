"""The train/test evaluation's prediction path against the official one.

``engine.evaluate.predict_keypoints`` / ``predict_coco`` (what ``train``'s evaluation and ``posetokens test`` call)
run on a stub network that returns the network outputs recorded in the official decode fixtures
(``shared/parity/pipeline/decode_tokenpose``, ``decode_gtpt``: the official ``validate`` run end to end), with a
loader that carries each box's image -> crop warp built from the fixture's centre and scale with the protocol's
warp, as the data pipeline builds it. The image-space keypoints, scores and boxes must be the official ones at
the fixture README's tolerances: a flip test that is not flipped back, a wrong decoding, a wrong warp or crop
coordinates reported as image coordinates all fail here.
"""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
import torch
from torch import nn

from posetokens.codecs import flip_indices_from_pairs
from posetokens.data.metainfo import get_metainfo
from posetokens.data.transforms import get_warp_matrix
from posetokens.engine.data import model_codec
from posetokens.engine.evaluate import predict_coco, predict_keypoints
from posetokens.parity.pipeline_codec import near_singular_dark
from posetokens.protocols import get_protocol

from conftest import PARITY

DECODE = PARITY / "pipeline"


def _fixture(name: str) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    folder = DECODE / name
    if not (folder / "outputs.npz").is_file():
        pytest.fail(f"pipeline fixture {folder} not found")
    spec = json.loads((folder / "inputs.json").read_text())
    return spec, dict(np.load(folder / "inputs.npz")), dict(np.load(folder / "outputs.npz"))


class _Replay(nn.Module):
    """A stub network that returns recorded outputs: the plain ones for a crop, the flipped ones for a mirrored
    crop. Each image carries its sample index in channel 1 at both ends of row 0, and a 1 at its left end of row 0
    in channel 0 (at the right end once mirrored)."""

    def __init__(self, output_kind: str, plain: list[np.ndarray], flipped: list[np.ndarray],
                 image_size: tuple[int, int], heatmap_size: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.output_kind = output_kind
        self.cfg = types.SimpleNamespace(image_size=image_size, heatmap_size=heatmap_size)
        self.plain = [torch.from_numpy(a) for a in plain]
        self.flipped = [torch.from_numpy(a) for a in flipped]
        self.calls = {"plain": 0, "flipped": 0}

    def forward(self, images: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        mirrored = bool(images[0, 0, 0, -1] == 1)
        assert mirrored != bool(images[0, 0, 0, 0] == 1)
        self.calls["flipped" if mirrored else "plain"] += 1
        index = images[:, 1, 0, 0].long()
        outs = [t[index] for t in (self.flipped if mirrored else self.plain)]
        return outs[0] if self.output_kind == "heatmap" else tuple(outs)


def _loader(inp: dict[str, np.ndarray], input_size_hw: tuple[int, int], warp: str, batch: int) -> list[dict]:
    """Batches as ``engine.data.TopDownSamples`` yields them at test time: the crop (here only the marks the stub
    reads), the image -> crop warp of the protocol for the box's centre and size (px), and the box."""
    ih, iw = input_size_hw
    center = inp["center"].astype(np.float64)
    scale_px = inp["scale"].astype(np.float64) * 200.0  # the official /200 units
    n = len(center)
    out = []
    for lo in range(0, n, batch):
        idx = np.arange(lo, min(n, lo + batch))
        images = torch.zeros(len(idx), 3, ih, iw)
        images[:, 0, 0, 0] = 1.0
        images[:, 1, 0, 0] = images[:, 1, 0, -1] = torch.from_numpy(idx.astype(np.float32))
        warps = np.stack([get_warp_matrix(center[i], scale_px[i], 0.0, (iw, ih), warp) for i in idx])
        out.append({"image": images, "warp_matrix": torch.from_numpy(warps),
                    "img_id": torch.from_numpy(idx + 1000), "bbox_score": torch.from_numpy(inp["bbox_score"][idx]),
                    "center": torch.from_numpy(center[idx]), "scale": torch.from_numpy(scale_px[idx])})
    return out


def _check_coco_results(results: list[dict], inp: dict[str, np.ndarray], out: dict[str, np.ndarray],
                        scores: np.ndarray) -> None:
    """``predict_coco``'s records against the official ``all_boxes`` (c, s, area = prod(s * 200), box score)."""
    boxes = out["all_boxes"]
    assert [r["image_id"] for r in results] == list(range(1000, 1000 + len(boxes)))
    for i, r in enumerate(results):
        kps = np.asarray(r["keypoints"]).reshape(-1, 3)
        np.testing.assert_allclose(kps[:, 2], scores[i], atol=1e-6)
        assert r["area"] == pytest.approx(boxes[i, 4], rel=1e-6)
        assert r["bbox_score"] == pytest.approx(boxes[i, 5], rel=1e-6)
        np.testing.assert_allclose(r["center"], boxes[i, :2], rtol=1e-6)


def test_tokenpose_evaluation_maps_to_the_official_image_keypoints() -> None:
    """TokenPose/PPT: flip back without shift, DARK, the "(size-1)" inverse; README tolerance 1e-3 px (1e-2 px
    where the Taylor step runs on a near-singular Hessian), maxvals 1e-6."""
    spec, inp, out = _fixture("decode_tokenpose")
    cfg = spec["official_config"]
    protocol = get_protocol("tokenpose")
    assert cfg["BLUR_KERNEL"] == protocol.test.blur_kernel and cfg["FLIP_TEST"] == protocol.test.flip_test
    metainfo = get_metainfo("coco")
    assert list(metainfo.flip_indices) == flip_indices_from_pairs(cfg["flip_pairs"], 17)
    (iw, ih), (hw, hh) = cfg["IMAGE_SIZE"], cfg["HEATMAP_SIZE"]
    model = _Replay("heatmap", [inp["heatmaps"]], [inp["heatmaps_flipped"]], (ih, iw), (hh, hw))
    codec = model_codec(protocol, model)
    loader = _loader(inp, (ih, iw), protocol.warp, batch=4)  # two batches: 4 + 2 boxes

    pred = predict_keypoints(model, loader, codec, metainfo, protocol, torch.device("cpu"))
    assert model.calls == {"plain": 2, "flipped": 2}
    official = out["preds"].astype(np.float64)
    assert pred["keypoints"].shape == official.shape
    loose = near_singular_dark(out["heatmaps_averaged"], protocol.test.blur_kernel)
    gap = np.abs(pred["keypoints"] - official).max(-1)
    worst, worst_loose = float(gap[~loose].max()), float(gap[loose].max(initial=0.0))
    assert worst <= 1e-3, f"image keypoints off the official ones by {worst:.4g} px"
    assert worst_loose <= 1e-2, f"near-singular joints off the official ones by {worst_loose:.4g} px"
    np.testing.assert_allclose(pred["scores"], out["maxvals"], atol=1e-6)
    np.testing.assert_array_equal(pred["img_id"], np.arange(1000, 1006))

    model.calls = {"plain": 0, "flipped": 0}
    results = predict_coco(model, loader, codec, metainfo, protocol, torch.device("cpu"))
    kps = np.stack([np.asarray(r["keypoints"]).reshape(-1, 3)[:, :2] for r in results])
    assert np.abs(kps - out["all_preds"][..., :2]).max(-1)[~loose].max() <= 1e-3
    _check_coco_results(results, inp, out, out["all_preds"][..., 2])


def test_gtpt_evaluation_maps_to_the_official_image_keypoints() -> None:
    """GTPT: SimCC logits flipped back with the one-bin shift, averaged, softmaxed; the standard inverse;
    README tolerance: preds 1e-3 px, scores 1e-6."""
    spec, inp, out = _fixture("decode_gtpt")
    cfg = spec["official_config"]
    protocol = get_protocol("gtpt")
    assert cfg["SIMDR_SPLIT_RATIO"] == protocol.target.simcc_split and cfg["FLIP_TEST"] == protocol.test.flip_test
    metainfo = get_metainfo("coco")
    assert list(metainfo.flip_indices) == flip_indices_from_pairs(cfg["flip_pairs"], 17)
    iw, ih = cfg["IMAGE_SIZE"]
    model = _Replay("simcc", [inp["simcc_x"], inp["simcc_y"]], [inp["simcc_x_flipped"], inp["simcc_y_flipped"]],
                    (ih, iw))
    codec = model_codec(protocol, model)
    loader = _loader(inp, (ih, iw), protocol.warp, batch=5)  # 5 + 5 + 5 + 1 boxes

    pred = predict_keypoints(model, loader, codec, metainfo, protocol, torch.device("cpu"))
    assert model.calls == {"plain": 4, "flipped": 4}
    official = out["preds"].astype(np.float64)
    assert pred["keypoints"].shape == official.shape
    gap = float(np.abs(pred["keypoints"] - official).max())
    assert gap <= 1e-3, f"image keypoints off the official ones by {gap:.4g} px"
    np.testing.assert_allclose(pred["scores"], out["scores"], atol=1e-6)

    results = predict_coco(model, loader, codec, metainfo, protocol, torch.device("cpu"))
    kps = np.stack([np.asarray(r["keypoints"]).reshape(-1, 3)[:, :2] for r in results])
    assert np.abs(kps - official).max() <= 1e-3
    _check_coco_results(results, inp, out, out["scores"])
