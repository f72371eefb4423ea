"""Chapter 10, putting it together: the explorer of the swept rows' training curves
(`row_explorer`) and the `together/*` exercise checks (a study row, the mean ± std rule over seeds,
the one GQA rule). Everything else the chapter runs is the library's: `poorvit.study` (the rows and
the recipe), `poorvit.sweep` and `poorvit.report`.

    from poorvit.course import ch10_together as ch
    histories = {rec["sweep"]["row"]: rec["history"] for rec in records}
    ch.row_explorer(histories, ["baseline", "whitening", "lowrank_q"])
"""
from __future__ import annotations

import ipywidgets as W
import matplotlib.pyplot as plt
import torch

from .exercises import ExerciseError, as_float, as_int, exercise
from .plots import curves
from .widgets import explorer


# ---- the rows, explored --------------------------------------------------------------------------

def row_explorer(histories: dict[str, list], rows=None, baseline: str = "baseline") -> W.Widget:
    """Pick a row of the sweep: its training loss and test accuracy per epoch next to the
    baseline's (`plots.curves`). `histories`: {row name: a run record's "history"}; `rows`: the
    rows to offer, in this order (default: those of `histories`), the baseline left out."""
    def draw(row):
        curves({baseline: histories[baseline], row: histories[row]}, keys=("loss", "test_acc"))
        plt.show()

    options = [n for n in (histories if rows is None else rows) if n != baseline]
    return explorer(draw, row=W.Dropdown(options=options, description="row"))


# ---- exercise checks ("together/...") ------------------------------------------------------------


@exercise("together/row",
          hint="a Row names only what the study changes: "
               'Row("low-rank v", model=dict(lowrank="v")); '
               "leave the bottleneck's width to the baseline and to sweep.translate.")
def _check_together_row(row) -> str:
    """row: a `study.Row` for "the values alone through the rank-64 bottleneck"."""
    from ..config import with_overrides
    from ..study import Row
    from ..sweep import baseline_configs, config_diff, translate

    if not isinstance(row, Row):
        raise ExerciseError(f"expected a poorvit.study.Row, got {type(row).__name__}")
    # compared as plain dicts of plain strings, never through the answer's own `!=`
    model = list(row.model.items()) if type(row.model) is dict else None
    plain = model is not None and all(type(s) is str for item in model for s in item)
    if type(row.train) is not dict or row.train or not plain or model != [("lowrank", "v")]:
        raise ExerciseError(f"expected model={{'lowrank': 'v'}} and no training change, "
                            f"got model={row.model}, train={row.train}")
    for scale in ("paper", "smoke"):
        base = baseline_configs(scale)
        m, t = translate(row, *base)
        diff = config_diff(base, (with_overrides(base[0], **m), with_overrides(base[1], **t)))
        if "lowrank" not in diff:
            raise ExerciseError(f"at the {scale} scale the row changes {sorted(diff)}, not lowrank")
    return ("the row changes exactly `lowrank`, and translates onto the smoke model "
            "(its bottleneck scaled with the width)")


@exercise("together/mean-std",
          hint="mean = sum / n; the sample standard deviation divides the squared deviations by "
               "n - 1 (statistics.stdev); with one value there is no spread to estimate: None.")
def _check_together_mean_std(fn) -> str:
    """fn(values) -> (mean, std): std the sample standard deviation, None for a single value."""
    from ..report import mean_std

    g = torch.Generator().manual_seed(10)
    for n in (1, 2, 3, 5):
        values = (90 + 4 * torch.rand(n, generator=g, dtype=torch.float64)).tolist()
        (m_want, s_want), (m_got, s_got) = mean_std(values), fn(values)
        m_got = as_float(m_got, f"the mean of {n} values")
        s_got = None if s_got is None else as_float(s_got, f"the std of {n} values")
        if abs(m_got - m_want) > 1e-9:
            raise ExerciseError(f"for {n} values {[round(v, 3) for v in values]} expected mean "
                                f"{m_want:.4f}, got {m_got}")
        if s_want is None:
            if s_got is not None:
                raise ExerciseError(f"for a single value expected std None (no spread to "
                                    f"estimate), got {s_got}")
        elif s_got is None or abs(s_got - s_want) > 1e-9:
            raise ExerciseError(f"for {n} values expected std {s_want:.4f} (divide by n - 1), "
                                f"got {s_got}")
    return "mean ± std as poorvit.report computes it over seeds"


@exercise("together/kv-heads",
          hint="1 stays 1 (MQA); as many as the study's heads stays n_head (MHA); otherwise among "
               "the divisors d of n_head with 1 < d < n_head pick the d whose d / n_head is "
               "nearest n_kv_head / paper_heads (the smaller d on a tie); no such d: all divisors.")
def _check_together_kv_heads(fn) -> str:
    """fn(n_kv_head, paper_heads, n_head) -> key/value heads for a model with n_head query heads."""
    from ..sweep import kv_heads_like

    for paper_heads in (12, 8):
        for n_kv in [d for d in range(1, paper_heads + 1) if paper_heads % d == 0]:
            for n_head in (1, 2, 3, 4, 6, 8, 12, 16):
                want = kv_heads_like(n_kv, paper_heads, n_head)
                got = as_int(fn(n_kv, paper_heads, n_head), f"key/value heads for n_head={n_head}")
                if got != want:
                    raise ExerciseError(f"for n_kv_head={n_kv} of {paper_heads} heads on a model "
                                        f"with n_head={n_head} expected {want} key/value heads, "
                                        f"got {got}")
    return "your translation keeps MHA, GQA and MQA rows what they are on any number of heads"


__all__ = ["row_explorer"]
