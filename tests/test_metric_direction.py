"""The direction and range of a metric from its name (common scores, their prefixes and suffixes), else its data."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from curvecast.cli import main
from curvecast.metric_direction import metric_direction, names_a_coefficient, read_direction

WILD_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "wild"
FRACTION = [0.2, 0.5, 0.7, 0.9]


@pytest.mark.parametrize(
    ("name", "values", "expected"),
    [
        ("pearson", [0.1, 0.4, 0.6, 0.8], ("max", (-1.0, 1.0))),
        ("val/spearman", [-0.2, 0.4, 0.6, 0.8], ("max", (-1.0, 1.0))),
        ("val_mcc", [0.0, 0.2, 0.3, 0.4], ("max", (-1.0, 1.0))),
        ("r2", [-0.5, 0.2, 0.4, 0.5], ("max", (None, 1.0))),
        ("train_r2_epoch", [0.3, 0.4, 0.5, 0.55], ("max", (None, 1.0))),
        ("prec_macro", FRACTION, ("max", (0.0, 1.0))),
        ("val/accw", FRACTION, ("max", (0.0, 1.0))),
        ("train_acc_step", FRACTION, ("max", (0.0, 1.0))),
        ("f1_micro", FRACTION, ("max", (0.0, 1.0))),
        ("val_recall_epoch", FRACTION, ("max", (0.0, 1.0))),
        ("test_auroc", FRACTION, ("max", (0.0, 1.0))),
        ("val/mAP@50", FRACTION, ("max", (0.0, 1.0))),
        ("val_mean_iou", FRACTION, ("max", (0.0, 1.0))),
        ("dice_score", FRACTION, ("max", (0.0, 1.0))),
        ("ndcg@10", FRACTION, ("max", (0.0, 1.0))),
        ("ssim", FRACTION, ("max", (0.0, 1.0))),
        ("valAccuracy", [20.0, 50.0, 70.0, 90.0], ("max", (0.0, 100.0))),
        ("bleu", [5.0, 12.0, 20.0, 27.0], ("max", (0.0, 100.0))),
        ("rouge1", FRACTION, ("max", (0.0, 1.0))),
        ("psnr", [20.0, 25.0, 28.0, 30.0], ("max", None)),
        ("episode reward", [-50.0, 10.0, 80.0, 200.0], ("max", None)),
        ("train/return", [-50.0, 10.0, 80.0, 200.0], ("max", None)),
        ("val_MAE", [3.0, 2.0, 1.5, 1.2], ("min", None)),
        ("val_SMAPE", [30.0, 20.0, 15.0, 12.0], ("min", None)),
        ("top1_err", [0.9, 0.5, 0.3, 0.2], ("min", None)),
        ("val/lossdpo", [0.9, 0.5, 0.3, 0.2], ("min", None)),
        ("val_acc_loss", [0.9, 0.5, 0.3, 0.2], ("min", None)),
        ("train/elbo", [-97.0, -40.0, -25.0, -21.0], ("max", None)),
        ("val_loglik", [-3.0, -2.0, -1.5, -1.2], ("max", None)),
        ("neg_elbo", [97.0, 40.0, 25.0, 21.0], ("min", None)),
        ("nelbo", [97.0, 40.0, 25.0, 21.0], ("min", None)),
        ("negative_log_likelihood", [3.0, 2.0, 1.5, 1.2], ("min", None)),
    ],
)
def test_the_direction_and_range_of_common_scores(name: str, values: list[float], expected: tuple) -> None:
    assert metric_direction(name, np.array(values)) == expected


def test_names_alone_give_the_direction_without_a_range() -> None:
    assert [metric_direction(name) for name in ("pearson", "val/accw", "prec_macro", "loss")] == [
        ("max", None), ("max", None), ("max", None), ("min", None),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("values", "mode", "seen"),
    [
        ([0.02, 0.05, 0.1, 0.2, 0.25, 0.26], "max", "its values rise"),
        ([3.0, 2.0, 1.0, 0.8, 0.7, 0.6], "min", "they do not rise"),
        ([1.0, 2.0], "min", "too few values to tell"),
    ],
)
def test_a_name_that_says_nothing_is_read_from_its_data(values: list[float], mode: str, seen: str) -> None:
    direction = read_direction("val_metric", np.array(values))
    assert (direction.mode, direction.bounds) == (mode, None)
    assert direction.note.endswith(f"(the name `val_metric` names no known metric; {seen})")


def test_what_was_given_is_noted_and_wins() -> None:
    direction = read_direction("pearson", np.array(FRACTION), mode="min", bounds=(0.0, None))
    assert (direction.mode, direction.bounds) == ("min", (0.0, None))
    assert direction.note == "lower is better, range 0..none (as given)"
    assert read_direction("pearson", bounds=(0.0, 1.0)).note == (
        "higher is better, range 0..1 (the name says `pearson`; the range as given)"
    )


@pytest.mark.parametrize(
    ("name", "tag", "note"),
    [
        ("181", "prec_macro", "higher is better, range 0..1 (the name says `prec`)"),
        ("186", "val/accw", "higher is better, range 0..1 (the name says `accw`)"),
        ("123", "valid_r2", "higher is better, at most 1 (the name says `r2`)"),
        ("173", "val_metric", "higher is better (the name `val_metric` names no known metric; its values rise)"),
    ],
)
def test_analyze_notes_the_direction_it_assumed(tmp_path: Path, capsys, name: str, tag: str, note: str) -> None:
    if not WILD_DIR.is_dir():
        pytest.skip(f"the real Lightning logs are not at {WILD_DIR}")
    log = tmp_path / f"{name}.csv"
    shutil.copy(WILD_DIR / f"{name}.csv", log)
    assert main(["analyze", str(log), "--tag", tag, "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert f"\n  direction: {note}\n" in out


@pytest.mark.parametrize(
    "name",
    ["beta", "kl_weight", "kl_coef", "kl_beta", "train/kl_coeff", "klWeight", "kl_anneal", "annealing_weight",
     "lambda_gp", "lambda_kl", "recon_weight", "entropy_coef", "vae/beta_step"],
)  # fmt: skip
def test_a_weight_of_the_objective_is_named_so(name: str) -> None:
    assert names_a_coefficient(name)


@pytest.mark.parametrize(
    "name",
    [
        "weight_decay", "weight_norm", "weight_std", "grad_norm", "encoder.0.weight",  # the optimizer, the parameters
        "beta1", "beta2", "adam_beta1", "lr", "lr-Adam", "momentum", "loss_scale",  # Adam's betas, the LR, AMP's scale
        "beta_vae_loss", "kl", "kl_loss", "recon_loss", "weighted_acc", "train_loss", "elbo",  # losses and scores
        "weight", "weights_hist",  # a weight of nothing named
    ],
)  # fmt: skip
def test_near_misses_are_no_weights_of_the_objective(name: str) -> None:
    # Adam's `beta1` (0.9) logged beside a climb would explain nothing anyway (it does not move), but a weight norm
    # grows with a real divergence: taking it for the objective's weight would hide the warning.
    assert not names_a_coefficient(name)
