"""Checks that grade a reader's own implementation, answering with what was expected, what came back
and a hint: never just "assert failed".

Every chapter's exercises register a check here with `@exercise("chapter-slug/name", hint=...)`. A check
takes the reader's function or value, runs it on fresh inputs, compares with the package's answer, and
either returns a short success message or raises `ExerciseError` with the explanation.

    from poorvit.exercises import check
    check("tokens/patchify", my_patchify)      # prints "✓ tokens/patchify: ..." or explains what is wrong
"""
from __future__ import annotations

from typing import Any, Callable

import torch

CHECKS: dict[str, dict] = {}


class ExerciseError(AssertionError):
    """A reader's answer is not right yet; the message says what was expected and how to get there."""


def exercise(name: str, hint: str = ""):
    """Register `fn(answer) -> str` as the check of exercise `name`."""
    def register(fn: Callable[[Any], str]):
        CHECKS[name] = {"check": fn, "hint": hint, "doc": (fn.__doc__ or "").strip()}
        return fn
    return register


def check(name: str, answer: Any) -> str:
    """Grade `answer` for exercise `name`; prints and returns the verdict, raises ExerciseError if wrong."""
    if name not in CHECKS:
        raise KeyError(f"no exercise named {name!r}; known: {', '.join(sorted(CHECKS))}")
    entry = CHECKS[name]
    try:
        msg = entry["check"](answer)
    except ExerciseError as err:
        hint = f"\nHint: {entry['hint']}" if entry["hint"] else ""
        raise ExerciseError(f"✗ {name}: {err}{hint}") from None
    except NotImplementedError:
        raise ExerciseError(f"✗ {name}: not attempted yet (the cell still raises NotImplementedError)") from None
    except Exception as err:  # the reader's code crashed: say where, keep the hint
        hint = f"\nHint: {entry['hint']}" if entry["hint"] else ""
        raise ExerciseError(f"✗ {name}: your code raised {type(err).__name__}: {err}{hint}") from None
    verdict = f"✓ {name}: {msg}"
    print(verdict)
    return verdict


def expect_close(got: torch.Tensor, want: torch.Tensor, what: str, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Raise ExerciseError naming shapes or the largest difference when `got` is not `want`."""
    if not torch.is_tensor(got):
        raise ExerciseError(f"{what}: expected a tensor, got {type(got).__name__}")
    if got.shape != want.shape:
        raise ExerciseError(f"{what}: expected shape {tuple(want.shape)}, got {tuple(got.shape)}")
    if not torch.allclose(got.float(), want.float(), atol=atol, rtol=rtol):
        diff = (got.float() - want.float()).abs()
        raise ExerciseError(f"{what}: values differ (max difference {diff.max().item():.3g} at index "
                            f"{tuple(int(i) for i in torch.nonzero(diff == diff.max())[0])})")


__all__ = ["exercise", "check", "expect_close", "ExerciseError", "CHECKS"]


# ---- chapter 10, putting it together ("together/...") -----------------------------------------------

@exercise("together/row", hint='a Row names only what the study changes: Row("low-rank v", model=dict(lowrank="v")); '
                                "leave the bottleneck's width to the baseline and to sweep.translate.")
def _check_together_row(row) -> str:
    """row: a `sweep.Row` for "the values alone through the rank-64 bottleneck"."""
    from .sweep import Row, baseline_configs, config_diff, translate
    from .config import with_overrides

    if not isinstance(row, Row):
        raise ExerciseError(f"expected a poorvit.sweep.Row, got {type(row).__name__}")
    if row.train or row.model != {"lowrank": "v"}:
        raise ExerciseError(f"expected model={{'lowrank': 'v'}} and no training change, got model={row.model}, "
                            f"train={row.train}")
    for scale in ("paper", "smoke"):
        base = baseline_configs(scale)
        m, t = translate(row, *base)
        diff = config_diff(base, (with_overrides(base[0], **m), with_overrides(base[1], **t)))
        if "lowrank" not in diff:
            raise ExerciseError(f"at the {scale} scale the row changes {sorted(diff)}, not lowrank")
    return "the row changes exactly `lowrank`, and translates onto the smoke model (its bottleneck scaled with the width)"


@exercise("together/mean-std", hint="mean = sum / n; the sample standard deviation divides the squared deviations "
                                     "by n - 1 (statistics.stdev); with one value there is no spread to estimate: None.")
def _check_together_mean_std(fn) -> str:
    """fn(values) -> (mean, std): std the sample standard deviation, None for a single value."""
    from .report import mean_std

    g = torch.Generator().manual_seed(10)
    for n in (1, 2, 3, 5):
        values = (90 + 4 * torch.rand(n, generator=g, dtype=torch.float64)).tolist()
        (m_want, s_want), (m_got, s_got) = mean_std(values), fn(values)
        if abs(m_got - m_want) > 1e-9:
            raise ExerciseError(f"for {n} values {[round(v, 3) for v in values]} expected mean {m_want:.4f}, got {m_got}")
        if s_want is None:
            if s_got is not None:
                raise ExerciseError(f"for a single value expected std None (no spread to estimate), got {s_got}")
        elif s_got is None or abs(s_got - s_want) > 1e-9:
            raise ExerciseError(f"for {n} values expected std {s_want:.4f} (divide by n - 1), got {s_got}")
    return "mean ± std as poorvit.report computes it over seeds"


@exercise("together/kv-heads", hint="1 stays 1 (MQA); as many as the study's heads stays n_head (MHA); otherwise "
                                     "among the divisors d of n_head with 1 < d < n_head pick the d whose d / n_head is "
                                     "nearest n_kv_head / paper_heads (the smaller d on a tie); no such d: all divisors.")
def _check_together_kv_heads(fn) -> str:
    """fn(n_kv_head, paper_heads, n_head) -> key/value heads for a model with n_head query heads."""
    from .sweep import kv_heads_like

    for paper_heads in (12, 8):
        for n_kv in [d for d in range(1, paper_heads + 1) if paper_heads % d == 0]:
            for n_head in (1, 2, 3, 4, 6, 8, 12, 16):
                want, got = kv_heads_like(n_kv, paper_heads, n_head), fn(n_kv, paper_heads, n_head)
                if got != want:
                    raise ExerciseError(f"for n_kv_head={n_kv} of {paper_heads} heads on a model with n_head={n_head} "
                                        f"expected {want} key/value heads, got {got}")
    return "your translation keeps MHA, GQA and MQA rows what they are on any number of heads"
