"""Stability-anomaly detection on real curves: curvecast's AnomalyDetector against a SpikeDetection-like rule.

    python benchmarks/anomaly_detection.py [CURVES_DIR]

CURVES_DIR defaults to ../shared/data/curves next to the repository. Prints one table per question, with
curvecast and the baseline side by side. The baseline re-implements Lightning's ``SpikeDetection``
defaults in numpy (running mean of the last 10 values; a spike when the value is at least 2x the
mean away from it and rose since the previous step; a non-finite value is a spike).

How events are counted:
- Clean runs are those whose sidecar label is ``none``, plus the modded-nanogpt runs (``mng__*``,
  labelled ``transient_spikes``). On ``none`` runs every spike or divergence alarm is false. On
  ``mng__*`` runs every divergence alarm is false, and a spike alarm is false unless, in hindsight,
  the flagged value stands at least 4 robust standard deviations above the median of its 10
  neighbours on each side (noise = 1.4826 MAD of log differences over +-50 points / sqrt 2): the
  one-step jumps of these runs are real batch outliers and should be reported as spikes. A second judge
  is also printed: the value stands at least 4 robust sigma above both adjacent values (noise as above,
  leaving out the differences that touch an outlier of the first judge); 'false (neither)' counts the
  alarms that fail both judges. The headline 'false' count is the first judge alone.
- Injected spikes multiply one value by exp(m * sigma), sigma the curve's robust log noise (as above,
  over the whole curve after its first 10%), m log-spaced in 8..80, at points after the first 10% at
  least 25 points apart and away from existing hindsight outliers; caught = any spike or divergence
  alarm at that point or the next two.
- Injected divergence: from a point in the second half (50-80% of the run, at least 25 points before
  its end) the curve's trend is replaced by a climb of 1% per point from its level there, keeping the
  curve's own noise (residuals from a centred median of 21 points); delay = points from the onset to the first
  divergence alarm (any alarm for the baseline); rise = how far the loss had climbed by then.
- NaN: one value per run replaced by NaN; caught = a nonfinite alarm at that step.
- Real divergence: runs labelled ``divergence``; "blow-up" = the first point 10% above the running
  best of the loss (median of 3); lead = points from the first alarm to the blow-up (negative = late).
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from curvecast.forecasting import AnomalyDetector
from curvecast.forecasting.anomalies import InstabilityMonitor

SEED = 0
LOSS_KINDS = ("nonfinite", "spike", "divergence")


def load(curves_dir: Path) -> list[dict]:
    runs = []
    for side in sorted(curves_dir.glob("*.json")):
        meta = json.loads(side.read_text())
        with open(side.with_suffix(".csv"), newline="") as f:
            rows = list(csv.DictReader(f))
        tr = [r for r in rows if r["train_loss"]]
        steps = np.array([int(r["step"]) for r in tr])
        values = np.array([float(r["train_loss"]) for r in tr])
        lr_rows = [(int(r["step"]), float(r["lr"])) for r in rows if r["lr"]]
        lrs = None
        if len(lr_rows) >= 2:  # the schedule, per step, interpolated between logged points
            s, v = zip(*lr_rows, strict=True)
            lrs = np.interp(np.arange(int(steps[-1]) + 1), s, v).tolist()
        label = meta["stability"]["label"]
        runs.append({"run": side.stem, "label": label, "steps": steps, "values": values, "lrs": lrs})
    return runs


def ours(run: dict, values: np.ndarray, kinds: tuple[str, ...] = LOSS_KINDS) -> list[tuple[int, str, str]]:
    det = AnomalyDetector(kinds=kinds, lrs=run["lrs"])
    steps = run["steps"].tolist()
    index = {s: i for i, s in enumerate(steps)}  # a spike confirmed by its recovery names its own step
    out = []
    for s, v in zip(steps, values.tolist(), strict=True):
        out += [(index[e.step], e.kind, e.severity) for e in det.update(s, v)]
    return out


def baseline(values: np.ndarray, window: int = 10, rtol: float = 2.0) -> list[tuple[int, str, str]]:
    out, buf, prev = [], [], math.nan
    for i, v in enumerate(values.tolist()):
        if not math.isfinite(v):
            out.append((i, "nonfinite", "critical"))
        elif buf:
            mean = sum(buf) / len(buf)
            if abs(v - mean) >= rtol * abs(mean) and v > prev:
                out.append((i, "spike", "warning"))
        if math.isfinite(v):
            buf = (buf + [v])[-window:]
        prev = v
    return out


def robust_sigma(values: np.ndarray) -> float:
    d = np.diff(np.log(values[len(values) // 10 :]))
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2))


def hindsight_z(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two hindsight judges of each point (they use the future: for judging, not detecting).

    Returns (z against the median of its +-10 neighbours, z of its smaller step over both adjacent
    points), both in robust noise units. For the second the noise leaves out the differences that touch
    an outlier of the first, so the outliers being judged do not inflate the noise they are judged by.
    """
    y = np.log(values)
    n = len(y)
    z, jump = np.zeros(n), np.zeros(n)
    d = np.diff(y)
    sigs = np.zeros(n)
    for i in range(n):
        nb = np.r_[y[max(0, i - 10) : i], y[i + 1 : i + 11]]
        dd = d[max(0, i - 50) : i + 50]
        sigs[i] = sig = max(1.4826 * np.median(np.abs(dd - np.median(dd))) / math.sqrt(2), 1e-3)
        z[i] = (y[i] - np.median(nb)) / sig if len(nb) else 0.0
    out = np.abs(z) >= 4.0
    ok = ~(out[:-1] | out[1:])  # differences touching no outlier
    for i in range(1, n - 1):
        sl = slice(max(0, i - 50), i + 50)
        dd = d[sl][ok[sl]]
        sig = max(1.4826 * np.median(np.abs(dd - np.median(dd))) / math.sqrt(2), 1e-3) if len(dd) >= 20 else sigs[i]
        jump[i] = min(y[i] - y[i - 1], y[i] - y[i + 1]) / sig
    return z, jump


def clean_alarms(clean: list[dict]) -> None:
    print("\n## False alarms on clean runs (spike + divergence; per 10,000 points and per 10,000 steps)")
    print("mng__* spike alarms are judged twice in hindsight: 'median' = the value is >= 4 sigma above the median")
    print("of its +-10 neighbours; 'jump' = it is >= 4 sigma above both adjacent values (a one-step jump that")
    print("recovers at once). 'false' fails the median judge, 'false (neither)' fails both.")
    for name, pick in (("mng__* per-step", "mng"), ("algoperf label none", "algoperf")):
        group = [r for r in clean if r["run"].startswith(pick)]
        pts = sum(len(r["values"]) for r in group)
        steps = sum(int(r["steps"][-1] - r["steps"][0]) + 1 for r in group)
        row = {}
        for who in ("curvecast", "baseline"):
            false = neither = true = 0
            for r in group:
                ev = ours(r, r["values"]) if who == "curvecast" else baseline(r["values"])
                for i, kind, _sev in ev:
                    if kind == "divergence" or (kind == "spike" and pick != "mng"):
                        false, neither = false + 1, neither + 1
                    elif kind == "spike":
                        median_ok, jump_ok = r["hz"][i] >= 4.0, r["hj"][i] >= 4.0
                        false += not median_ok
                        neither += not (median_ok or jump_ok)
                        true += median_ok
            row[who] = (false, neither, true)
        mine, both = row["curvecast"][0], row["curvecast"][1]
        print(
            f"{name:20s} runs {len(group):3d} points {pts:6d} steps {steps:7d} | curvecast: {mine} false "
            f"({1e4 * mine / pts:.2f}/10k pts, {1e4 * mine / steps:.3f}/10k steps), {both} false (neither) "
            f"({1e4 * both / pts:.2f}/10k pts), {row['curvecast'][2]} real spikes reported | baseline: "
            f"{row['baseline'][0]} false, {row['baseline'][2]} real spikes"
        )


def injected_spikes(clean: list[dict], rng: np.random.Generator) -> None:
    mags = np.geomspace(8, 80, 7)
    hits = {"curvecast": np.zeros(len(mags)), "baseline": np.zeros(len(mags))}
    total = np.zeros(len(mags))
    delays: list[int] = []
    for r in clean:
        n = len(r["values"])
        if n < 40:
            continue
        sig = robust_sigma(r["values"])
        hz = r["hz"]
        at, i = [], max(int(0.1 * n), 20) + int(rng.integers(0, 25))
        while i < n - 3:
            if not np.any(np.abs(hz[max(0, i - 5) : i + 6]) >= 4.0):
                at.append(i)
            i += 25 + int(rng.integers(0, 25))
        v = r["values"].copy()
        k = rng.integers(0, len(mags), len(at))
        v[at] *= np.exp(mags[k] * sig)
        for who, ev in (("curvecast", ours(r, v)), ("baseline", baseline(v))):
            flagged = {i: None for i, kind, _ in ev if kind in ("spike", "divergence")}
            for a, kk in zip(at, k, strict=True):
                got = [d for d in range(3) if a + d in flagged]
                hits[who][kk] += bool(got)
                if who == "curvecast":
                    total[kk] += 1
                    delays += got[:1]
    print("\n## Injected single-step spikes: caught within 2 points, by size (multiples of the curve's noise)")
    print("size      " + " ".join(f"{m:6.0f}" for m in mags) + "    all")
    for who in ("curvecast", "baseline"):
        rec = hits[who] / np.maximum(total, 1)
        print(f"{who:10s}" + " ".join(f"{x:6.0%}" for x in rec) + f" {hits[who].sum() / total.sum():6.1%}")
    print(f"spikes injected: {int(total.sum())}; curvecast delay (points): median {np.median(delays):.0f}, "
          f"max {max(delays)}")  # fmt: skip


def injected_divergence(clean: list[dict], rng: np.random.Generator) -> None:
    res = {"curvecast": [], "baseline": []}
    for r in clean:
        n = len(r["values"])
        if n < 60:
            continue
        for _ in range(2):
            onset = int(rng.integers(n // 2, max(n // 2 + 1, min(int(0.8 * n), n - 25))))
            # The loss itself climbs: from the onset the trend (centred median of 21 log values) is
            # replaced by a 1%-per-point climb from the onset level; the curve keeps its own noise.
            y = np.log(r["values"])
            trend = np.array([np.median(y[max(0, i - 10) : i + 11]) for i in range(n)])
            after = np.arange(n) >= onset
            climb = trend[onset] + (np.arange(n) - onset) * math.log(1.01)
            v = np.exp(np.where(after, climb + y - trend, y))
            for who, ev in (("curvecast", ours(r, v)), ("baseline", baseline(v))):
                kinds = ("divergence",) if who == "curvecast" else ("spike", "divergence")
                after = [i for i, kind, _ in ev if i > onset and kind in kinds]
                res[who].append(after[0] - onset if after else None)
    print("\n## Injected divergence: +1% per point from a point in the second half")
    for who, d in res.items():
        got = [x for x in d if x is not None]
        rises = [1.01**x - 1 for x in got]
        print(
            f"{who:10s} caught {len(got)}/{len(d)}; delay median {np.median(got) if got else math.nan:.0f} pts, "
            f"max {max(got) if got else math.nan}; rise at alarm median {np.median(rises) if got else math.nan:.1%}, "
            f"max {max(rises) if got else math.nan:.1%}; caught before +20%: {sum(x < 0.2 for x in rises)}/{len(d)}"
        )


def injected_nan(clean: list[dict], rng: np.random.Generator) -> None:
    res = {"curvecast": 0, "baseline": 0}
    for r in clean:
        v = r["values"].copy()
        at = int(rng.integers(len(v) // 4, len(v)))
        v[at] = math.nan
        for who, ev in (("curvecast", ours(r, v)), ("baseline", baseline(v))):
            res[who] += any(i == at and kind == "nonfinite" for i, kind, _ in ev)
    print(f"\n## Injected NaN, caught at its own step: curvecast {res['curvecast']}/{len(clean)}, "
          f"baseline {res['baseline']}/{len(clean)}")  # fmt: skip


def blow_up(values: np.ndarray) -> int | None:
    best = math.inf
    for i in range(len(values)):
        level = float(np.median(values[max(0, i - 2) : i + 1]))
        if i >= 2:
            best = min(best, level)
        if not math.isfinite(values[i]) or values[i] >= 1.1 * best:
            return i
    return None


def real_divergence(runs: list[dict], clean: list[dict]) -> None:
    div = [r for r in runs if r["label"] == "divergence"]
    print(f"\n## Real runs labelled divergence ({len(div)}): lead = points from first alarm to the first point "
          "10% above the best (negative = after)")  # fmt: skip
    for who in ("curvecast", "curvecast critical", "baseline", "instability_risk"):
        leads, caught = [], 0
        for r in div:
            if who == "instability_risk":
                mon = InstabilityMonitor(lrs=r["lrs"])
                idx = [i for i, (s, v) in enumerate(zip(r["steps"].tolist(), r["values"].tolist(), strict=True))
                       for e in mon.update(s, loss=v) if e.kind == "instability_risk"]  # fmt: skip
            elif who == "baseline":
                idx = [i for i, _k, _s in baseline(r["values"])]
            else:
                crit = who.endswith("critical")
                idx = [i for i, k, s in ours(r, r["values"]) if k in ("divergence", "nonfinite")
                       and (s == "critical" or not crit)]  # fmt: skip
            b = blow_up(r["values"])
            if idx:
                caught += 1
                if b is not None:
                    leads.append(b - idx[0])
        lead_txt = f"lead median {np.median(leads):+.0f}, min {min(leads):+d}, max {max(leads):+d}" if leads else ""
        print(f"{who:20s} caught {caught}/{len(div)}  {lead_txt}")
    false = pts = 0
    by_group: dict[str, list[int]] = {}  # group -> [warnings, runs warned, runs, points]
    for r in clean:
        mon = InstabilityMonitor(lrs=r["lrs"])
        got = 0
        for s, v in zip(r["steps"].tolist(), r["values"].tolist(), strict=True):
            got += sum(e.kind == "instability_risk" for e in mon.update(s, loss=v))
        g = by_group.setdefault("mng__* per-step" if r["run"].startswith("mng") else "algoperf none", [0, 0, 0, 0])
        g[0], g[1], g[2], g[3] = g[0] + got, g[1] + bool(got), g[2] + 1, g[3] + len(r["values"])
        false, pts = false + got, pts + len(r["values"])
    print(f"instability_risk on clean runs (loss only): {false} warnings in {pts} points "
          f"({1e4 * false / pts:.2f} per 10k points)")  # fmt: skip
    for name, (w, warned, n, p) in by_group.items():
        print(f"  {name:16s} {w} warnings in {p} points ({1e4 * w / p:.2f}/10k), {warned}/{n} runs warned")


def main() -> None:
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "curves"
    curves_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    t0 = time.perf_counter()
    runs = load(curves_dir)
    clean = [r for r in runs if r["label"] == "none" or r["run"].startswith("mng__")]
    for r in clean:
        r["hz"], r["hj"] = hindsight_z(r["values"])
    rng = np.random.default_rng(SEED)
    print(f"# Anomaly detection benchmark: {len(runs)} runs from {curves_dir}, {len(clean)} clean")
    clean_alarms(clean)
    injected_spikes(clean, rng)
    injected_divergence(clean, rng)
    injected_nan(clean, rng)
    real_divergence(runs, clean)
    print(f"\n(ran in {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    from results import recorded

    with recorded("anomaly_detection"):
        main()
