"""Healthy live Lightning runs with Curvecast attached: what it raised, and the curves it saw.

    python benchmarks/live_runs.py [--runs N] [--cache DIR] [--group NAME] [--force] [--list]

Each run is a small, real Lightning training on CPU, healthy by construction (an LR inside the range that works for
its optimizer and model, no corrupted data), started from step 0 so that the early transient is included:

- ``mlp_regression``: a 2-layer MLP on a smooth synthetic regression task (MSE, noise floor 0.01);
- ``mlp_classification``: an MLP on 4 overlapping Gaussian clusters (cross-entropy; ``val_acc`` with mode="max");
- ``cnn_images``: a small CNN on synthetic 16x16 images of noisy bars and crosses;
- ``char_lm``: a character-level GRU or transformer on text from a small random grammar;
- ``autoencoder``: Lightning's own README autoencoder (784-64-3-64-784, Adam 1e-3) on synthetic 28x28 strokes, at
  batch sizes 1-32 (the README's loader has batch size 1);
- ``rl_reward``: REINFORCE on a "follow the signal" task whose return grows about tenfold; the return of 16 fresh
  episodes is logged as ``val_reward`` every 5 steps and is the monitor, with mode="max" (the surrogate loss is no
  loss that falls);
- ``converge_zero``: noiseless tasks whose loss falls to 1e-3 or below (a teacher network, separable classes).

Within a workload the LR (inside the healthy range), batch size, width, LR schedule (none, linear warmup + cosine,
step decay), length and seed vary; every third run is on a busy machine (``MachineLoad``: stalls and a stretch of
slower steps; these runs log every step, so that their throughput is watched at every step). Every run trains with
``Curvecast(early_stopping=True, background=False, tensorboard=False)`` plus a recorder, and saves into the cache
directory:

- ``<name>.csv``: the per-step curves curvecast recorded (``loss``, ``grad_norm``, ``lr``, ``samples_per_sec``,
  the validation metrics at their steps, and ``reward`` for the RL runs), blank where a series has no point;
- ``<name>.json``: the run's spec, every anomaly curvecast raised (kind, severity, step, series, score, value), the
  other alerts (advice, early stop), the stop request (reason, step, message) or null, the steps trained, the wall
  time, and a hash of the detector sources that produced the alerts (``detector_version``).

A run whose JSON is in the cache with the same spec is not trained again (``--force`` retrains). The default set of
66 runs (26,000 steps) takes 2-4 minutes of one CPU core (4-8 minutes of wall time on a busy 2-core machine);
``--runs N`` trains the first N of the list (the list interleaves the workloads, so any prefix covers all of them).
Everything is seeded: the curves repeat exactly; the throughput, and so the slowdown alerts, depend on the machine.
``benchmarks/false_alarms.py`` reads the cache (``load_runs`` there).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import math
import random
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from curvecast import Curvecast  # noqa: E402 - after the path fix, so the script runs from a checkout
from curvecast.forecasting.report import Report  # noqa: E402
from curvecast.integrations.actuator import Actuator  # noqa: E402

__all__ = ["DEFAULT_CACHE", "GROUPS", "RunSpec", "default_specs", "detector_version", "ensure_runs"]

DEFAULT_CACHE = Path("/tmp/curvecast_live_runs")
SAVED_SERIES = ("loss", "grad_norm", "lr", "throughput/samples_per_sec")  # per-step series kept from the history
GROUPS = (
    "mlp_regression", "mlp_classification", "cnn_images", "char_lm", "autoencoder", "rl_reward", "converge_zero",
)  # fmt: skip
# The sources whose behaviour the recorded alerts reflect: a change there makes the recorded alerts stale.
DETECTOR_SOURCES = ("curvecast/forecasting/anomalies", "curvecast/live/stability_watch.py")


@dataclass(frozen=True)
class RunSpec:
    """One healthy run: the workload and every setting that varies between runs."""

    name: str
    group: str
    seed: int
    lr: float
    batch_size: int
    width: int
    schedule: str  # "none", "cosine" (linear warmup then cosine to 10%), "step" (x0.3 at 50% and 80%)
    max_steps: int
    optimizer: str = "adam"  # "adam", "adamw", "sgd" (momentum 0.9)
    variant: str = ""  # a workload's sub-kind: "gru"/"transformer", "teacher"/"separable"
    monitor: str | None = None  # None: the training loss
    mode: str = "min"
    val_every: int = 25  # optimizer steps between validations
    clip: float | None = None  # gradient clipping value, when used
    busy: bool = False  # the machine is busy: stalls and one stretch of slower steps (see MachineLoad)
    log_every: int = 50  # the Trainer's log_every_n_steps: the throughput's cadence (busy runs: every step)


# --- data -------------------------------------------------------------------------------------------------------------


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def regression_data(n: int, seed: int, noise: float = 0.1, features: int = 8) -> TensorDataset:
    """y = sin(x.a) + 0.5 (x.b)^2 / features + noise: smooth, learnable, with a noise floor of ``noise**2``."""
    g = _gen(seed)
    x = torch.randn(n, features, generator=g)
    a, b = torch.randn(features, generator=_gen(1234)), torch.randn(features, generator=_gen(4321))
    y = torch.sin(x @ a / math.sqrt(features)) + 0.5 * (x @ b) ** 2 / features + noise * torch.randn(n, generator=g)
    return TensorDataset(x, y.unsqueeze(-1))


def cluster_data(n: int, seed: int, classes: int = 4, features: int = 10, spread: float = 1.6) -> TensorDataset:
    """Overlapping Gaussian clusters: accuracy saturates below 100%, the loss well above 0."""
    g = _gen(seed)
    centres = torch.randn(classes, features, generator=_gen(99)) * 1.5
    labels = torch.randint(0, classes, (n,), generator=g)
    x = centres[labels] + spread * torch.randn(n, features, generator=g)
    return TensorDataset(x, labels)


def image_data(n: int, seed: int, size: int = 16) -> TensorDataset:
    """Noisy 16x16 images of one of 4 shapes (horizontal bar, vertical bar, cross, diagonal) at random positions."""
    g = _gen(seed)
    labels = torch.randint(0, 4, (n,), generator=g)
    pos = torch.randint(3, size - 3, (n, 2), generator=g)
    img = 0.5 * torch.randn(n, 1, size, size, generator=g)
    idx = torch.arange(size)
    for i in range(n):
        r, c, k = int(pos[i, 0]), int(pos[i, 1]), int(labels[i])
        if k in (0, 2):
            img[i, 0, r, max(c - 3, 0) : c + 4] += 1.5
        if k in (1, 2):
            img[i, 0, max(r - 3, 0) : r + 4, c] += 1.5
        if k == 3:
            d = idx[max(r - 3, 0) : r + 4]
            img[i, 0, d, (d - r + c).clamp(0, size - 1)] += 1.5
    return TensorDataset(img, labels)


def stroke_images(n: int, seed: int) -> TensorDataset:
    """28x28 images in [0, 1], mostly zero, with one to three thick strokes (MNIST-like statistics)."""
    g = _gen(seed)
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    out = torch.zeros(n, 28 * 28)
    for i in range(n):
        img = torch.zeros(28, 28)
        for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
            p0, p1 = 4 + 20 * torch.rand(2, generator=g), 4 + 20 * torch.rand(2, generator=g)
            d = p1 - p0
            t = (((xx - p0[0]) * d[0] + (yy - p0[1]) * d[1]) / (d @ d + 1e-6)).clamp(0, 1)
            dist2 = (xx - p0[0] - t * d[0]) ** 2 + (yy - p0[1] - t * d[1]) ** 2
            img = torch.maximum(img, torch.exp(-dist2 / 2.0))
        out[i] = img.flatten()
    return TensorDataset(out, out)


_SUBJECTS = ["the cat", "a dog", "my friend", "the model", "our team", "a small bird", "the river", "an old man"]
_VERBS = ["sees", "likes", "follows", "finds", "trains", "watches", "carries", "paints"]
_OBJECTS = ["the ball", "a tree", "the loss", "some bread", "a red kite", "the old map", "a curve", "two stones"]
_ENDINGS = [".", " today.", " again.", " at night.", " slowly.", " with care."]
CHARS = sorted(set(" ".join(_SUBJECTS + _VERBS + _OBJECTS + _ENDINGS)))


def text_data(n_windows: int, seed: int, block: int = 32) -> TensorDataset:
    """Windows of text from a small random grammar, as (input, next character) pairs."""
    rng = random.Random(seed)
    words = (_SUBJECTS, _VERBS, _OBJECTS)
    text = " ".join(
        f"{rng.choice(words[0])} {rng.choice(words[1])} {rng.choice(words[2])}{rng.choice(_ENDINGS)}"
        for _ in range(n_windows // 4 + 50)
    )
    index = {ch: i for i, ch in enumerate(CHARS)}
    ids = torch.tensor([index[ch] for ch in text], dtype=torch.long)
    starts = torch.randint(0, len(ids) - block - 1, (n_windows,), generator=_gen(seed))
    windows = torch.stack([ids[s : s + block + 1] for s in starts.tolist()])
    return TensorDataset(windows[:, :-1], windows[:, 1:])


def teacher_data(n: int, seed: int, features: int = 6) -> TensorDataset:
    """Targets from a fixed small tanh network, without noise: the loss can fall towards 0."""
    g = _gen(seed)
    x = torch.randn(n, features, generator=g)
    w1, w2 = torch.randn(features, 8, generator=_gen(7)), torch.randn(8, 1, generator=_gen(8))
    return TensorDataset(x, torch.tanh(x @ w1 / math.sqrt(features)) @ w2 * (2.0 / math.sqrt(8)))  # variance ~1


def separable_data(n: int, seed: int, features: int = 10) -> TensorDataset:
    """Two classes split by a margin: cross-entropy falls towards 0."""
    g = _gen(seed)
    w = torch.randn(features, generator=_gen(11))
    x = torch.randn(n, features, generator=g)
    margin = x @ w / w.norm()
    x = x + (0.5 * torch.sign(margin)).unsqueeze(-1) * (w / w.norm())  # push each point off the boundary
    return TensorDataset(x, (margin > 0).long())


# --- models -----------------------------------------------------------------------------------------------------------


def mlp(inputs: int, width: int, outputs: int, depth: int = 2, act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(inputs if i == 0 else width, width), act()]
    return nn.Sequential(*layers, nn.Linear(width, outputs))


def small_cnn(width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(width, 4),
    )  # fmt: skip


class CharGRU(nn.Module):
    def __init__(self, vocab: int, width: int) -> None:
        super().__init__()
        self.embed, self.rnn = nn.Embedding(vocab, width), nn.GRU(width, width, batch_first=True)
        self.head = nn.Linear(width, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(self.embed(x))[0])


class CharTransformer(nn.Module):
    def __init__(self, vocab: int, width: int, block: int = 32) -> None:
        super().__init__()
        self.embed, self.pos = nn.Embedding(vocab, width), nn.Embedding(block, width)
        layer = nn.TransformerEncoderLayer(width, 4, 2 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(width, vocab)
        self.register_buffer("mask", torch.triu(torch.full((block, block), float("-inf")), diagonal=1), False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        h = self.embed(x) + self.pos(torch.arange(t))
        return self.head(self.blocks(h, mask=self.mask[:t, :t], is_causal=True))


def autoencoder() -> nn.Module:
    """Lightning's README LitAutoEncoder: 784-64-3 encoder, 3-64-784 decoder."""
    encoder = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 3))
    return nn.Sequential(encoder, nn.Linear(3, 64), nn.ReLU(), nn.Linear(64, 784))


# --- a busy machine ------------------------------------------------------------------------------------------------


class MachineLoad:
    """The delays a busy shared machine adds to training steps: healthy runs whose throughput dips for a while.

    4% of steps stall for 10-30 ms (another process, the OS, a page fault), and one stretch of 30-80 steps, somewhere
    in the middle 40% of the run, takes 6-12 ms more per step (another job sharing the cores): on these 5-10 ms steps
    that halves the throughput for a while. Seeded, so a run's delays repeat.
    """

    def __init__(self, seed: int, max_steps: int) -> None:
        rng = random.Random(f"load/{seed}")
        self.stalls = {s: rng.uniform(0.010, 0.030) for s in range(max_steps) if rng.random() < 0.04}
        self.start = int(rng.uniform(0.3, 0.7) * max_steps)
        self.stop = self.start + rng.randint(30, 80)
        self.extra = rng.uniform(0.006, 0.012)

    def delay(self, step: int) -> float:
        return self.stalls.get(step, 0.0) + (self.extra if self.start <= step < self.stop else 0.0)


def slow_down(module: L.LightningModule) -> None:
    """Sleep as the busy machine of the module's run would make this step take longer (nothing when not busy)."""
    load = getattr(module, "load", None)
    if load is not None:
        time.sleep(load.delay(int(module.global_step)))


# --- the Lightning modules --------------------------------------------------------------------------------------------


def lr_lambda(schedule: str, max_steps: int) -> Callable[[int], float]:
    """The LR multiplier of each step: constant, linear warmup (5%) then cosine to 10%, or x0.3 at 50% and 80%."""
    warmup = max(int(0.05 * max_steps), 1)

    def cosine(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min((step - warmup) / max(max_steps - warmup, 1), 1.0)
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))

    def step_decay(step: int) -> float:
        return 0.3 ** ((step >= 0.5 * max_steps) + (step >= 0.8 * max_steps))

    return {"none": lambda step: 1.0, "cosine": cosine, "step": step_decay}[schedule]


class Supervised(L.LightningModule):
    """A model and a loss: MSE for regression, cross-entropy (with accuracy) for classification and text."""

    def __init__(self, spec: RunSpec, model: nn.Module, classify: bool) -> None:
        super().__init__()
        self.spec, self.model, self.classify = spec, model, classify
        self.load = MachineLoad(spec.seed, spec.max_steps) if spec.busy else None

    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        x, y = batch
        out = self.model(x)
        if not self.classify:
            return nn.functional.mse_loss(out, y), None
        out, y = out.reshape(-1, out.shape[-1]), y.reshape(-1)
        return nn.functional.cross_entropy(out, y), (out.argmax(-1) == y).float().mean()

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        slow_down(self)
        loss, _ = self._loss(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        loss, acc = self._loss(batch)
        self.log("val_loss", loss)
        if acc is not None:
            self.log("val_acc", acc)

    def configure_optimizers(self) -> dict[str, Any]:
        return make_optimizer(self.spec, self.parameters())


def make_optimizer(spec: RunSpec, params: Iterable[torch.nn.Parameter]) -> dict[str, Any]:
    if spec.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(params, lr=spec.lr, momentum=0.9)
    elif spec.optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=spec.lr, weight_decay=0.01)
    else:
        opt = torch.optim.Adam(params, lr=spec.lr)
    if spec.schedule == "none":
        return {"optimizer": opt}
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(spec.schedule, spec.max_steps))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


SIGNALS, ACTIONS, HORIZON = 6, 3, 40  # the RL task: observations, actions, longest episode
VAL_EPISODES = 16  # episodes per validation: a noisy, non-monotone return, as RL evaluations are


class FollowTheSignal(L.LightningModule):
    """REINFORCE on a task whose return grows about tenfold as the policy learns.

    At each of up to 40 time steps the agent sees one of 6 signals; 4 of them name the action that pays +1, 2 are
    ambiguous (two actions pay, at random). A wrong action ends the episode, so a random policy returns about 0.5 and
    a good one 10-20: the return is noisy, heavy-tailed and non-monotone, as RL returns are. The training "loss" is the
    policy-gradient surrogate, whose size follows the returns: it is no loss that falls. The mean return of each
    batch is logged as ``reward``, that of 16 fresh episodes as ``val_reward`` (the monitor, mode="max").
    """

    def __init__(self, spec: RunSpec) -> None:
        super().__init__()
        self.spec = spec
        self.policy = mlp(SIGNALS, spec.width, ACTIONS, depth=1, act=nn.Tanh)
        self.answer = torch.tensor([0, 1, 2, 0, 1, 2])
        self.rng = _gen(spec.seed + 1000)
        self.baseline = 0.0
        self.rewards: list[tuple[int, float]] = []  # (step, mean return of the batch), saved with the curves
        self.load = MachineLoad(spec.seed, spec.max_steps) if spec.busy else None

    def rollout(self, episodes: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Play ``episodes`` episodes at once; return (sum of log-probs of the actions taken, return) per episode."""
        alive = torch.ones(episodes, dtype=torch.bool)
        logp_sum, ret = torch.zeros(episodes), torch.zeros(episodes)
        for _ in range(HORIZON):
            obs = torch.randint(0, SIGNALS, (episodes,), generator=self.rng)
            dist = torch.distributions.Categorical(logits=self.policy(nn.functional.one_hot(obs, SIGNALS).float()))
            u = torch.rand(episodes, generator=self.rng)
            probs = dist.probs.detach()
            act = (probs.cumsum(-1) < u.unsqueeze(-1)).sum(-1).clamp(max=ACTIONS - 1)  # sampled with our generator
            # Signals 4 and 5 are ambiguous: either of two actions pays, decided by a coin.
            coin = torch.rand(episodes, generator=self.rng) < 0.5
            right = self.answer[obs].clone()
            right[obs >= 4] = torch.where(coin[obs >= 4], right[obs >= 4], (right[obs >= 4] + 1) % ACTIONS)
            ok = (act == right) & alive
            logp_sum = logp_sum + torch.where(alive, dist.log_prob(act), torch.zeros(()))
            ret, alive = ret + ok.float(), ok
            if not alive.any():
                break
        return logp_sum, ret

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        slow_down(self)
        logp, ret = self.rollout(self.spec.batch_size)
        mean = float(ret.mean())
        self.baseline = mean if self.global_step == 0 else 0.9 * self.baseline + 0.1 * mean
        loss = -((ret - self.baseline) * logp).mean()
        self.rewards.append((int(self.global_step), mean))
        self.log("reward", mean)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        with torch.no_grad():
            _, ret = self.rollout(VAL_EPISODES)
        self.log("val_reward", float(ret.mean()))

    def configure_optimizers(self) -> dict[str, Any]:
        return make_optimizer(self.spec, self.parameters())


# --- the runs ---------------------------------------------------------------------------------------------------------


def build(spec: RunSpec) -> tuple[L.LightningModule, DataLoader, DataLoader]:
    """The module and its train and validation loaders (seeded)."""
    g = spec.group
    if g == "rl_reward":
        dummy = TensorDataset(torch.zeros(spec.max_steps + 1, 1))  # REINFORCE samples its own episodes
        return FollowTheSignal(spec), DataLoader(dummy, batch_size=1), DataLoader(TensorDataset(torch.zeros(1, 1)))
    if g == "mlp_regression":
        module, train, val = Supervised(spec, mlp(8, spec.width, 1), False), *_split(regression_data, spec, 4096)
    elif g == "mlp_classification":
        module, train, val = Supervised(spec, mlp(10, spec.width, 4), True), *_split(cluster_data, spec, 4096)
    elif g == "cnn_images":
        module, train, val = Supervised(spec, small_cnn(spec.width), True), *_split(image_data, spec, 2048)
    elif g == "char_lm":
        net = CharGRU(len(CHARS), spec.width) if spec.variant == "gru" else CharTransformer(len(CHARS), spec.width)
        module, train, val = Supervised(spec, net, True), *_split(text_data, spec, 4096)
    elif g == "autoencoder":
        module, train, val = Supervised(spec, autoencoder(), False), *_split(stroke_images, spec, 2048)
    elif g == "converge_zero" and spec.variant == "teacher":
        module, train, val = Supervised(spec, mlp(6, spec.width, 1, act=nn.Tanh), False), *_split(teacher_data, spec)
    elif g == "converge_zero":
        module, train, val = Supervised(spec, mlp(10, spec.width, 2), True), *_split(separable_data, spec)
    else:
        raise ValueError(f"unknown workload {g!r}")
    loader = DataLoader(train, batch_size=spec.batch_size, shuffle=True, generator=_gen(spec.seed), drop_last=True)
    return module, loader, DataLoader(val, batch_size=256)


def _split(make: Callable[[int, int], TensorDataset], spec: RunSpec, n: int = 2048) -> tuple[TensorDataset, ...]:
    """A training set and a held-out set of 512 examples from the same distribution."""
    return make(n, spec.seed), make(512, spec.seed + 10_000)


class Recorder(Actuator):
    """Keeps every anomaly of every report, with its series (the alert log drops the series)."""

    def __init__(self) -> None:
        self.anomalies: dict[tuple[str, str, int, str], dict[str, Any]] = {}

    def on_report(self, trainer: Any, pl_module: Any, report: Report) -> None:
        for a in report.anomalies:
            key = (a.kind, a.series, int(a.step), a.severity)
            self.anomalies.setdefault(key, {
                "kind": a.kind, "severity": a.severity, "step": int(a.step), "series": a.series,
                "score": _finite_or_none(a.score), "value": _finite_or_none(a.value), "message": a.message,
            })  # fmt: skip


class AlertCapture(logging.Handler):
    """Every alert published on the ``curvecast`` logger that is not an anomaly: advice, early stops."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.alerts: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.args, tuple) and len(record.args) == 3:
            kind, step, message = record.args
            self.alerts.append({"kind": str(kind), "step": int(step), "level": record.levelname, "message": message})


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def train(spec: RunSpec, cache: Path) -> dict[str, Any]:
    """Train one run with Curvecast attached; save its curves and what curvecast raised; return the record."""
    L.seed_everything(spec.seed, workers=True, verbose=False)
    torch.set_num_threads(1)  # a shared 2-core machine: one core per run
    module, train_loader, val_loader = build(spec)
    recorder, capture = Recorder(), AlertCapture()
    cc = Curvecast(
        monitor=spec.monitor, mode=spec.mode, early_stopping=True, background=False, tensorboard=False,
        actuators=[recorder],
    )  # fmt: skip
    trainer = L.Trainer(
        max_steps=spec.max_steps, max_epochs=-1, accelerator="cpu", devices=1, logger=False, callbacks=[cc],
        val_check_interval=spec.val_every, check_val_every_n_epoch=None, limit_val_batches=2,
        num_sanity_val_steps=0, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        gradient_clip_val=spec.clip, deterministic=True, default_root_dir=str(cache / "lightning"),
        log_every_n_steps=spec.log_every,
    )  # fmt: skip
    log = logging.getLogger("curvecast")
    log.setLevel(logging.INFO)  # info alerts too: the capture must see every alert
    log.addHandler(capture)
    t0 = time.perf_counter()
    try:
        trainer.fit(module, train_loader, val_loader)
    finally:
        log.removeHandler(capture)
    wall = time.perf_counter() - t0
    stop = cc.early_stopping.stop_request if cc.early_stopping is not None else None
    record = {
        "spec": asdict(spec),
        "steps_trained": int(trainer.global_step),
        "anomalies": sorted(recorder.anomalies.values(), key=lambda a: (a["step"], a["series"], a["kind"])),
        "other_alerts": [a for a in capture.alerts if a["kind"] not in {k[0] for k in recorder.anomalies}],
        "stop": None if stop is None else {"reason": stop.reason.value, "step": stop.step, "message": stop.message},
        "wall_s": round(wall, 2),
        "detector_version": detector_version(),
    }
    save_curves(cc, module, cache / f"{spec.name}.csv")
    (cache / f"{spec.name}.json").write_text(json.dumps(record, indent=1))
    return record


def save_curves(cc: Curvecast, module: L.LightningModule, path: Path) -> None:
    """The per-step series of the run's history (and the RL module's batch returns) as one wide CSV."""
    history = cc.history
    names = [n for n in SAVED_SERIES if n in history] + sorted(
        n for n in history.names() if n not in SAVED_SERIES and ("val" in n or n.endswith("reward"))
    )
    columns: dict[str, dict[int, float]] = {}
    for name in names:
        s = history.series(name)
        columns[name] = dict(zip(s.steps.astype(int).tolist(), s.values.tolist(), strict=True))
    if isinstance(module, FollowTheSignal):
        columns["reward"] = dict(module.rewards)
    steps = sorted({s for col in columns.values() for s in col})
    header = ["step", *[n.removeprefix("throughput/") for n in columns]]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for s in steps:
            w.writerow([s, *[_cell(col.get(s)) for col in columns.values()]])


def _cell(x: float | None) -> str:
    return "" if x is None else f"{x:.7g}"


def detector_version() -> str:
    """A short hash of the detector sources: the version of the code whose alerts a record holds."""
    h = hashlib.sha1()
    for root in DETECTOR_SOURCES:
        path = REPO / root
        for f in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            h.update(f.read_bytes())
    return h.hexdigest()[:10]


# --- the default set --------------------------------------------------------------------------------------------------


def default_specs() -> list[RunSpec]:
    """The default set, interleaved by workload so any prefix covers all of them (deterministic)."""
    per_group = {g: list(_group_specs(g)) for g in GROUPS}
    out: list[RunSpec] = []
    for i in range(max(len(v) for v in per_group.values())):
        out += [v[i] for v in per_group.values() if i < len(v)]
    return out


def _group_specs(group: str) -> Iterable[RunSpec]:
    rng = random.Random(f"live-runs/{group}")  # a string seed: stable across Python runs
    for i in range(_RUNS_PER_GROUP[group]):
        yield _spec(group, i, rng)


_RUNS_PER_GROUP = {
    "mlp_regression": 10, "mlp_classification": 10, "cnn_images": 8, "char_lm": 8, "autoencoder": 12,
    "rl_reward": 8, "converge_zero": 10,
}  # fmt: skip
SCHEDULES = ("none", "cosine", "step")


def _spec(group: str, i: int, rng: random.Random) -> RunSpec:
    """Run ``i`` of a workload: its settings drawn from the healthy range of that workload; every third run of each
    workload on a busy machine, every fifth MLP run long (1200 steps)."""
    busy = i % 3 == 1  # busy runs log every step, so that their throughput is watched at every step
    base = {"name": f"{group}-{i:02d}", "group": group, "seed": 100 * GROUPS.index(group) + i, "busy": busy,
            "log_every": 1 if busy else 50}  # fmt: skip
    schedule = SCHEDULES[i % 3]
    long = i % 5 == 4
    if group == "mlp_regression":
        opt = "sgd" if i % 4 == 3 else "adam"
        lr = _log_uniform(rng, 0.005, 0.05) if opt == "sgd" else _log_uniform(rng, 3e-4, 3e-3)
        return RunSpec(**base, lr=lr, batch_size=rng.choice([16, 32, 64]), width=rng.choice([32, 64, 128]),
                       schedule=schedule, max_steps=1200 if long else 400, optimizer=opt)  # fmt: skip
    if group == "mlp_classification":
        monitor = (None, "val_loss", "val_acc")[i % 3]
        return RunSpec(**base, lr=_log_uniform(rng, 3e-4, 3e-3), batch_size=rng.choice([16, 32, 128]),
                       width=rng.choice([32, 64, 128]), schedule=SCHEDULES[(i // 3) % 3],
                       max_steps=1200 if long else 400, optimizer=rng.choice(["adam", "adamw"]), monitor=monitor,
                       mode="max" if monitor == "val_acc" else "min", val_every=20)  # fmt: skip
    if group == "cnn_images":
        monitor = (None, "val_acc")[i % 2]
        return RunSpec(**base, lr=_log_uniform(rng, 5e-4, 3e-3), batch_size=rng.choice([16, 32, 64]),
                       width=rng.choice([8, 16]), schedule=schedule, max_steps=300, monitor=monitor,
                       mode="max" if monitor else "min")  # fmt: skip
    if group == "char_lm":
        variant = ("gru", "transformer")[i % 2]
        return RunSpec(**base, lr=_log_uniform(rng, 1e-3, 4e-3), batch_size=rng.choice([16, 32]),
                       width=rng.choice([32, 48, 64]), schedule=SCHEDULES[(i // 2) % 3], max_steps=300,
                       optimizer="adamw", variant=variant, clip=1.0 if i % 4 < 2 else None)  # fmt: skip
    if group == "autoencoder":
        # The README example: Adam at 1e-3 (its default) on batch size 1; larger batches and LRs nearby too.
        return RunSpec(**base, lr=1e-3 if i < 8 else _log_uniform(rng, 5e-4, 2e-3), batch_size=(1, 8, 32)[i % 3],
                       width=64, schedule="none" if i < 8 else schedule, max_steps=150 + 50 * (i % 2))  # fmt: skip
    if group == "rl_reward":
        # Watched by its return (mode="max"), as an RL run should be: its loss is a surrogate, not what improves.
        return RunSpec(**base, lr=_log_uniform(rng, 3e-3, 1.5e-2), batch_size=rng.choice([16, 32, 64]),
                       width=rng.choice([16, 32]), schedule=("none", "cosine")[(i // 2) % 2], max_steps=250,
                       monitor="val_reward", mode="max", val_every=5)  # fmt: skip
    if group == "converge_zero":
        variant = ("teacher", "separable")[i % 2]
        lr = _log_uniform(rng, 1e-3, 5e-3) if variant == "teacher" else _log_uniform(rng, 3e-3, 1e-2)
        return RunSpec(**base, lr=lr, batch_size=rng.choice([32, 64]), width=rng.choice([32, 64]),
                       schedule=("none", "none", "cosine")[i % 3], max_steps=1200 if long else 500,
                       variant=variant)  # fmt: skip
    raise ValueError(f"unknown workload {group!r}")


def _log_uniform(rng: random.Random, lo: float, hi: float) -> float:
    return float(f"{math.exp(rng.uniform(math.log(lo), math.log(hi))):.3g}")


# --- the cache --------------------------------------------------------------------------------------------------------


def ensure_runs(specs: list[RunSpec], cache: Path, force: bool = False, verbose: bool = True) -> list[dict[str, Any]]:
    """The record of every spec: from the cache when it holds one for the same spec, else trained now."""
    cache.mkdir(parents=True, exist_ok=True)
    records = []
    for k, spec in enumerate(specs):
        cached = _cached(spec, cache)
        if cached is not None and not force:
            records.append(cached)
            continue
        record = train(spec, cache)
        records.append(record)
        if verbose:
            print(_summary_line(k, len(specs), record), flush=True)
    return records


def _cached(spec: RunSpec, cache: Path) -> dict[str, Any] | None:
    path = cache / f"{spec.name}.json"
    if not path.is_file() or not (cache / f"{spec.name}.csv").is_file():
        return None
    record = json.loads(path.read_text())
    return record if record.get("spec") == asdict(spec) else None


def _summary_line(k: int, n: int, record: dict[str, Any]) -> str:
    spec = record["spec"]
    worst = [a for a in record["anomalies"] if a["severity"] != "info"]
    stop = record["stop"]
    return (
        f"[{k + 1}/{n}] {spec['name']:22s} lr {spec['lr']:.3g} bs {spec['batch_size']:3d} {spec['schedule']:6s} "
        f"{record['steps_trained']:4d} steps {record['wall_s']:5.1f}s | {len(record['anomalies'])} anomalies, "
        f"{len(worst)} warning+ {sorted({(a['series'], a['kind']) for a in worst})}"
        + (f" | STOP {stop['reason']} at {stop['step']}" if stop else "")
    )


def quiet_curvecast_console() -> None:
    """The records keep every alert: the terminal gets one line a run instead of curvecast's console of alerts."""
    log = logging.getLogger("curvecast")
    for handler in list(log.handlers):
        if type(handler) is logging.StreamHandler:
            log.removeHandler(handler)
    log.addHandler(logging.NullHandler())
    log.propagate = False


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=None, help="train the first N runs of the default set (default: all)")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"where runs are saved (default {DEFAULT_CACHE})")
    p.add_argument("--group", choices=GROUPS, default=None, help="only the runs of this workload")
    p.add_argument("--force", action="store_true", help="train again even when the cache holds the run")
    p.add_argument("--list", action="store_true", help="print the specs and exit")
    args = p.parse_args(argv)
    specs = [s for s in default_specs() if args.group is None or s.group == args.group][: args.runs]
    if args.list:
        for s in specs:
            print(s)
        return
    warnings.filterwarnings("ignore", message=r".*(does not have many workers|LeafSpec|deterministic|more than once).*")
    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    quiet_curvecast_console()
    t0 = time.perf_counter()
    records = ensure_runs(specs, args.cache, force=args.force)
    stopped = sum(r["stop"] is not None for r in records)
    print(f"{len(records)} runs in {args.cache} ({time.perf_counter() - t0:.0f} s); {stopped} stopped by curvecast")


if __name__ == "__main__":
    main()
