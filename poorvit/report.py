"""Run records to a results table and a figure: `python -m poorvit report runs/`.

Reads every complete run record under a folder (`runs.find_runs`: sweep folders, the run cache, or
loose record JSON files such as those in the repository's `results/`), names each record's study row
(from the sweep's tag, else by matching its configs against `study.ROWS` at its scale), and groups
them by row, scale, dataset and baseline. Per group: test accuracy as mean ± std over seeds, the
difference to the baseline of the same group, the study's number and its own difference, the device
and the seconds a run took.

    records = find_runs("runs")
    rows = summarize(records)               # one dict per (row, scale, dataset, baseline)
    print(markdown(rows))                   # the table
    figure(rows)                            # accuracy per row, and its difference to the baseline
"""
from __future__ import annotations

import math
import re
import statistics
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .config import SCALES, TrainConfig, ViTConfig
from .runs import config_hash, find_runs, run_key
from .study import ACCURACY, RECIPE, ROWS, RUNTIME_LABEL, RUNTIME_S, fidelity_markdown
from .sweep import baseline_configs, row_configs

# scales in the order of `config.SCALES` (smoke, demo, paper, cpu); records of any other last
SCALE_ORDER = {name: i for i, name in enumerate(SCALES)}


def identify(record: dict) -> tuple[str, str | None]:
    """(row name, baseline family) of a record: the sweep's tag if it has one; else the row whose
    configs at the record's scale equal the record's (its family: the scale's own baseline); else
    "unnamed". The family is the run key of the baseline at seed 0, as `sweep` writes it."""
    tag = record.get("sweep") or {}
    if tag.get("row") in ROWS:
        return tag["row"], tag.get("baseline")
    scale, seed = record.get("scale"), record.get("seed", 0)
    for name in ROWS:
        try:
            m, t = row_configs(name, scale, seed)
        except (ValueError, KeyError, TypeError):
            return "unnamed", None
        if asdict(m) == record.get("config") and asdict(t) == record.get("train"):
            return name, run_key(*baseline_configs(scale, 0), record.get("dataset"))
    return "unnamed", None


def _differences(record: dict) -> str:
    """What an unnamed record changes in its scale's baseline ("n_embd=128, lr=0.001"), "" if
    unknown."""
    try:
        m, t = baseline_configs(record.get("scale"), record.get("seed", 0))
    except (ValueError, KeyError, TypeError):
        return ""
    base = {**asdict(m), **asdict(t)}
    mine = {}
    for part, cls in (("config", ViTConfig), ("train", TrainConfig)):
        given = record.get(part) or {}
        defaults = {f.name: f.default for f in fields(cls)}
        # a whole config written before a field existed ran with what the field's default does
        # (a few fields given by hand say nothing of the others)
        if len(given) >= 0.8 * len(defaults):
            given = {**defaults, **given}
        mine.update(given)
    if mine.get("optimizer") != "muon":          # Muon's settings mean nothing without it
        mine = {k: v for k, v in mine.items() if not k.startswith("muon_")}
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in mine.items() if k in base and base[k] != v)


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n - 1 in the denominator) over seeds; std None for one
    value."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


@dataclass(frozen=True)
class Verdict:
    """How two measured quantities compare, given their noise (see `verdict`).

    `diff` is mean(a) - mean(b) in the values' unit; `noise` the band a difference must leave to
    count (same unit); `within` is True when |diff| <= noise; `word` is `more`, `less` or
    "within noise". `str(v)` reads "+8.90 points, beyond the noise (±0.60)" or "+0.20 points, within
    noise (±0.60)"; `v.ratio` is mean(a) / mean(b) for timings."""

    diff: float
    noise: float
    ratio: float
    within: bool
    word: str
    unit: str

    def __str__(self) -> str:
        where = "within noise" if self.within else "beyond the noise"
        return f"{self.diff:+.2f}{self.unit}, {where} (±{self.noise:.2f})"


def sampling_noise(acc_a: float, n_a: int, acc_b: float, n_b: int, k: float = 2.0) -> float:
    """The noise band, in points, of a difference between two accuracies (fractions) measured on
    `n_a` and `n_b` images: `k` binomial standard errors of the difference, 100 * k *
    sqrt(a (1 - a) / n_a + b (1 - b) / n_b). What one model's train-vs-test comparison carries
    even without a second seed (`verdict(..., noise=)`); seeds spread more."""
    var = acc_a * (1 - acc_a) / n_a + acc_b * (1 - acc_b) / n_b
    return 100 * k * math.sqrt(var)


def verdict(a, b, noise: float | None = None, unit: str = " points", more: str = "higher",
            less: str = "lower", k: float = 2.0) -> Verdict:
    """Compare measurements `a` with `b` (each a number or a list: seeds, or repeats of a timing).

    The noise band is `noise` when given (for example the seed spread measured elsewhere, for
    single runs); else `k` times the standard error of the difference,
    k * sqrt(std(a)^2 / n_a + std(b)^2 / n_b), from the sample standard deviations (`mean_std`),
    which needs at least two values on each side. The course's rule for every comparative sentence:
    a difference inside the band is "within noise", outside it `more` or `less`.

    Raises ValueError when no noise is given and a side has fewer than two values."""
    a = [float(x) for x in (a if isinstance(a, (list, tuple)) else [a])]
    b = [float(x) for x in (b if isinstance(b, (list, tuple)) else [b])]
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    if noise is None:
        if sa is None or sb is None:
            raise ValueError("verdict: one measurement on a side and no noise given; pass "
                             "noise= (a seed or repeat spread measured elsewhere) or more values")
        noise = k * math.sqrt(sa ** 2 / len(a) + sb ** 2 / len(b))
    diff = ma - mb
    within = abs(diff) <= noise
    word = "within noise" if within else (more if diff > 0 else less)
    return Verdict(diff, float(noise), ma / mb if mb else math.inf, within, word, unit)


def _seconds(record: dict) -> float:
    """Training time of a run, summed over its resumptions (`train_seconds`), else its wall time."""
    return record.get("train_seconds", record.get("seconds", math.nan))


def summarize(records: list[dict]) -> list[dict]:
    """One row per (study row, scale, dataset, baseline family), in the study's order; accuracies
    in %, mean ± std over seeds (`mean_std`)."""
    groups: dict[tuple, list[dict]] = {}
    for rec in records:
        name, family = identify(rec)
        if name == "unnamed":        # one unnamed config, any seed: a group compared with nothing
            train = {k: v for k, v in (rec.get("train") or {}).items() if k != "seed"}
            family = "unnamed-" + config_hash(rec.get("config") or {}, train, rec.get("dataset"))
        groups.setdefault((name, rec.get("scale"), rec.get("dataset"), family), []).append(rec)
    out = []
    for (name, scale, dataset, family), recs in groups.items():
        accs = [100 * r["final_acc"] for r in recs]
        mean, std = mean_std(accs)
        devices = sorted({r.get("device_name") or r.get("device") or "?" for r in recs})
        row = ROWS.get(name)
        compared = row and name in ACCURACY and row.reference in ACCURACY and name != row.reference
        out.append({
            "row": name, "change": row.change() if row else _differences(recs[0]),
            "scale": scale, "dataset": dataset, "device": ", ".join(devices), "n": len(recs),
            "seeds": sorted(r.get("seed", 0) for r in recs), "mean": mean, "std": std,
            "seconds": statistics.fmean(_seconds(r) for r in recs),
            "params": recs[0].get("params"), "family": family,
            "commits": sorted({str(r.get("commit")) for r in recs}),
            "study": ACCURACY.get(name),
            "study_delta": ACCURACY[name] - ACCURACY[row.reference] if compared else None,
        })
    base = {(r["scale"], r["dataset"], r["family"]): r["mean"]
            for r in out if r["row"] == "baseline"}
    for r in out:
        b = base.get((r["scale"], r["dataset"], r["family"]))
        measured = b is not None and r["row"] not in ("baseline", "unnamed")
        r["delta"] = r["mean"] - b if measured else None
    order = {name: i for i, name in enumerate(ROWS)}
    out.sort(key=lambda r: (SCALE_ORDER.get(r["scale"], 9), str(r["dataset"]), str(r["family"]),
                            order.get(r["row"], len(order))))
    return out


def _pm(mean, std) -> str:
    return f"{mean:.2f} ± {std:.2f}" if std is not None else f"{mean:.2f}"


def _signed(x) -> str:
    return "–" if x is None else f"{x:+.2f}"


COLUMNS = ["row", "change", "scale", "dataset", "device", "params", "seeds", "accuracy (%)",
           "Δ baseline (pp)", "study (%)", "study Δ (pp)", "train s / run"]


def table_rows(rows: list[dict]) -> list[dict]:
    """The summary as display strings, one dict per row, keyed by `COLUMNS`."""
    return [{"row": r["row"], "change": f"`{r['change']}`" if r["change"] else "–",
             "scale": r["scale"], "dataset": r["dataset"], "device": r["device"],
             "params": "–" if r["params"] is None else f"{r['params']:,}", "seeds": str(r["n"]),
             "baseline run": f"`{str(r['family'])[:8]}`" if r["family"] else "–",
             "accuracy (%)": _pm(r["mean"], r["std"]), "Δ baseline (pp)": _signed(r["delta"]),
             "study (%)": "–" if r["study"] is None else f"{r['study']:.2f}",
             "study Δ (pp)": _signed(r["study_delta"]), "train s / run": f"{r['seconds']:,.0f}"}
            for r in rows]


def _columns(rows: list[dict], columns: list[str] | None) -> list[str]:
    """`columns`, or COLUMNS with a `baseline run` column after `scale` when one scale holds rows
    measured against different baselines (say, before and after a change of the scale's recipe)."""
    if columns is not None:
        return columns
    named = [r for r in rows if r["row"] != "unnamed"]
    families = {(r["scale"], r["dataset"], r["family"]) for r in named}
    if len(families) > len({(r["scale"], r["dataset"]) for r in named}):
        i = COLUMNS.index("scale") + 1
        return COLUMNS[:i] + ["baseline run"] + COLUMNS[i:]
    return COLUMNS


def markdown(rows: list[dict], columns: list[str] | None = None) -> str:
    """The summary as a Markdown table (an explanatory line when there is nothing to show)."""
    if not rows:
        return "_No run records found._"
    columns = _columns(rows, columns)
    cells = table_rows(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(c[k] for k in columns) + " |" for c in cells]
    return "\n".join(lines)


def html(rows: list[dict], columns: list[str] | None = None) -> str:
    """The summary as an HTML table (for pasting into a page that has no kernel), scrolling when
    wide."""
    if not rows:
        return "<p><em>No run records found.</em></p>"
    columns = _columns(rows, columns)
    esc = lambda s: str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")  # noqa: E731
    cells = table_rows(rows)
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{esc(c[k].strip('`'))}</td>" for k in columns) + "</tr>"
                   for c in cells)
    return (f'<div style="overflow-x: auto"><table class="table"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def _record_name(path: str) -> str:
    """A record's file name, or its run folder's name for a `record.json`."""
    p = Path(path)
    return p.parent.name if p.name == "record.json" else p.name


def records_markdown(records: list[dict], drop: tuple = ()) -> str:
    """One line per record: what produced it (device, scale, dataset, seed, commit) and what it
    measured (a Markdown table); the columns named in `drop` left out (say, those every record
    shares, stated once above the table)."""
    if not records:
        return "_No run records found._"
    cols = ["row", "scale", "dataset", "device", "seed", "commit", "accuracy (%)", "train s",
            "record"]
    lines = []
    for rec in sorted(records,
                      key=lambda r: (SCALE_ORDER.get(r.get("scale"), 9), r.get("_path", ""))):
        cells = [identify(rec)[0], rec.get("scale"), rec.get("dataset"), rec.get("device_name"),
                 rec.get("seed"), f"`{rec.get('commit')}`", f"{100 * rec['final_acc']:.2f}",
                 f"{_seconds(rec):,.0f}", f"`{_record_name(rec.get('_path', ''))}`"]
        lines.append("| " + " | ".join(str(c) for k, c in zip(cols, cells) if k not in drop)
                     + " |")
    cols = [c for c in cols if c not in drop]
    return "\n".join(["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|",
                      *lines])


def figure(rows: list[dict]):
    """Two panels: test accuracy per row and scale (mean ± std over seeds, the study's number beside
    it), and each row's difference to its baseline, measured and as the study reports it."""
    import matplotlib.pyplot as plt

    several = "baseline run" in _columns(rows, None)   # one scale, several baselines
    labels = [f"{r['row']} ({r['scale']}"
              + (f", {str(r['family'])[:8]})" if several and r["family"] else ")") for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 0.42 * len(rows) + 1.6), sharey=True)
    y = list(range(len(rows)))[::-1]
    scales = sorted({r["scale"] for r in rows}, key=lambda s: SCALE_ORDER.get(s, 9))
    colors = {s: f"C{i}" for i, s in enumerate(scales)}
    for yi, r in zip(y, rows):
        c = colors[r["scale"]]
        ax1.errorbar(r["mean"], yi, xerr=r["std"] or 0, fmt="o", color=c, capsize=3)
        if r["study"] is not None:
            ax1.plot(r["study"], yi, "D", mfc="none", color="k")
        if r["delta"] is not None:
            ax2.errorbar(r["delta"], yi, xerr=r["std"] or 0, fmt="o", color=c, capsize=3)
        if r["study_delta"] is not None:
            ax2.plot(r["study_delta"], yi, "D", mfc="none", color="k")
    ax1.set_yticks(y, labels, fontsize=8)
    ax1.set_xlabel("test accuracy (%)")
    ax1.set_title("accuracy: this project (dots, ± std) and the study (◇)", fontsize=9)
    ax2.axvline(0, color="grey", lw=0.8)
    ax2.set_xlabel("difference to the baseline (percentage points)")
    ax2.set_title("each row minus its baseline", fontsize=9)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=f"measured, {s} scale")
               for s, c in colors.items()]
    handles.append(plt.Line2D([], [], marker="D", ls="", mfc="none", color="k",
                              label="the study (reported)"))
    ax2.legend(handles=handles, fontsize=8, loc="best")
    fig.tight_layout()
    return fig


# ---- the recipe, field by field ----------------------------------------------------------------

def recipe_markdown(model_cfg, train_cfg, paper=None) -> str:
    """The study's recipe field by field next to `model_cfg`/`train_cfg`, with the chapter of
    each."""
    from .config import get_config, get_train_config
    paper_m, paper_t = paper or (get_config("paper"), get_train_config("paper"))
    lines = ["| field | what it sets | the study | this run | chapter |", "|---|---|---|---|---|"]
    for name, what, chapter in RECIPE:
        src = (paper_m, model_cfg) if hasattr(paper_m, name) else (paper_t, train_cfg)
        a, b = (getattr(c, name) for c in src)
        mark = "" if a == b else " ◂"
        lines.append(f"| `{name}` | {what} | {a!r} | {b!r}{mark} | {chapter} |")
    return "\n".join(lines)


# ---- the results page: blocks generated from ROWS and from the records in results/ -------------

def commands_markdown() -> str:
    """The study's rows: what each changes, the study's number, and the option of the command that
    trains it on a GPU (a Markdown table; the command in the header, once)."""
    lines = [f"| row | change from the baseline | study (%) | {RUNTIME_LABEL} | "
             "reproduce on your GPU: `python -m poorvit sweep --scale paper --seeds 3` and |",
             "|---|---|---|---|---|"]
    for name, row in ROWS.items():
        study = f"{ACCURACY[name]:.2f}" if name in ACCURACY else "–"
        runtime = f"{RUNTIME_S[name]:,}" if name in RUNTIME_S else "–"
        cmd = f"`--rows {name}`"
        change = f"`{row.change()}`" if row.change() else "–"
        lines.append(f"| {name} | {change} | {study} | {runtime} | {cmd} |")
    return "\n".join(lines)


def page_blocks(records_dir: str | Path) -> dict[str, str]:
    """The generated blocks of the results page: `rows` (the study's table with commands),
    `fidelity` (the `paper` scale against the study's code, `study.fidelity_markdown`), `summary`
    and `records` (what the records in `records_dir` measured)."""
    records = find_runs(records_dir)
    if not records:
        none = ("_No records yet: no run of the sweep at the demo or paper scale has been recorded "
                "for this course so far, so the only measured numbers on this page are the "
                "smoke-scale ones measured in CI._")
        return {"rows": commands_markdown(), "fidelity": fidelity_markdown(), "summary": none,
                "records": "_None._"}
    scales = sorted({str(r.get("scale")) for r in records}, key=lambda s: SCALE_ORDER.get(s, 9))
    rows = summarize(records)
    # what every row shares is said once, above the tables, which stay narrow enough to read
    shared = {k: rows[0][k] for k in ("dataset", "device") if len({r[k] for r in rows}) == 1}
    if len(scales) == 1:
        shared = {"scale": scales[0], **shared}
    lead = (f"{len(records)} records, at the {', '.join(scales)} scale(s)"
            + "".join(f"; {k}: {v}" for k, v in shared.items() if k != "scale") + ":")
    summary = f"{lead}\n\n" + markdown(rows, [c for c in _columns(rows, None) if c not in shared])
    return {"rows": commands_markdown(), "fidelity": fidelity_markdown(), "summary": summary,
            "records": records_markdown(records, drop=tuple(shared))}


def _block(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- results:{name} -->\n)(.*?)(<!-- /results:{name} -->)", re.S)


def update_page(page: str | Path, records_dir: str | Path, write: bool = True) -> list[str]:
    """Rewrite the generated blocks of `page` from `records_dir`; returns the names of blocks that
    changed."""
    page = Path(page)
    text = page.read_text(encoding="utf-8")
    changed = []
    for name, content in page_blocks(records_dir).items():
        content += "\n"
        found = _block(name).search(text)
        if found is None:
            raise ValueError(f"{page} has no block <!-- results:{name} --> ... "
                             f"<!-- /results:{name} -->")
        if found.group(2) != content:
            changed.append(name)
            text = text[:found.start(2)] + content + text[found.end(2):]
    if write and changed:
        page.write_text(text, encoding="utf-8")
    return changed


__all__ = ["recipe_markdown", "mean_std", "identify", "summarize", "markdown", "html",
           "records_markdown", "figure", "table_rows", "COLUMNS", "commands_markdown",
           "page_blocks", "update_page"]
