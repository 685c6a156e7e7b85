"""Which way a metric should go, and its range, from its name: ``Curvecast(monitor="val_acc")`` and ``curvecast
analyze --tag val_acc`` need no ``mode="max"``, ``bounds=(0, 1)``.

A name is read as words, split at any character that is not a letter or digit and at a lower-to-upper case change
(``val/accw``, ``train_r2_epoch``, ``valAcc`` and ``mAP@50`` all name a score). A word of a loss, an error, a
distance or a cost (``loss``, ``err``, ``mae``, ``ppl``, ``kl``, ``fid``, ``nelbo``, ...) makes the metric better
low, whatever else the name says (``val_acc_loss`` is a loss); a score word (``acc``, ``f1``, ``auc``, ``iou``,
``r2``, ``pearson``, ``mcc``, ``bleu``, ``psnr``, ``reward``, ``elbo``, ``loglik``, ...; with a count or ``w`` after
it: ``top5``, ``ndcg10``, ``accw``) makes it better high, unless a word negates it (``neg_elbo``,
``negative_log_likelihood`` are losses). A name that says neither is read from its values, when there are some:
better high when they rise. The range comes from the values seen, for the scores that have one: [0, 1] for a
fraction (accuracy, F1, AUC, IoU, mAP, BLEU, SSIM, ...) whose values lie there, or [0, 100] for one in percent;
[-1, 1] for a correlation (Pearson, Spearman, MCC, kappa); at most 1 for R². What the user says (``mode``,
``bounds``) always wins.

>>> metric_direction("val/accw", np.array([0.4, 0.7]))
('max', (0.0, 1.0))
>>> read_direction("val_metric", np.array([0.2, 0.5, 0.6, 0.8])).note
'higher is better (the name `val_metric` names no known metric; its values rise)'
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Direction",
    "first_return",
    "metric_direction",
    "names_a_coefficient",
    "names_a_return",
    "read_direction",
]

Bounds = tuple[float | None, float | None]

# Words of a metric that is better low; "loss" counts anywhere in a word (`lossdpo`, `celoss`).
_LOWER = re.compile(
    r"^(?:.*loss.*|errors?|err|nll|ppl|perplexity|wer|cer|ter|mse|mae|rmse|msle|rmsle|mape|smape|mad|kl|kld|kldiv|bpd|"
    r"bpc|bits|fid|kid|lpips|distance|dist|regret|cost|energy|latency|time|seconds|divergence|hamming|eer|fpr|fnr|nelbo)"
    r"\d*$"
)
_FRACTION_WORDS = (
    "acc|accu|accuracy|top\\d+|f1|fscore|fbeta|auc|auroc|auprc|roc|rocauc|aupr|precision|prec|recall|sensitivity|"
    "specificity|tpr|tnr|iou|miou|jaccard|dice|map|ap|mar|ar|mrr|ndcg|hit|hits|hitrate|bleu|sacrebleu|rouge\\w*|meteor|"
    "chrf|cider|ssim|msssim|winrate|success|em|exact|pck"
)
_CORRELATION_WORDS = "pearson|pearsonr|spearman|spearmanr|mcc|kappa|corr|correlation|cosine"
_R2_WORDS = "r2|rsquared|r2score"
# A VAE's or a flow's evidence lower bound and log-likelihood rise as it learns (their negations are its loss).
_OTHER_SCORES = "psnr|reward|rewards|return|returns|score|auprg|elo|win|wins|elbo|loglik|loglikelihood|likelihood"
_NEGATION = re.compile(r"^(?:neg|negative|minus)$")  # `neg_elbo`, `negative_log_likelihood`: a score negated
_SUFFIX = r"(?:w|\d+)?"  # `accw` (weighted), `acc1`, `ndcg10`, `map50`
_FRACTION = re.compile(rf"^(?:{_FRACTION_WORDS}){_SUFFIX}$")
_CORRELATION = re.compile(rf"^(?:{_CORRELATION_WORDS}){_SUFFIX}$")
_R2 = re.compile(rf"^(?:{_R2_WORDS}){_SUFFIX}$")
_SCORE = re.compile(rf"^(?:{_FRACTION_WORDS}|{_CORRELATION_WORDS}|{_R2_WORDS}|{_OTHER_SCORES}){_SUFFIX}$")
# An RL agent's return: what its losses serve (``ep_rew_mean`` as Stable-Baselines3 logs it). Not the implicit rewards
# preference tuning logs (DPO's ``rewards/chosen``, ``rewards/margins``): its loss is one the run minimises.
_RETURN = re.compile(r"^(?:reward|rewards|rew|return|returns)$")
_PREFERENCE = re.compile(r"^(?:chosen|rejected|margin|margins|accuracies)$")
# A weight of a term of the objective that the module logs: a VAE's KL weight warming up (``beta``, ``kl_weight``,
# ``kl_coef``, ``kl_beta``), a penalty's ``lambda_gp``, an annealing factor. Its rise raises the loss it weights.
_COEFFICIENT = re.compile(r"^(?:beta|lambda|lam|anneal|annealing|annealed)$")
_TERM_WEIGHT = re.compile(r"^(?:weight|weights|coef|coefs|coeff|coeffs|coefficient|coefficients)$")  # last: `kl_weight`
# Words of what is no weight of a term: the optimizer's own settings (``weight_decay``, a learning rate, momentum;
# Adam's ``beta1`` is no word ``beta``), statistics of the parameters or gradients (``weight_norm``, ``weight_std``),
# AMP's ``loss_scale``, a loss or a score itself (``beta_vae_loss``, ``weighted_acc``).
_NOT_COEFFICIENT = re.compile(
    r"^(?:decay|lr|learning|momentum|norm|norms|grad|grads|gradient|std|mean|var|hist|histogram|param|params|update|"
    r"ema|scale|scaler|clip|.*loss.*)$"
)
_PARAMETER = re.compile(r"\.(?:weight|bias)s?$")  # `encoder.0.weight`: a parameter's name, as `named_parameters` gives
_CASE_CHANGE = re.compile(r"(?<=[a-z])(?=[A-Z])")
_SPLIT = re.compile(r"[^a-z0-9]+")
_MIN_TREND_POINTS = 4  # fewer values tell no direction


@dataclass(frozen=True)
class Direction:
    """The direction (``mode``) and range (``bounds``) of a metric, with ``note``: one line on what was assumed."""

    mode: str
    bounds: Bounds | None
    note: str


def _words(name: str) -> set[str]:
    """The name's words, split at non-alphanumerics; its case changes split it again (``valAcc``, but ``mIoU`` too)."""
    plain = _SPLIT.split(name.lower())
    camel = _SPLIT.split(_CASE_CHANGE.sub("_", name).lower())
    return {word for word in (*plain, *camel) if word}


def _first(words: set[str], pattern: re.Pattern[str]) -> str | None:
    return min((word for word in words if pattern.match(word)), default=None)


def _trend(values: np.ndarray | None) -> float:
    """The median of the last third of the finite values less that of the first third (nan: too few to tell)."""
    if values is None:
        return math.nan
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size < _MIN_TREND_POINTS:
        return math.nan
    third = max(finite.size // 3, 1)
    return float(np.median(finite[-third:]) - np.median(finite[:third]))


def _range(words: set[str], values: np.ndarray | None) -> tuple[Bounds | None, str]:
    """The range a score's values imply, and how it is described, or ``(None, "")``."""
    if values is None:
        return None, ""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if not finite.size:
        return None, ""
    low, top = float(finite.min()), float(finite.max())
    if _first(words, _FRACTION) and low >= 0.0:
        if top <= 1.0:
            return (0.0, 1.0), "range 0..1"
        if top <= 100.0:
            return (0.0, 100.0), "range 0..100 (a percentage)"
    if _first(words, _CORRELATION) and low >= -1.0 and top <= 1.0:
        return (-1.0, 1.0), "range -1..1"
    if _first(words, _R2) and top <= 1.0:
        return (None, 1.0), "at most 1"
    return None, ""


def read_direction(
    name: str, values: np.ndarray | None = None, mode: str | None = None, bounds: Bounds | None = None
) -> Direction:
    """The direction and range of the series ``name`` with ``values``: the ones given, else read from the name, else
    (for the direction) from the values; the range only from values seen (None without them)."""
    words = _words(name)
    lower, score = _first(words, _LOWER), _first(words, _SCORE)
    negation = _first(words, _NEGATION)
    if score is not None and negation is not None and lower is None:
        lower, score = f"{negation} {score}", None
    if mode is not None:
        how = "as given"
    elif lower is not None:
        mode, how = "min", f"the name says `{lower}`"
    elif score is not None:
        mode, how = "max", f"the name says `{score}`"
    else:
        trend = _trend(values)
        mode = "max" if trend > 0 else "min"
        seen = "too few values to tell" if math.isnan(trend) else "its values rise" if trend > 0 else "they do not rise"
        how = f"the name `{name}` names no known metric; {seen}"
    span = ""
    if bounds is None and mode == "max" and score is not None and lower is None:
        bounds, span = _range(words, values)
    elif bounds is not None:
        span = "range " + "..".join("none" if b is None else f"{b:g}" for b in bounds)
        how += "" if how == "as given" else "; the range as given"
    better = "lower" if mode == "min" else "higher"
    return Direction(mode, bounds, f"{better} is better" + (f", {span}" if span else "") + f" ({how})")


def metric_direction(
    name: str, values: np.ndarray | None = None, mode: str | None = None, bounds: Bounds | None = None
) -> tuple[str, Bounds | None]:
    """``(mode, bounds)`` for the series ``name`` with ``values``: the ones given, else read from the name (then, for
    the direction, from the values); the bounds only from values seen: None without them."""
    direction = read_direction(name, values, mode, bounds)
    return direction.mode, direction.bounds


def names_a_return(name: str) -> bool:
    """Whether ``name`` names an RL agent's return or reward (``total_reward``, ``episode_return``,
    ``rollout/ep_rew_mean``), not a loss of it (``reward_loss``, ``neg_reward``) nor a preference-tuning run's
    implicit reward (``rewards/chosen``, ``rewards/margins``).

    >>> [names_a_return(n) for n in ("charts/episodic_return", "rollout/ep_rew_mean", "reward_loss", "rewards/chosen")]
    [True, True, False, False]
    """
    words = _words(name)
    others = (_LOWER, _NEGATION, _PREFERENCE)
    return _first(words, _RETURN) is not None and all(_first(words, pattern) is None for pattern in others)


def first_return(names: Iterable[str]) -> str | None:
    """The first of ``names`` (a run's logged metrics) that names an RL agent's return, or None."""
    return next((name for name in names if names_a_return(name)), None)


def names_a_coefficient(name: str) -> bool:
    """Whether ``name`` names a weight of a term of the objective that the module logs (``beta``, ``kl_weight``,
    ``kl_coef``, ``kl_beta``, ``lambda_gp``, ``kl_anneal``, ``recon_weight``), not a setting of the optimizer
    (``weight_decay``, Adam's ``beta1``, ``lr``), a statistic of the parameters (``weight_norm``, ``encoder.0.weight``),
    nor a loss or a score (``beta_vae_loss``). The name alone says nothing of the run: a climb is put down to the
    objective only where the value moved over it (``objective_change``).

    >>> [names_a_coefficient(n) for n in ("beta", "train/kl_weight", "lambda_gp", "weight_decay", "beta1", "kl_loss")]
    [True, True, True, False, False, False]
    """
    ordered = [word for word in _SPLIT.split(_CASE_CHANGE.sub("_", name).lower()) if word]
    if not ordered or _PARAMETER.search(name.lower()):
        return False
    words = _words(name)
    if _first(words, _NOT_COEFFICIENT) is not None or _first(words, _SCORE) is not None:
        return False
    return _first(words, _COEFFICIENT) is not None or (len(ordered) > 1 and _TERM_WEIGHT.match(ordered[-1]) is not None)
