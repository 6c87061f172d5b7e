"""Top-down geometry: box conversion, affine (standard + UDP), flips, half-body, RNG."""

import numpy as np
import pytest

from posetokens.codecs import HeatmapCodec
from posetokens.data.metainfo import COCO
from posetokens.data.transforms import (
    TopdownAugConfig,
    TopdownPipeline,
    affine_keypoints,
    bbox_xywh_to_center_scale,
    get_affine_transform,
    get_udp_warp_matrix,
    half_body_transform,
    invert_affine,
    normalize_image,
    random_bbox_transform,
    random_flip,
    warp_crop,
)
from posetokens.protocols import get_protocol

OUT = (192, 256)


def test_bbox_to_center_scale():
    c, s = bbox_xywh_to_center_scale([10, 20, 30, 80], aspect_ratio=0.75)
    np.testing.assert_allclose(c, [25, 60])
    np.testing.assert_allclose(s, [75, 100])  # width grown to 60 = 0.75 * 80, then x1.25
    c, s = bbox_xywh_to_center_scale(np.array([[0, 0, 100, 10], [10, 20, 30, 80]]), 0.75, padding=1.0,
                                     pixel_aligned=True)
    np.testing.assert_allclose(c, [[49.5, 4.5], [24.5, 59.5]])
    np.testing.assert_allclose(s, [[100, 100 / 0.75], [60, 80]])
    with pytest.raises(ValueError, match=r"\(4,\) or \(N, 4\)"):
        bbox_xywh_to_center_scale([1, 2, 3], 0.75)


def test_affine_hand_computed():
    c, s = np.array([100.0, 80.0]), np.array([60.0, 80.0])
    m = get_affine_transform(c, s, 0.0, OUT)
    np.testing.assert_allclose(m, [[3.2, 0, -224], [0, 3.2, -128]], atol=1e-9)
    pts = affine_keypoints([[100, 80], [70, 40], [130, 120]], m)
    np.testing.assert_allclose(pts, [[96, 128], [0, 0], [192, 256]], atol=1e-9)
    # shift moves the source centre by shift * scale
    ms = get_affine_transform(c, s, 0.0, OUT, shift=(0.5, 0.0))
    np.testing.assert_allclose(affine_keypoints([130, 80], ms), [96, 128], atol=1e-9)
    # UDP: centre -> ((w-1)/2, (h-1)/2), corners -> (0, 0) and (w-1, h-1)
    mu = get_udp_warp_matrix(c, s, 0.0, OUT)
    np.testing.assert_allclose(affine_keypoints([[100, 80], [70, 40], [130, 120]], mu),
                               [[95.5, 127.5], [0, 0], [191, 255]], atol=1e-9)
    # rotation by +90: a point right of the centre goes straight up (counter-clockwise), both matrices
    m90 = get_affine_transform(c, s, 90.0, OUT)
    np.testing.assert_allclose(affine_keypoints([110, 80], m90), [96, 128 - 32], atol=1e-9)
    u90 = get_udp_warp_matrix(c, s, 90.0, OUT)
    p = affine_keypoints([110, 80], u90)
    assert p[0] == pytest.approx(95.5) and p[1] < 127.5 - 30


@pytest.mark.parametrize("udp", [False, True])
def test_inverse_affine_round_trip(udp):
    rng = np.random.default_rng(0)
    pts = rng.uniform(-50, 700, (50, 2))
    for rot in (0.0, 37.5, -80.0):
        c, s = rng.uniform(100, 400, 2), rng.uniform(50, 300, 2)
        if udp:
            m, mi = get_udp_warp_matrix(c, s, rot, OUT), get_udp_warp_matrix(c, s, rot, OUT, inv=True)
        else:
            m = get_affine_transform(c, s, rot, OUT, shift=(0.1, -0.2))
            mi = get_affine_transform(c, s, rot, OUT, shift=(0.1, -0.2), inv=True)
        back = affine_keypoints(affine_keypoints(pts, m), mi)
        assert np.abs(back - pts).max() < 1e-4
        np.testing.assert_allclose(mi, invert_affine(m), atol=1e-9)


def test_warp_crop_moves_pixels_like_keypoints():
    img = np.zeros((300, 400, 3), np.uint8)
    img[160, 120] = 255
    crop, m = warp_crop(img, center=(100, 150), scale=OUT, rot=0.0, output_size=OUT)
    assert crop.shape == (256, 192, 3)
    x, y = affine_keypoints([120, 160], m)
    assert (x, y) == (116, 138) and crop[138, 116, 0] == 255 and crop.sum() == 255 * 3


def test_random_flip_twice_is_identity_and_swaps_sides():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
    kps = rng.uniform(0, 59, (17, 2))
    vis = (rng.random(17) > 0.3).astype(np.float32)
    fi = COCO.flip_indices
    i1, c1, k1, v1, f1 = random_flip(img, (20.0, 10.0), kps, vis, fi, rng, prob=1.0)
    assert f1 and c1[0] == pytest.approx(60 - 1 - 20.0)
    np.testing.assert_allclose(k1[5], [59 - kps[6, 0], kps[6, 1]])  # left shoulder <- mirrored right
    assert v1[5] == vis[6] and v1[0] == vis[0]
    np.testing.assert_array_equal(i1[:, 0], img[:, -1])
    i2, c2, k2, v2, _ = random_flip(i1, c1, k1, v1, fi, rng, prob=1.0)
    np.testing.assert_array_equal(i2, img)
    np.testing.assert_allclose(c2, [20.0, 10.0])
    np.testing.assert_allclose(k2, kps)
    np.testing.assert_array_equal(v2, vis)
    _, _, k3, _, f3 = random_flip(img, (20.0, 10.0), kps, vis, fi, rng, prob=0.0)
    assert not f3 and k3 is kps


def test_half_body_needs_enough_joints():
    rng = np.random.default_rng(2)
    kps = np.stack([np.linspace(10, 50, 17), np.linspace(0, 160, 17)], -1)
    vis = np.zeros(17)
    vis[:8] = 1  # 8 visible: never
    up, lo = COCO.upper_body_ids, COCO.lower_body_ids
    assert all(half_body_transform(kps, vis, up, lo, 0.75, rng, prob=1.0) is None for _ in range(20))
    vis[:9] = 1  # 9 visible: always with prob 1 (lower half has 0 -> upper)
    for _ in range(5):
        res = half_body_transform(kps, vis, up, lo, 0.75, rng, prob=1.0)
        assert res is not None
        c, s = res
        sel = kps[:9]
        np.testing.assert_allclose(c, sel.mean(0))
        assert s[0] / s[1] == pytest.approx(0.75)
        ext = sel.max(0) - sel.min(0)
        assert (s >= ext * 1.5 - 1e-9).all()
    assert half_body_transform(kps, vis, up, lo, 0.75, rng, prob=0.0) is None


def test_random_bbox_transform_ranges():
    rng = np.random.default_rng(3)
    c0, s0 = np.array([50.0, 60.0]), np.array([30.0, 40.0])
    rots, ratios = [], []
    for _ in range(300):
        c, s, r = random_bbox_transform(c0, s0, rng)
        rots.append(r)
        ratios.append(s[0] / s0[0])
        assert np.all(np.abs(c - c0) <= 0.16 * s0 + 1e-9)
    assert max(abs(x) for x in rots) <= 80 and 0.2 < np.mean(np.array(rots) != 0) < 0.9
    assert 0.5 <= min(ratios) and max(ratios) <= 1.5
    cfg = get_protocol("tokenpose").aug  # the official recipe's draws (clipped normals)
    for _ in range(100):
        _, s, r = random_bbox_transform(c0, s0, rng, cfg.shift_factor, cfg.shift_prob, cfg.scale_range,
                                        cfg.scale_std, cfg.scale_prob, cfg.rotate_limit, cfg.rotate_std,
                                        cfg.rotate_prob)
        assert abs(r) <= 90 and 0.65 - 1e-9 <= s[0] / s0[0] <= 1.35 + 1e-9


def test_synthetic_preset_never_flips_or_rotates():
    """The quickstart's preset: every crop is shifted (<= 5% of the box) and scaled (x0.85-1.15), never flipped,
    rotated or cut to half a body (the synthetic people's left/right cues must keep matching their labels)."""
    img, box, kps, vis = _sample(np.random.default_rng(6))
    pipe = TopdownPipeline(OUT, "coco", train=True, aug=TopdownAugConfig.synthetic())
    plain = TopdownPipeline(OUT, "coco", train=False)(img, box)
    c0, s0 = np.asarray(plain["center"]), np.asarray(plain["scale"])
    shifted = 0
    for seed in range(200):
        out = pipe(img, box, kps, vis, rng=np.random.default_rng(seed))
        assert not out["flipped"] and out["rotation"] == 0.0
        ratio = np.asarray(out["scale"]) / s0
        assert 0.85 - 1e-9 <= ratio[0] <= 1.15 + 1e-9 and ratio[0] == pytest.approx(ratio[1])
        assert np.all(np.abs(np.asarray(out["center"]) - c0) <= 0.05 * s0 + 1e-9)
        shifted += bool(np.any(np.asarray(out["center"]) != c0))
    assert shifted == 200


def test_normalize_image():
    img = np.zeros((2, 2, 3), np.uint8)
    img[..., 0] = 255  # blue in BGR
    out = normalize_image(img)
    assert out.shape == (3, 2, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0, 0], [-123.675 / 58.395, -116.28 / 57.12, (255 - 103.53) / 57.375],
                               rtol=1e-6)


def _sample(rng):
    img = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    kps = np.stack([rng.uniform(110, 210, 17), rng.uniform(40, 200, 17)], -1)
    return img, [100, 30, 120, 180], kps, np.ones(17, np.float32)


def test_pipeline_reproducible_with_seeded_generator():
    img, box, kps, vis = _sample(np.random.default_rng(4))
    codec = HeatmapCodec(OUT, (48, 64), unbiased=True, udp=True)
    pipe = TopdownPipeline(OUT, "coco", codec=codec, train=True, use_udp=True)
    a = pipe(img, box, kps, vis, rng=np.random.default_rng(7))
    b = pipe(img, box, kps, vis, rng=np.random.default_rng(7))
    for k in ("image", "keypoints", "heatmaps", "keypoint_weights", "warp_matrix"):
        np.testing.assert_array_equal(a[k], b[k])
    assert a["rotation"] == b["rotation"] and a["flipped"] == b["flipped"]
    outs = [pipe(img, box, kps, vis, rng=np.random.default_rng(s))["warp_matrix"] for s in range(4)]
    assert any(not np.allclose(outs[0], o) for o in outs[1:])
    with pytest.raises(ValueError, match="rng"):
        pipe(img, box, kps, vis)


def test_pipeline_val_decode_maps_back_to_image():
    img, box, kps, vis = _sample(np.random.default_rng(5))
    codec = HeatmapCodec(OUT, (48, 64), unbiased=True, udp=True, decode="dark")
    pipe = TopdownPipeline(OUT, COCO, codec=codec, use_udp=True)
    out = pipe(img, box, kps, vis)
    assert out["image"].shape == (3, 256, 192) and out["heatmaps"].shape == (17, 64, 48)
    dec, _ = codec.decode(out["heatmaps"])
    back = affine_keypoints(dec[0], invert_affine(out["warp_matrix"]))
    assert np.abs(back - kps).max() < 0.1 * out["scale"][0] / (OUT[0] - 1)  # < 0.1 crop px


# ------------------------------------------------------------------ protocol pipelines (spec §1.3-1.4)
def _official_points(c, s_px, rot, out_wh, minus_one):
    """The official get_affine_transform's three point pairs, built as spec §1.3 says (float32 arrays)."""
    off = 1.0 if minus_one else 0.0
    src_w = np.float32(np.float32(s_px) - np.float32(off))
    rad = np.pi * rot / 180
    sn, cs = np.sin(rad), np.cos(rad)
    d = np.array([0.0, float(src_w) * -0.5])
    src_dir = np.array([d[0] * cs - d[1] * sn, d[0] * sn + d[1] * cs])
    w, h = out_wh
    src, dst = np.zeros((3, 2), np.float32), np.zeros((3, 2), np.float32)
    src[0], src[1] = c, np.asarray(c) + src_dir
    dst[0] = [(w - off) * 0.5, (h - off) * 0.5]
    dst[1] = np.array([(w - off) * 0.5, (h - off) * 0.5]) + np.array([0.0, (w - off) * -0.5])
    for p in (src, dst):
        e = p[0] - p[1]
        p[2] = p[1] + np.array([-e[1], e[0]], np.float32)
    return src, dst


@pytest.mark.parametrize("kind", ["standard", "size_minus_one"])
def test_warp_matrix_equals_cv2_on_official_float32_points(kind):
    import cv2

    from posetokens.data.transforms import get_warp_matrix

    for c, s, rot in (((123.37, 211.91), 157.3, 37.2), ((51.2, 300.0), 96.47, -84.836), ((400.5, 99.1), 800.1, 0.0)):
        src, dst = _official_points(c, s, rot, OUT, kind == "size_minus_one")
        want = cv2.getAffineTransform(src, dst)
        np.testing.assert_allclose(get_warp_matrix(c, (s, s / 0.75), rot, OUT, kind), want, atol=1e-9)
        np.testing.assert_allclose(get_warp_matrix(c, (s, s / 0.75), rot, OUT, kind, inv=True),
                                   cv2.getAffineTransform(dst, src), atol=1e-9)


def _person():
    kps = np.array([[50, 20], [52, 18], [48, 18], [55, 19], [45, 19], [60, 35], [40, 35], [65, 50], [35, 50],
                    [68, 62], [32, 62], [57, 70], [43, 70], [58, 90], [42, 90], [59, 110], [41, 110]], float)
    return np.zeros((130, 100, 3), np.uint8), kps, np.ones(17, np.float32)


@pytest.mark.parametrize(("proto", "plus"), [("tokenpose", 1.0), ("gtpt", 0.0)])
def test_hrnet_half_body_then_flip_hand_computed(proto, plus):
    """Half body on the unflipped joints, then the flip mirrors its centre c_x -> W-1-c_x (spec §1.4)."""
    from posetokens.data.transforms import AugDraws
    from posetokens.protocols import get_protocol
    from posetokens.protocols.topdown import build_pipeline

    img, kps, vis = _person()
    pipe = build_pipeline(get_protocol(proto), (256, 192), "coco", train=True)
    out = pipe(img, [30, 10, 40, 105], kps, vis, draws=AugDraws("upper", 1.2, 0.0, True))
    up = kps[:11]  # COCO upper body 0-10, all visible
    mean = up.mean(0)
    np.testing.assert_allclose(out["center"], [99 - mean[0], mean[1]], rtol=1e-6)
    w, h = up.max(0) - up.min(0) + plus  # 36 (+1) x 44 (+1)
    w, h = (w, w / 0.75) if w > 0.75 * h else (h * 0.75, h)
    np.testing.assert_allclose(out["scale"], [w * 1.5 * 1.2, h * 1.5 * 1.2], rtol=1e-6)
    assert out["half_body"] == "upper" and out["flipped"]
    # the flipped crop joints: left/right swapped, x mirrored, then the warp
    m = out["warp_matrix"]
    flipped = kps[COCO.flip_indices].copy()
    flipped[:, 0] = 99 - flipped[:, 0]
    np.testing.assert_allclose(out["keypoints"], affine_keypoints(flipped, m), atol=1e-4)


def test_official_invisible_joints_stay_and_flip_zeroes_them():
    """HRNet-era: only visible joints are transformed; invisible keep their coordinates, a flip multiplies them
    by 0 (spec §1.3-1.4). MMPose 1.x transforms all."""
    from posetokens.data.transforms import AugDraws
    from posetokens.protocols import get_protocol
    from posetokens.protocols.topdown import build_pipeline

    img, kps, vis = _person()
    kps[3], vis[3] = (5.0, 7.0), 0.0
    pipe = build_pipeline(get_protocol("tokenpose"), (256, 192), "coco")
    out = pipe(img, [30, 10, 40, 105], kps, vis)
    np.testing.assert_allclose(out["keypoints"][3], [5, 7])
    out = pipe(img, [30, 10, 40, 105], kps, vis, draws=AugDraws(flip=True))
    np.testing.assert_allclose(out["keypoints"][4], [0, 0])  # joint 3 swapped into slot 4, zeroed
    assert out["keypoints_visible"][4] == 0
    mm = build_pipeline(get_protocol("mmpose"), (256, 192), "coco")(img, [30, 10, 40, 105], kps, vis)
    np.testing.assert_allclose(mm["keypoints"][3], affine_keypoints([5.0, 7.0], mm["warp_matrix"]), atol=1e-4)


def test_mmpose0_shift_before_flip_and_test_padding():
    """PCT: the shift moves the box centre by shift * box size before the flip; test boxes are padded 1.12."""
    from posetokens.data.transforms import AugDraws
    from posetokens.protocols import get_protocol
    from posetokens.protocols.topdown import build_pipeline

    img, kps, vis = _person()
    proto = get_protocol("pct")
    train = build_pipeline(proto, (256, 256), "coco", train=True)
    out = train(img, [30, 10, 40, 100], kps, vis, draws=AugDraws(None, 1.0, 0.0, True, (0.1, -0.05)))
    c0, s0 = np.array([50.0, 60.0]), np.array([100.0, 100.0]) * 1.25  # x + w/2; square input: 100 x 100
    np.testing.assert_allclose(out["center"], [99 - (c0[0] + 0.1 * s0[0]), c0[1] - 0.05 * s0[1]])
    test = build_pipeline(proto, (256, 256), "coco")(img, [30, 10, 40, 100])
    np.testing.assert_allclose(test["scale"], [112.0, 112.0])


@pytest.mark.parametrize("order", ["hrnet", "mmpose0", "mmpose"])
def test_a_layout_that_names_no_body_parts_gets_no_half_body(order: str) -> None:
    """A skeleton file without ``upper_body``/``lower_body`` turns the half-body augmentation off. The official
    HRNet order puts every joint not in the lower body in the upper one, so without the check such a layout got a
    crop around all its joints, 1.5x, about once in three draws; with parts given it draws half bodies."""
    from posetokens.data.metainfo import from_coco_categories
    from posetokens.data.transforms import TopdownAugConfig, draw_augmentation

    names = [f"j{i}" for i in range(10)]
    bare = from_coco_categories({"keypoints": names}, sigmas=[0.05] * 10)
    parts = from_coco_categories({"keypoints": names}, sigmas=[0.05] * 10, upper_body=names[:5],
                                 lower_body=names[5:])
    upper_only = from_coco_categories({"keypoints": names}, sigmas=[0.05] * 10, upper_body=names[:5])
    aug = TopdownAugConfig(order=order, half_body_prob=0.5, half_body_min_keypoints=9,
                           half_body_min_part_keypoints=3)
    vis = np.ones(10)
    # the HRNet-era orders' upper half is every joint not in the lower body: without one, a whole-person crop
    for meta, some in ((bare, False), (parts, True), (upper_only, order == "mmpose")):
        rng = np.random.default_rng(0)
        drawn = {draw_augmentation(aug, rng, meta, vis).half_body for _ in range(200)}
        assert (drawn != {None}) is some, (meta.name, drawn)
