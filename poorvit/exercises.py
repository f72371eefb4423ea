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
