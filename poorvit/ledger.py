"""How long each chapter takes at each scale: a ledger of the trainings the chapters really run, and
their time at every scale from FLOPs.

The ledger (`ledger.jsonl` in the run folder, `runs.runs_root()`) gets one line per training a
chapter asks for while `POORVIT_CHAPTER` names the chapter (the root conftest.py sets it before
each notebook's kernel starts; outside that, nothing is written), and one line per executed
notebook (its wall time). `Course.train` and `sweep.sweep` write the training lines.

    note(run.record, cached=False)        # a training line (what Course.train does)
    summary = summarize(read(ledger_path()))          # per chapter: its distinct trainings
    chapter_times(summary)        # seconds per chapter: smoke measured, demo and paper estimated

A chapter's time at another scale re-derives each of its trainings there (`derive`): the fields the
chapter changed from its scale's baseline (`sweep.config_diff`) are put onto that scale's baseline,
a number keeping its proportion to the baseline's value (half the epochs stays half, a third of the
width stays a third), a regime a scale names (`config.SCALES[scale]["regimes"]`: chapter 3's small
data) as the other scale names it, anything else as it was: an estimate where a chapter picks its
numbers per scale in another way. Its FLOPs (`run_flops`: forward + backward per
training image as `cost.flops_per_image` counts them, times the images the schedule shows, plus the
evaluations' forwards) over a T4's rate (`T4_RATE`, or a rate `python -m poorvit bench gpu`
measured on a T4: `rates`) give its seconds. Every training counts, including those an earlier
chapter left in the run cache: a chapter opened on Colab starts in a fresh runtime.

    python -m poorvit chapters --ledger runs/ledger.jsonl --check     # CI: demo within budget
    python -m poorvit chapters --save results/chapters.json --page book/setup.md
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import fields
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

from .config import (DEMO_BUDGET_S, SCALES, TrainConfig, ViTConfig, planned_steps,
                     with_overrides)
from .runs import runs_root

CHAPTER_ENV = "POORVIT_CHAPTER"        # the chapter a training belongs to (the root conftest.py)
EXECUTION_ENV = "POORVIT_CHAPTER_RUN"  # which execution of it (its start time): the latest counts
N_TRAIN, N_TEST = 50_000, 10_000       # CIFAR-10


# The T4's rate, estimated: model FLOPs (as `cost.train_flops` counts them) per second of a whole
# training step (augmentation on the device and the optimizer included). Peaks from NVIDIA's T4
# datasheet: 65 TFLOPS float16 on tensor cores (float32 accumulation), 8.1 TFLOPS float32 (no
# tensor cores). Assumed utilisation: 8 % in float16. The study's model is small for tensor cores
# (its matmuls are 16,640 tokens x 192 channels at a batch of 256), so a step spends most of its
# time outside them: memory-bound kernels (LayerNorm, GELU, softmax, residuals, AutoAugment and
# erasing on the device, AdamW) and eager kernel launches (hundreds a step); a T4 also runs below
# its boost clock under its 70 W cap. 8 % is 5.2 TFLOP/s, in line with issue 17's estimate (a
# 20-epoch run of 50,000 images in ~4 minutes: 4.7 TFLOP/s). Float32 (the `paper` scale, as the
# study ran it): 30 % of the float32 peak, matmuls on plain CUDA cores being closer to their peak.
# A T4 record of `python -m poorvit bench gpu` in results/gpu/ (its timed demo epoch) replaces
# the float16 rate.
T4_PEAK = {"fp16": 65e12, "fp32": 8.1e12}
T4_UTILISATION = {"fp16": 0.08, "fp32": 0.30}
T4_RATE = {p: T4_PEAK[p] * T4_UTILISATION[p] for p in T4_PEAK}
RATE_CHECK = "one demo epoch, timed; peak memory"     # the `bench gpu` check that measures it


# ---- writing the ledger ------------------------------------------------------------------------

def ledger_path(root: str | os.PathLike | None = None) -> Path:
    """The ledger of the run folder `root` (default `runs.runs_root()`)."""
    return Path(root or runs_root()) / "ledger.jsonl"


def _append(entry: dict, root=None) -> dict:
    path = ledger_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(entry, default=str) + "\n")
    return entry


def note(record: dict, cached: bool, root: str | os.PathLike | None = None) -> dict | None:
    """Append a training line for the run `record` (a run record: configs, key, seconds) to the
    ledger when `POORVIT_CHAPTER` names a chapter; None (nothing written) otherwise. `cached`: the
    run was loaded from the run cache, not trained here."""
    chapter = os.environ.get(CHAPTER_ENV, "").strip()
    if not chapter:
        return None
    return _append({"kind": "training", "chapter": chapter,
                    "execution": os.environ.get(EXECUTION_ENV, ""), "scale": record.get("scale"),
                    "key": record.get("key"), "cached": bool(cached),
                    "seconds": record.get("seconds"), "device_name": record.get("device_name"),
                    "dataset": record.get("dataset"), "commit": record.get("commit"),
                    "model": record["config"], "train": record["train"]}, root)


def note_chapter(chapter: str, execution: str, seconds: float, passed: bool,
                 root: str | os.PathLike | None = None) -> dict:
    """Append a line for one executed notebook: its wall time and whether it passed."""
    return _append({"kind": "chapter", "chapter": chapter, "execution": execution,
                    "seconds": seconds, "passed": passed,
                    "scale": os.environ.get("POORVIT_SCALE", "")}, root)


def read(path: str | os.PathLike) -> list[dict]:
    """The ledger's lines (a missing ledger: ValueError saying how one is made)."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no ledger; execute the notebooks with pytest (e.g. python -m "
                         "pytest notebooks/01_images_to_tokens.ipynb), which writes one into the "
                         "run folder")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


# ---- the summary: each chapter's distinct trainings --------------------------------------------

def _configs(entry: dict) -> tuple[ViTConfig, TrainConfig]:
    known = {f.name for f in fields(TrainConfig)}
    return (ViTConfig(**entry["model"]),
            TrainConfig(**{k: v for k, v in entry["train"].items() if k in known}))


def summarize(entries: list[dict], source: str = "") -> dict:
    """Per chapter (its latest execution): the distinct trainings it ran, each as its scale, key,
    measured seconds and the fields it changed from that scale's baseline ({field: [baseline
    value, value]}), and the notebook's wall time. JSON-ready: results/chapters.json."""
    from .sweep import baseline_configs, config_diff
    latest: dict[str, str] = {}
    for e in entries:
        latest[e["chapter"]] = max(latest.get(e["chapter"], ""), e.get("execution", ""))
    chapters: dict[str, dict] = {}
    for e in entries:
        if e.get("execution", "") != latest[e["chapter"]]:
            continue
        ch = chapters.setdefault(e["chapter"], {"notebook_seconds": None, "trainings": []})
        if e["kind"] == "chapter":
            ch["notebook_seconds"], ch["scale"] = round(e["seconds"], 1), e.get("scale")
        elif e["key"] not in {t["key"] for t in ch["trainings"]}:
            # a recipe built without a scale ("custom") is compared with the scale it ran at
            scale = e["scale"] if e["scale"] in SCALES else os.environ.get("POORVIT_SCALE") \
                or "smoke"
            diff = config_diff(baseline_configs(scale), _configs(e))
            diff.pop("scale", None)
            ch["trainings"].append({"scale": scale, "key": e["key"],
                                    "sizes": {k: e["model"][k] for k in ("n_embd", "n_head")},
                                    "seconds": round(e["seconds"], 1), "cached": e["cached"],
                                    "device_name": e.get("device_name"),
                                    "changes": {k: list(v) for k, v in sorted(diff.items())}})
    trained = [e for e in entries if e["kind"] == "training"]
    first = trained[0] if trained else {}
    # what every result records: where and on what it was measured, at which code version
    return {"summary": "the trainings each chapter runs", "source": source,
            "scale": first.get("scale"), "seed": first.get("train", {}).get("seed"),
            "device_name": first.get("device_name"), "dataset": first.get("dataset"),
            "commit": first.get("commit"), "chapters": dict(sorted(chapters.items()))}


# ---- a training at another scale ---------------------------------------------------------------

_ALL = {"train_subset": N_TRAIN, "test_subset": N_TEST}      # 0 means all of them
# sizes that are a share of the model's width or heads: they keep that share on another model
_SHARES = {"q_rank": "n_embd", "kv_rank": "n_embd", "lowrank_dim": "n_embd"}


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _regimes(changes: dict, source: str | None, scale: str) -> dict:
    """The fields of `changes` that are one of `source` scale's named regimes
    (`SCALES[source]["regimes"]`, e.g. chapter 3's small-data regime), as `scale`'s regime of that
    name sets them: a chapter that picks a regime per scale picks that one at `scale`."""
    out = {}
    for name, regime in SCALES.get(source, {}).get("regimes", {}).items():
        target = SCALES[scale].get("regimes", {}).get(name)
        if target and all(k in changes and changes[k][1] == v for k, v in regime.items()):
            out.update(target)
    return out


def derive(changes: dict, scale: str, sizes: dict | None = None,
           source: str | None = None) -> tuple[ViTConfig, TrainConfig]:
    """The configs of a training at `scale`: `changes` ({field: [its baseline's value, its value]})
    put onto `scale`'s baseline, a number scaled by the ratio of the two baselines' values when
    they differ (so half the epochs stays half), a latent's or bottleneck's width by the ratio of
    the models' widths and key/value heads by `sweep.kv_heads_like` (`sizes`: the training's own
    `n_embd` and `n_head`), anything else as it is; but a named regime of the training's own
    scale (`source`: `SCALES[source]["regimes"]`) becomes `scale`'s regime of that name. Raises
    ValueError when the result is not a valid config."""
    from .sweep import baseline_configs, kv_heads_like
    base = baseline_configs(scale)
    over: list[dict] = [{}, {}]
    regime = _regimes(changes, source, scale)
    for name, (was, now) in changes.items():
        i = 0 if hasattr(base[0], name) else 1
        target = getattr(base[i], name)
        value = now
        if name in regime:
            over[i][name] = regime[name]
            continue
        ref = _SHARES.get(name)
        if name == "n_kv_head" and sizes and _number(now):      # MQA stays MQA, GQA stays GQA
            value = kv_heads_like(now, sizes["n_head"], base[0].n_head)
        elif ref and sizes and _number(now):
            value = max(1, round(now * getattr(base[0], ref) / sizes[ref]))
        elif _number(now) and _number(was) and _number(target):
            was_, now_, target_ = (v or _ALL.get(name, 0) for v in (was, now, target))
            if was_ and was_ != target_:
                value = now_ * target_ / was_
                if isinstance(now, int):
                    value = max(1, round(value))
                if name in _ALL and value >= _ALL[name]:
                    value = 0
        over[i][name] = value
    return with_overrides(base[0], **over[0]), with_overrides(base[1], **over[1])


@lru_cache(maxsize=None)
def _image_flops(model_cfg: ViTConfig) -> tuple[int, int]:
    """(forward, forward + backward) FLOPs per image, counted on the meta device."""
    import torch

    from .cost import flops_per_image
    from .model import ViT
    with torch.device("meta"):
        model = ViT(model_cfg)
    return (flops_per_image(model)["total"], flops_per_image(model, backward=True)["total"])


def run_flops(model_cfg: ViTConfig, train_cfg: TrainConfig) -> float:
    """FLOPs of a whole run on CIFAR-10: forward + backward of every training image the schedule
    shows (`planned_steps` x batch), the forwards of its evaluations (the test subset every
    `eval_every` epochs and at the end, then all 10,000 test images). Matmuls and convolutions
    only; the model in eval mode (no dropped tokens); a time-budgeted run: its `epochs` cap."""
    forward, train = _image_flops(model_cfg)
    _, steps = planned_steps(train_cfg, N_TRAIN)
    epochs = math.ceil(train_cfg.epochs)
    evals = len(set(range(train_cfg.eval_every - 1, epochs, train_cfg.eval_every)) | {epochs - 1})
    tested = min(train_cfg.test_subset or N_TEST, N_TEST)
    return steps * train_cfg.batch_size * train + forward * (evals * tested + N_TEST)


# ---- rates and times ---------------------------------------------------------------------------

def rates(folder: str | os.PathLike = "results/gpu") -> tuple[dict[str, float], str]:
    """({"fp16": FLOP/s, "fp32": FLOP/s} of a T4, where the rates came from): the float16 rate a
    `bench gpu` record of a T4 in `folder` measured (its timed demo epoch), else `T4_RATE`."""
    for path in sorted(Path(folder).glob("*.json")):
        rec = json.loads(path.read_text())
        if "T4" not in str(rec.get("device_name", "")):
            continue
        for row in rec.get("checks", []):
            if row.get("check") == RATE_CHECK and row.get("train_flops_per_s"):
                return ({**T4_RATE, "fp16": float(row["train_flops_per_s"])},
                        f"float16 measured on a {rec['device_name']} ({path.name})")
    return dict(T4_RATE), (f"estimated: {T4_UTILISATION['fp16']:.0%} of a T4's "
                           f"{T4_PEAK['fp16'] / 1e12:g} TFLOPS float16 peak")


def t4_precision(train_cfg: TrainConfig) -> str:
    """The rate a run takes on a T4: "fp16" for `auto` (float16 there: compute capability 7.5) and
    fp16, "fp32" for fp32 and for bf16 (emulated on a T4)."""
    return "fp16" if train_cfg.precision in ("auto", "fp16") else "fp32"


def training_seconds(training: dict, scale: str, rate: dict[str, float]) -> float:
    """Seconds of one summarized training at `scale` on a T4: the configs `derive` makes there, or
    (when those are not valid) the training's FLOPs relative to its own scale's baseline times that
    scale's baseline."""
    from .sweep import baseline_configs
    try:
        cfgs = derive(training["changes"], scale, training.get("sizes"), training["scale"])
        flops = run_flops(*cfgs)
    except ValueError:
        own = derive(training["changes"], training["scale"], training.get("sizes"),
                     training["scale"])
        cfgs = baseline_configs(scale)
        flops = run_flops(*own) / run_flops(*baseline_configs(training["scale"])) * run_flops(*cfgs)
    return flops / rate[t4_precision(cfgs[1])]


def chapter_times(summary: dict, folder: str | os.PathLike = "results/gpu") -> dict:
    """{"rate": ..., "rate_source": ..., "chapters": {chapter: {"trainings": n, "notebook_s",
    "measured_s": seconds the trainings took where they ran (smoke in CI), "scale", and per
    estimated scale (`estimated_scales`: demo, paper) "<scale>_s"}}}."""
    rate, source = rates(folder)
    out = {}
    for name, ch in summary["chapters"].items():
        row = {"trainings": len(ch["trainings"]), "notebook_s": ch.get("notebook_seconds"),
               "measured_s": sum(t["seconds"] for t in ch["trainings"]),
               "scale": ch.get("scale") or next((t["scale"] for t in ch["trainings"]), None)}
        for scale in estimated_scales():
            row[f"{scale}_s"] = sum(training_seconds(t, scale, rate) for t in ch["trainings"])
        out[name] = row
    return {"rate": rate, "rate_source": source, "chapters": out}


def estimated_scales() -> list[str]:
    """The scales whose times are estimated for a T4: the chapter scales that train the study's
    model (demo, paper)."""
    return [s for s, v in SCALES.items() if v["notebooks"] and v["model"] == "paper"]


def over_budget(times: dict, budget: float = DEMO_BUDGET_S) -> dict[str, float]:
    """{chapter: estimated demo seconds} of the chapters over `budget`."""
    return {k: v["demo_s"] for k, v in times["chapters"].items() if v["demo_s"] > budget}


# ---- the setup page's table --------------------------------------------------------------------

def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _chapter_name(chapter: str) -> str:
    """A ledger's chapter (the notebook's name) as the table shows it: `03_first_vit`."""
    return f"`{chapter}`"


def _scale_line(scale: str) -> str:
    from .config import get_train_config, scale_model
    from .cost import count_params
    cfg, tcfg = scale_model(scale), get_train_config(scale)
    per_epoch, steps = planned_steps(tcfg, N_TRAIN)
    subset = f"the first {tcfg.train_subset:,} training images" if tcfg.train_subset else \
        "all 50,000 training images"
    return (f"`{scale}`: the `{SCALES[scale]['model']}` model ({count_params(cfg):,} parameters), "
            f"{tcfg.epochs:g} epochs of {per_epoch:,} steps of {tcfg.batch_size} ({steps:,} steps) "
            f"on {subset}, " + _PRECISION.get(tcfg.precision, f"precision `{tcfg.precision}`"))


_PRECISION = {"auto": "precision `auto` (float32 on a CPU, float16 on a T4, bfloat16 on newer "
                      "GPUs)", "fp32": "in float32"}


def page_markdown(summary: dict, folder: str | os.PathLike = "results/gpu") -> str:
    """The setup page's block: the scales' recipes (from `config.SCALES`), then one row per chapter:
    its trainings, the measured time (notebook and trainings, where the ledger was made) and the
    estimated training time at each GPU scale on a T4."""
    times = chapter_times(summary, folder)
    est = estimated_scales()
    measured = {t.get("device_name") for ch in summary["chapters"].values()
                for t in ch["trainings"]} - {None}
    where = ", ".join(sorted(measured)) or "the CPU"
    scale = next((v["scale"] for v in times["chapters"].values() if v["scale"]), "smoke")
    notebook = any(v["notebook_s"] is not None for v in times["chapters"].values())
    lines = [f"The recipes, from the course's configuration (`poorvit.config.SCALES`); `demo` is "
             f"sized so that each chapter's training takes at most {DEMO_BUDGET_S / 60:g} minutes "
             f"on Colab's T4 (`python -m poorvit chapters --check` holds it in CI):", ""]
    lines += [f"* {_scale_line(s)}" for s in [scale] + est]
    lines += ["", "| chapter | trainings | "
              + (f"`{scale}`: the notebook (measured) | " if notebook else "")
              + f"`{scale}`: its trainings (measured) | "
              + " | ".join(f"`{s}`: trainings on a T4 (estimated)" for s in est) + " |",
              "|---|---|---|" + "---|" * (len(est) + notebook)]
    for name, row in times["chapters"].items():
        cells = ([_chapter_name(name), str(row["trainings"])]
                 + ([_duration(row["notebook_s"])] if notebook else [])
                 + [_duration(row["measured_s"])] + [_duration(row[f"{s}_s"]) for s in est])
        lines.append("| " + " | ".join(cells) + " |")
    r = times["rate"]
    source = f": {summary['source']}" if summary.get("source") else ""
    lines += ["", f"Measured on {where}{source}. "
              f"Estimated from each training's FLOPs at that scale (the same trainings, re-derived "
              f"on the scale's baseline) over a T4's rate of {r['fp16'] / 1e12:.1f} TFLOP/s in "
              f"float16 ({times['rate_source']}) and {r['fp32'] / 1e12:.1f} TFLOP/s in float32 "
              f"(the `paper` scale, as the study ran it). Every training a chapter asks for is "
              f"counted, also those an earlier chapter already trained: on Colab each chapter "
              f"starts in a fresh runtime (unless the run cache is on your Drive). Downloading "
              f"CIFAR-10 and the cells that do not train come on top."]
    return "\n".join(lines)


MARK = re.compile(r"(<!-- chapters:times -->\n)(.*?)(<!-- /chapters:times -->)", re.S)


def update_page(page: str | os.PathLike, summary: dict, folder: str | os.PathLike = "results/gpu",
                write: bool = True) -> bool:
    """Rewrite the block `<!-- chapters:times -->` ... `<!-- /chapters:times -->` of `page`;
    True when it changed."""
    page = Path(page)
    text = page.read_text(encoding="utf-8")
    found = MARK.search(text)
    if found is None:
        raise ValueError(f"{page} has no block <!-- chapters:times --> ... "
                         "<!-- /chapters:times -->")
    content = page_markdown(summary, folder) + "\n"
    if found.group(2) == content:
        return False
    if write:
        page.write_text(text[:found.start(2)] + content + text[found.end(2):], encoding="utf-8")
    return True


def stamp() -> str:
    """An execution id: the time now (UTC, ISO), ordered as strings."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


__all__ = ["CHAPTER_ENV", "EXECUTION_ENV", "DEMO_BUDGET_S", "T4_PEAK", "T4_UTILISATION", "T4_RATE",
           "ledger_path", "note", "note_chapter", "read", "summarize", "derive", "run_flops",
           "rates", "t4_precision", "training_seconds", "chapter_times", "estimated_scales",
           "over_budget", "page_markdown", "update_page", "stamp"]
