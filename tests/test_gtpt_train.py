"""GTPT training: the SimCC KL loss and distillation (hand-computed), the flip test's one-bin shift, and a
tiny GTPT trained and evaluated through the shared trainer on synthetic people."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from posetokens.data.synthetic import generate_splits
from posetokens.engine.config import load_config
from posetokens.engine.data import data_protocol, model_codec
from posetokens.protocols import get_protocol
from posetokens.protocols.predict import predict_outputs
from posetokens.engine.losses import gtpt_loss, simcc_distill, simcc_kl
from posetokens.engine.schedule import ema_decay_at
from posetokens.engine.trainer import ModelEMA, TrainStep, train
from posetokens.registry import create_model


def test_simcc_kl_hand_computed() -> None:
    # one joint, 4 bins per axis, uniform prediction q = 1/4, label p = [1/2, 1/2, 0, 0]:
    # per axis mean over bins of p log(p/q) = (2 * 0.5 * log 2) / 4 = log(2) / 4; x + y = log(2) / 2.
    logits = (torch.zeros(1, 1, 4), torch.zeros(1, 1, 4))
    label = torch.tensor([[[0.5, 0.5, 0.0, 0.0]]])
    assert simcc_kl(logits, (label, label), torch.ones(1, 1)).item() == pytest.approx(math.log(2) / 2, rel=1e-6)
    # joint weight 0.5 halves it; a second, zero-weight joint stays in the 1/K denominator
    two = (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4))
    lab2 = label.expand(1, 2, 4)
    w = torch.tensor([[0.5, 0.0]])
    assert simcc_kl(two, (lab2, lab2), w).item() == pytest.approx(math.log(2) / 2 * 0.5 / 2, rel=1e-6)


def test_simcc_distill_and_three_terms() -> None:
    torch.manual_seed(0)
    s = (torch.randn(2, 3, 8), torch.randn(2, 3, 10))
    assert simcc_distill(s, s, torch.ones(2, 3)).abs().item() < 1e-6  # identical branches: no distillation
    # teacher softmax [1, 0] against a uniform student over 2 bins: mean over bins of 1 * log(1 / 0.5) = log(2) / 2
    t = (torch.tensor([[[50.0, -50.0]]]), torch.tensor([[[50.0, -50.0]]]))
    u = (torch.zeros(1, 1, 2), torch.zeros(1, 1, 2))
    assert simcc_distill(u, t, torch.ones(1, 1)).item() == pytest.approx(math.log(2), rel=1e-5)
    labels = (torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[1.0, 0.0]]]))
    total = gtpt_loss(u, t, labels, torch.ones(1, 1))
    assert total.item() == pytest.approx(math.log(2) + 0.0 + math.log(2), abs=1e-5)  # pruned + unpruned + distill
    # the teacher gets no gradient from the distillation term
    t_req = tuple(x.clone().requires_grad_() for x in t)
    u_req = tuple(x.clone().requires_grad_() for x in u)
    simcc_distill(u_req, t_req, torch.ones(1, 1)).backward()
    assert all(x.grad is None for x in t_req) and all(x.grad is not None for x in u_req)


class _PeakAtColumn(nn.Module):
    """x logits peaked at bin 2c for the brightest column c (split ratio 2), flat y."""

    output_kind = "simcc"

    def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        col = img[:, 0].amax(dim=1).argmax(dim=-1)  # (B,)
        bins = torch.arange(2 * img.shape[-1])
        x = -((bins[None] - 2 * col[:, None]) ** 2).float()
        return x[:, None], torch.zeros(img.shape[0], 1, 2 * img.shape[-2])


def test_flip_test_one_bin_shift_is_exact() -> None:
    # a bright pixel at column c: the mirrored image has it at W-1-c -> bin 2W-2-2c; reversing the bins gives
    # 2c+1 and GTPT's one-bin shift brings it back to 2c, so the averaged logits peak where the plain ones do.
    img = torch.zeros(3, 3, 8, 6)
    for i, c in enumerate((0, 2, 5)):
        img[i, :, 4, c] = 1.0
    x, _ = predict_outputs(_PeakAtColumn(), img, get_protocol("gtpt").test, flip_indices=[0])
    assert x.argmax(-1).flatten().tolist() == [0, 4, 10]


def test_trainer_picks_simcc_codec_and_gtpt_loss() -> None:
    model = create_model("gtpt_t_coco_256x192", image_size=(128, 96))
    step = TrainStep(model, "auto")
    assert (step.output_kind, step.loss) == ("simcc", "gtpt")
    unpruned = create_model("gtpt_t_coco_256x192", image_size=(128, 96), keep_rate=(1.0,) * 12)
    assert TrainStep(unpruned, "auto").loss == "simcc_kl"  # one branch: nothing to distil
    cfg = load_config(None, ["model.name=gtpt_t_coco_256x192"])
    codec = model_codec(data_protocol(cfg.data, create_model("gtpt_t_coco_256x192")), create_model("gtpt_t_coco_256x192"))
    assert codec.num_bins == (384, 512)  # split 2 on 192 x 256 (spec)
    assert tuple(codec.sigma) == (4.0, 4.0)


def test_ema_momentum_cosine_ramp_hand_computed() -> None:
    # GTPT (spec section 7): per-iteration cosine ramp of the EMA momentum, 0.996 -> 1.0 over the run
    assert ema_decay_at(0, 1000, 0.996, 1.0) == pytest.approx(0.996, abs=1e-15)
    assert ema_decay_at(500, 1000, 0.996, 1.0) == pytest.approx(0.998, abs=1e-15)
    assert ema_decay_at(250, 1000, 0.996, 1.0) == pytest.approx(1 - 0.004 * (1 + math.sqrt(0.5)) / 2, abs=1e-15)
    assert ema_decay_at(1000, 1000, 0.996, 1.0) == 1.0
    assert ema_decay_at(5000, 1000, 0.996, 1.0) == 1.0  # clamped after the run
    assert ema_decay_at(123, 1000, 0.99) == 0.99  # no end: constant
    # one update with an explicit decay: 0.75 * 2 + 0.25 * 6 = 3
    src, dst = nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)
    nn.init.constant_(src.weight, 6.0)
    nn.init.constant_(dst.weight, 2.0)
    ema = ModelEMA(dst, decay=0.5)
    ema.update(src, decay=0.75)
    assert ema.module.weight.item() == 3.0


def test_ema_ramp_config_errors() -> None:
    """Refused when the recipe is read (naming --set) and, for a recipe built in Python, by train()."""
    import dataclasses

    good = load_config(None, ["model.name=gtpt_t_coco_256x192"])
    with pytest.raises(ValueError, match="--set: optim.ema_decay_end needs optim.ema_decay"):
        load_config(None, ["model.name=gtpt_t_coco_256x192", "optim.ema_decay=null", "optim.ema_decay_end=1.0"])
    with pytest.raises(ValueError, match="ema_decay_end needs optim.ema_decay"):
        train(dataclasses.replace(good, optim=dataclasses.replace(good.optim, ema_decay=None, ema_decay_end=1.0)))
    with pytest.raises(ValueError, match=r"--set: optim.ema_decay_end must be in \[0, 1\]"):
        load_config(None, ["model.name=gtpt_t_coco_256x192", "optim.ema_decay=0.996", "optim.ema_decay_end=1.5"])
    with pytest.raises(ValueError, match=r"optim.ema_decay_end must be in \[0, 1\]"):
        train(dataclasses.replace(good, optim=dataclasses.replace(good.optim, ema_decay=0.996, ema_decay_end=1.5)))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return generate_splits(tmp_path_factory.mktemp("syn"), num_train=8, num_val=4, seed=5, image_size=(96, 96))


def test_tiny_gtpt_trains_with_ema_and_evaluates(tiny_data: dict, tmp_path: Path) -> None:
    paths = [f"data.train_ann={tiny_data['train_ann']}", f"data.train_img_dir={tiny_data['train_img_dir']}",
             f"data.val_ann={tiny_data['val_ann']}", f"data.val_img_dir={tiny_data['val_img_dir']}",
             f"work_dir={tmp_path}"]
    cfg = load_config(None, [
        "model.name=gtpt_t_coco_256x192", "model.overrides={image_size: [128, 96]}", "data.batch_size=4",
        "data.val_batch_size=8", "data.aug=tokenpose_coco", "schedule.epochs=2", "eval_interval=2",
        "optim.ema_decay=0.9", "threads=1", "log_interval=1", "data.flip_test=true", *paths])
    metrics = train(cfg)
    assert {"AP", "AP50", "AR"} <= set(metrics)
    assert all(math.isfinite(v) for v in metrics.values())
    losses = [json.loads(line)["loss"] for line in (tmp_path / "log.jsonl").read_text().splitlines()
              if '"loss"' in line]
    assert len(losses) == 4 and all(math.isfinite(v) and v > 0 for v in losses)
    preds = json.loads((tmp_path / "val_predictions.json").read_text())
    assert len(preds) > 0 and len(preds[0]["keypoints"]) == 17 * 3
