"""Chapter 9, profiling a training step: how much to measure at each scale (`plan`), the settings
the chapter compares (`levers`) and their measurement (`measure_levers`, `lever_table`), the phases
of a step and the speed-ups drawn (`phase_bars`, `speedup_bars`, `lever_explorer`), and the
`profiling/*` exercise checks. The timing itself is the library's (`poorvit.timing`: `Timer`,
`BenchStep`, `time_steps`, `matmul_peak`), as are the counts (`poorvit.cost.train_flops`, `mfu`).

    from poorvit.course import ch09_profiling as ch
    plan = ch.plan(course.scale)
    times = ch.measure_levers(cfg, train_cfg, data.train_x, data.train_y, device,
                              plan["batch_size"])
    ch.lever_table(times, cfg, peaks)
"""
from __future__ import annotations

import os
import statistics

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch

from ..config import NOTEBOOK_SCALES, SCALES, TrainConfig, ViTConfig, with_overrides
from ..cost import mfu, train_flops
from ..device import fast_precisions
from ..report import Verdict, verdict
from ..timing import BenchStep, StepTimes, time_steps
from .exercises import ExerciseError, as_int, exercise
from .widgets import explorer


def plan(scale: str) -> dict:
    """How much the chapter measures at `scale` (a scale of `config.NOTEBOOK_SCALES`): its
    "profile" in `config.SCALES`, {"batch_size", "steps", "warmup", "compile"} (`compile`: include
    torch.compile, tens of seconds to compile). Raises ValueError for a scale chapters do not
    take."""
    if "profile" not in SCALES.get(scale, {}):
        raise ValueError(f"scale {scale!r} has no profiling plan: chapter 9 runs at "
                         f"{', '.join(NOTEBOOK_SCALES)}")
    return dict(SCALES[scale]["profile"])


# ---- the levers ----------------------------------------------------------------------------------

def levers(batch_size: int, device: torch.device | str,
           compile: bool = False) -> list[tuple[str, str, dict]]:
    """The settings the chapter measures, as (lever, label, overrides): each changes one thing of
    the baseline (float32, SDPA, AdamW as the package builds it, the device loader, batch
    `batch_size`, eager)."""
    device = torch.device(device)
    rows = [("baseline", f"baseline (fp32, batch {batch_size})", {}),
            ("batch size", f"batch {batch_size // 2}", dict(batch_size=batch_size // 2)),
            ("batch size", f"batch {batch_size * 2}", dict(batch_size=batch_size * 2))]
    rows += [("precision", f"{p} autocast", dict(precision=p))
             for p in fast_precisions(device) if p != "fp32"]
    rows.append(("attention", "explicit attention", dict(attention="explicit")))
    if device.type == "cuda":                                           # default there: fused
        rows.append(("optimizer", "foreach AdamW", dict(fused=False)))
    else:
        rows += [("optimizer", "foreach AdamW", dict(foreach=True)),
                 ("optimizer", "fused AdamW", dict(fused=True))]
    rows += [("loader", "DataLoader, per image", dict(loader="dataloader")),
             ("memory format", "channels_last", dict(channels_last=True))]
    if compile:
        rows.append(("compile", "torch.compile", dict(compile=True)))
        if "bf16" in fast_precisions(device):  # the fastest setting on a recent GPU: both together
            rows.append(("compile", "bf16 + torch.compile", dict(precision="bf16", compile=True)))
    return rows


def measure_levers(model_cfg: ViTConfig, train_cfg: TrainConfig, images: torch.Tensor,
                   labels: torch.Tensor, device: torch.device | str, batch_size: int,
                   steps: int = 3, warmup: int = 1, compile: bool = False,
                   workers: int | None = None, progress=print,
                   outlier: float = 1.5) -> list[StepTimes]:
    """Time the baseline and each of `levers(...)` side by side (`timing.time_steps`): one
    `StepTimes` per setting, `.lever` and `.overrides` saying what it changed. A timed step slower
    than `outlier` times its setting's median is timed again (`remeasure_outliers`).

    `train_cfg` gives the augmentation and the optimizer; precision is float32 and compile off
    unless a lever says otherwise. `workers`: the DataLoader's processes (default: 0 on a CPU, which
    has no cores to spare, up to 4 with a GPU). `progress(line)` is called once per setting at the
    end (None: silent).
    """
    device = torch.device(device)
    if workers is None:
        workers = 0 if device.type == "cpu" else min(4, os.cpu_count() or 1)
    base = with_overrides(train_cfg, batch_size=batch_size, precision="fp32", compile=False)
    settings, what = {}, {}
    for lever, label, over in levers(batch_size, device, compile):
        cfg_over = {k: v for k, v in over.items() if k in ("batch_size", "precision", "compile")}
        kw = {k: v for k, v in over.items() if k not in cfg_over}
        settings[label] = BenchStep(model_cfg, with_overrides(base, **cfg_over), images, labels,
                                    device, workers=workers, **kw)
        what[label] = (lever, over)
    out = list(time_steps(settings, steps, warmup).values())
    remeasure_outliers(out, settings, outlier)
    for t in out:
        t.lever, t.overrides = what[t.label]
        if progress:
            progress(f"{t.label:28s} {t.step_ms:9.1f} ms/step {t.images_per_s:9.1f} images/s"
                     f"   (first step {t.first_step_ms / 1e3:.1f} s)")
    return out


def remeasure_outliers(times: list[StepTimes], settings: dict, factor: float = 1.5,
                       tries: int = 3) -> int:
    """Time again, side by side, every timed step slower than `factor` times its setting's median
    step (another program took the machine for a moment): `times` (from `time_steps` over
    `settings`, {label: BenchStep}) is updated in place, medians included, at most `tries` times.
    Each StepTimes gets `.remeasured`, its count of steps timed again; returns the total."""
    for t in times:
        t.remeasured = 0
    for _ in range(tries):
        slow = {}
        for t in times:
            totals = [sum(s.values()) for s in t.per_step]
            limit = factor * statistics.median(totals)
            slow[t.label] = [i for i, tot in enumerate(totals) if tot > limit]
        slow = {k: v for k, v in slow.items() if v}
        if not slow:
            break
        again = time_steps({k: settings[k] for k in slow}, max(map(len, slow.values())), 0)
        for t in times:
            for j, i in enumerate(slow.get(t.label, [])):
                t.per_step[i] = again[t.label].per_step[j]
                t.remeasured += 1
            t.parts_ms = {p: statistics.median(s[p] for s in t.per_step) for p in t.parts_ms}
    return sum(t.remeasured for t in times)


def step_rates(t: StepTimes) -> list[float]:
    """Images/s of each timed step of one setting (the repeats `lever_verdicts` compares)."""
    return [1e3 * t.batch_size / sum(s.values()) for s in t.per_step]


def lever_verdicts(times: list[StepTimes], k: float = 2.0) -> list[Verdict | None]:
    """Each setting's images/s against the first's (the baseline), over their timed steps:
    `report.verdict` ("faster", "slower" or "within noise"; None for the baseline itself, and
    for every setting when fewer than two steps were timed: no spread to compare with)."""
    base = step_rates(times[0])
    if any(len(t.per_step) < 2 for t in times):
        return [None] * len(times)
    return [None] + [verdict(step_rates(t), base, unit=" images/s", more="faster",
                             less="slower", k=k) for t in times[1:]]


def lever_table(times: list[StepTimes], model_cfg: ViTConfig, peaks: dict) -> list[dict]:
    """Rows for the chapter's table: each setting's step time (sum of the phases' medians),
    images/s, speed-up over the first (the baseline), its noise band (± in the same ratio, from
    `lever_verdicts`) and verdict, achieved GFLOP/s and model FLOP utilisation against
    `peaks[precision]` (FLOP/s, e.g. from `timing.matmul_peak`; a setting whose precision has no
    peak gets none)."""
    per_image = train_flops(model_cfg, 1)
    base_rate = statistics.fmean(step_rates(times[0]))
    rows = []
    for t, v in zip(times, lever_verdicts(times)):
        flops, seconds = per_image * t.batch_size, t.step_ms / 1e3
        peak = peaks.get(t.precision)
        rows.append({"setting": t.label, "batch": t.batch_size, "step ms": t.step_ms,
                     "images/s": t.images_per_s,
                     "x baseline": t.images_per_s / times[0].images_per_s,
                     "noise ±x": v.noise / base_rate if v else None,
                     "verdict": v.word if v else "–",
                     "GFLOP/s": flops / seconds / 1e9,
                     "MFU %": 100 * mfu(flops, seconds, peak) if peak else None})
    return rows


# ---- plots and the explorer ----------------------------------------------------------------------

PHASE_COLORS = {"data": "#9e9e9e", "forward": "#4c72b0", "backward": "#dd8452",
                "optimizer": "#55a868"}


def phase_bars(rows: dict, ax=None, shares: bool = False, unit: str = "ms per step",
               title: str | None = None):
    """One horizontal stacked bar per row of {label: {phase: time}} (phases data, forward, backward,
    optimizer), first row on top; `shares` draws each bar as percent of its own total. Totals are
    written at the end of each bar."""
    labels = list(rows)
    ax = ax or plt.subplots(figsize=(7.5, 0.55 * len(labels) + 1.2))[1]
    y = np.arange(len(labels))[::-1]
    totals = [sum(rows[k].values()) for k in labels]
    left = np.zeros(len(labels))
    for phase, color in PHASE_COLORS.items():
        vals = np.array([rows[k].get(phase, 0.0) for k in labels], dtype=float)
        vals = 100 * vals / np.array(totals) if shares else vals
        ax.barh(y, vals, left=left, color=color, label=phase, height=0.6)
        for yi, lo, v in zip(y, left, vals):
            if v > (8 if shares else 0.08 * max(totals)):
                ax.text(lo + v / 2, yi, f"{v:.0f}%" if shares else f"{v:.3g}", ha="center",
                        va="center", fontsize=8, color="white")
        left += vals
    if not shares:
        for yi, tot in zip(y, totals):
            ax.text(tot, yi, f" {tot:.3g}", va="center", fontsize=8)
        ax.set_xlim(0, 1.12 * max(totals))
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel("share of the step (%)" if shares else unit)
    ax.legend(ncol=4, fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    if title:
        ax.set_title(title, fontsize=9, pad=22)
    ax.grid(axis="x", alpha=0.3)
    return ax


VERDICT_COLORS = {"faster": "#4c72b0", "slower": "#c44e52", "within noise": "#9e9e9e"}


def speedup_bars(rows: list[dict], ax=None, title: str | None = None):
    """Images/s of each setting relative to the first (the baseline), as a bar from 1: rows of
    `lever_table` ("setting", "images/s", and "noise ±x", "verdict" where measured). Each row's
    noise band is shaded grey around 1; a bar is blue (faster) or red (slower) only when the
    verdict says it left the band, grey otherwise."""
    base = rows[0]["images/s"]
    labels = [r["setting"] for r in rows]
    vals = np.array([r["images/s"] / base for r in rows])
    noise = np.array([r.get("noise ±x") or 0.0 for r in rows])
    ax = ax or plt.subplots(figsize=(7.5, 0.4 * len(rows) + 1.2))[1]
    y = np.arange(len(rows))[::-1]
    for yi, n in zip(y, noise):
        ax.fill_betweenx([yi - 0.42, yi + 0.42], 1 - n, 1 + n, color="#dddddd", zorder=0)
    colors = [VERDICT_COLORS.get(r.get("verdict"), "#9e9e9e") for r in rows]
    ax.barh(y, vals - 1, left=1, color=colors, height=0.5, zorder=2)
    for yi, v, n in zip(y, vals, noise):
        text = f" {v:.2f}x" + (f" (±{n:.2f})" if n else "")
        ax.text(max(v, 1 + n), yi, text, va="center", fontsize=8)
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel("images/s relative to the baseline (grey: each setting's noise band)")
    lo, hi = min(vals.min(), (1 - noise).min()), max(vals.max(), (1 + noise).max())
    ax.set_xlim(lo - 0.05, hi + 0.25 * (hi - lo) + 0.1)
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    return ax


def lever_explorer(times: list, per_image: bool = True) -> W.Widget:
    """Pick a measured setting (a `timing.StepTimes` from `measure_levers`): its phases next to the
    baseline's (the first), drawn with `phase_bars`, per image so that batch sizes compare; the
    title gives its speed-up with `lever_verdicts`' word."""
    def parts(t):
        return {k: v / t.batch_size for k, v in t.parts_ms.items()} if per_image else t.parts_ms

    verdicts = lever_verdicts(times)

    def draw(setting, shares):
        chosen = times[setting]
        ratio = chosen.images_per_s / times[0].images_per_s
        v = verdicts[setting]
        said = f" ({v.word})" if v else ""
        phase_bars({times[0].label: parts(times[0]), chosen.label: parts(chosen)}, shares=shares,
                   unit="ms per image" if per_image else "ms per step",
                   title=f"{chosen.label}: {ratio:.2f}x the baseline's images/s{said}")
        plt.show()

    return explorer(draw, setting=W.Dropdown(options=[(t.label, i) for i, t in enumerate(times)],
                                             value=min(1, len(times) - 1), description="setting"),
                    shares=W.Checkbox(value=False, description="as % of the step"))


# ---- exercise checks ("profiling/...") -----------------------------------------------------------

@exercise("profiling/block-flops",
          hint="per token: q, k, v and the output projection cost 2*C*C each, the MLP 2*C*hidden "
               "twice; per pair of tokens, q kᵀ and weights @ v cost 2*C each. Multiply by T (or "
               "T*T) tokens.")
def _check_block_flops(fn) -> str:
    """fn(n_tokens, n_embd, mlp_hidden) -> forward FLOPs of one pre-norm transformer block on one
    image."""
    from ..config import get_config
    from ..cost import count_flops
    from ..model import Block

    for T, C, H, hidden in ((65, 192, 12, 384), (17, 64, 4, 128), (257, 32, 2, 128),
                            (5, 48, 3, 48)):
        block = Block(get_config("micro", n_embd=C, n_head=H, mlp_ratio=hidden / C))
        want = count_flops(block, torch.zeros(1, T, C))
        got = as_int(fn(T, C, hidden), f"block FLOPs for n_tokens={T}, n_embd={C}")
        if got != want:
            raise ExerciseError(f"n_tokens={T}, n_embd={C}, mlp_hidden={hidden}: flop_counter "
                                f"counts {want:,} FLOPs, your formula gives {got:,}")
    return "your formula equals torch's flop_counter on a real Block, for four shapes"


@exercise("profiling/mfu",
          hint="FLOPs of the step = flops_per_image * batch_size; achieved FLOP/s = that / "
               "(step_ms / 1000); utilisation = achieved / peak.")
def _check_mfu(fn) -> str:
    """fn(flops_per_image, batch_size, step_ms, peak_flops) -> model FLOP utilisation in 0..1."""
    from ..cost import mfu

    for f, b, ms, peak in ((1.1e9, 256, 120.7, 1e15), (3.3e8, 32, 400.0, 2e11),
                           (5e7, 1, 2.0, 1e11)):
        want, got = mfu(f * b, ms / 1e3, peak), float(fn(f, b, ms, peak))
        if abs(got - want) > 1e-9 + 1e-6 * want:
            off_by_1000 = abs(got / want - 1000) < 1 or abs(want / got - 1000) < 1
            hint = " (a factor of 1000: step_ms is in milliseconds)" if off_by_1000 else ""
            raise ExerciseError(f"flops_per_image={f:.3g}, batch_size={b}, step_ms={ms}, "
                                f"peak={peak:.3g}: expected {want:.4g}, got {got:.4g}{hint}")
    return "your utilisation matches poorvit.cost.mfu"


@exercise("profiling/amdahl",
          hint="only the chosen phase shrinks: new step = total - parts[phase] + parts[phase] / "
               "factor; the speed-up is total / new step.")
def _check_amdahl(fn) -> str:
    """fn(parts_ms: dict, phase, factor) -> speed-up of the whole step when one phase becomes
    `factor` times faster."""
    from ..study import study_breakdown

    cases = [(study_breakdown(), "backward", 2.0), (study_breakdown(), "forward", 1e6),
             ({"data": 1.0, "forward": 3.0, "backward": 6.0, "optimizer": 2.0}, "optimizer", 4.0)]
    for parts, phase, factor in cases:
        total = sum(parts.values())
        want = total / (total - parts[phase] + parts[phase] / factor)
        got = float(fn(dict(parts), phase, factor))
        if abs(got - want) > 1e-6 * want:
            shown = {k: round(v, 1) for k, v in parts.items()}
            raise ExerciseError(f"parts={shown}, {phase} {factor:g}x faster: "
                                f"expected a speed-up of {want:.4f}, got {got:.4f}")
    return "right: a phase that takes a fraction f of the step caps the speed-up at 1 / (1 - f)"


__all__ = ["plan", "levers", "measure_levers", "remeasure_outliers", "step_rates",
           "lever_verdicts", "lever_table", "PHASE_COLORS", "VERDICT_COLORS", "phase_bars",
           "speedup_bars", "lever_explorer"]
