"""The exercise registry: checks that grade a reader's own implementation, answering with what was
expected, what came back and a hint: never just "assert failed".

Each chapter module registers its checks with `@exercise("chapter-slug/name", hint=...)` (the
`tokens/*` checks live in `ch01_tokens`, the `whitening/*` ones in `ch07_whitening`, ...). A check
takes the reader's function or value, runs it on fresh inputs, compares with the package's answer,
and either returns a short success message or raises `ExerciseError` with the explanation. `check()`
first imports every chapter module (`load_checks()`), so that every check is registered.

    from poorvit.course.exercises import check
    check("tokens/patchify", my_patchify)  # prints "✓ tokens/patchify: ..." or says what is wrong
"""
from __future__ import annotations

import importlib
import math
import numbers
from typing import Any, Callable

import torch

CHECKS: dict[str, dict] = {}

# The chapter modules, in reading order: importing one registers its checks.
CHAPTERS = ("ch01_tokens", "ch02_attention", "ch03_first_vit", "ch04_augmentation",
            "ch05_optimizers", "ch06_variants", "ch07_whitening", "ch08_class_tokens",
            "ch09_profiling", "ch10_together")


class ExerciseError(AssertionError):
    """A reader's answer is not right yet; the message says what was expected and how to get
    there."""


def exercise(name: str, hint: str = ""):
    """Register `fn(answer) -> str` as the check of exercise `name`."""
    def register(fn: Callable[[Any], str]):
        CHECKS[name] = {"check": fn, "hint": hint, "doc": (fn.__doc__ or "").strip()}
        return fn
    return register


def load_checks() -> dict[str, dict]:
    """Import every chapter module, so that all their checks are in `CHECKS`; returns `CHECKS`."""
    for name in CHAPTERS:
        importlib.import_module(f"{__package__}.{name}")
    return CHECKS


# ---- classroom: placeholders of the student notebooks (see poorvit.course.classroom) -------------

class Todo:
    """The placeholder a student notebook holds where the reader still has to write a value: using
    it (attribute, call, iteration, arithmetic...) raises NotImplementedError naming the exercise,
    and `check` answers "not attempted yet" instead of grading it."""
    __slots__ = ("exercise",)

    def __init__(self, exercise: str):
        self.exercise = exercise

    def __repr__(self) -> str:
        return f"todo({self.exercise!r})"

    def _missing(self, *args, **kwargs):
        raise NotImplementedError(f"{self.exercise}: not written yet "
                                  f"(replace todo({self.exercise!r}) with your answer)")

    def __getattr__(self, attr):
        if attr.startswith("_"):  # Python's and IPython's probes (__len__, _repr_html_) stay quiet
            raise AttributeError(attr)
        self._missing()

    __call__ = __iter__ = __len__ = __bool__ = __getitem__ = __contains__ = _missing
    __int__ = __float__ = __index__ = __neg__ = __abs__ = _missing
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = _missing
    __rtruediv__ = __matmul__ = __rmatmul__ = __pow__ = __lt__ = __le__ = __gt__ = __ge__ = _missing


def todo(exercise: str) -> Todo:
    """A value still to be written in exercise `exercise`: `my_row = todo("together/row")`."""
    return Todo(exercise)


def check(name: str, answer: Any) -> str:
    """Grade `answer` for exercise `name`; prints and returns the verdict, raises ExerciseError if
    wrong."""
    load_checks()
    if name not in CHECKS:
        raise KeyError(f"no exercise named {name!r}; known: {', '.join(sorted(CHECKS))}")
    entry = CHECKS[name]
    hint = f"\nHint: {entry['hint']}" if entry["hint"] else ""
    if isinstance(answer, Todo):       # a student notebook's placeholder value, not replaced yet
        raise ExerciseError(f"✗ {name}: not attempted yet "
                            f"(replace `todo({answer.exercise!r})` with your answer)")
    try:
        msg = entry["check"](answer)
    except ExerciseError as err:
        raise ExerciseError(f"✗ {name}: {err}{hint}") from None
    except NotImplementedError:
        raise ExerciseError(f"✗ {name}: not attempted yet "
                            "(the cell still raises NotImplementedError)") from None
    except Exception as err:  # the reader's code crashed: say where, keep the hint
        raised = f"{type(err).__name__}: {err}"
        raise ExerciseError(f"✗ {name}: your code raised {raised}{hint}") from None
    verdict = f"✓ {name}: {msg}"
    print(verdict)
    return verdict


# ---- an answer's value, of the type the check expects --------------------------------------------
# A check never compares the reader's object itself (`got != want` would ask the answer's own
# `__ne__`): it first turns the answer into a plain int, float or tensor, and refuses anything else.

def as_int(got: Any, what: str) -> int:
    """The answer `got` as a plain int: an int, a numpy integer, a whole float (up to rounding,
    1e-9 relative) or a one-element tensor of one. Anything else raises ExerciseError naming
    `what`."""
    value = got.item() if torch.is_tensor(got) and got.numel() == 1 else got
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ExerciseError(f"{what}: expected a whole number, got {type(got).__name__}")
    if isinstance(value, numbers.Integral):
        return int(value)
    f = float(value)
    if not math.isfinite(f) or abs(f - round(f)) > 1e-9 * max(1.0, abs(f)):
        raise ExerciseError(f"{what}: expected a whole number, got {f!r}")
    return int(round(f))


def as_float(got: Any, what: str) -> float:
    """The answer `got` as a plain float: a real number (int, float, numpy scalar) or a
    one-element tensor. Anything else raises ExerciseError naming `what`."""
    value = got.item() if torch.is_tensor(got) and got.numel() == 1 else got
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ExerciseError(f"{what}: expected a number, got {type(got).__name__}")
    return float(value)


def expect_close(got: torch.Tensor, want: torch.Tensor, what: str, atol: float = 1e-5,
                 rtol: float = 1e-4) -> None:
    """Raise ExerciseError naming shapes or the largest difference when `got` is not `want`."""
    if not torch.is_tensor(got):
        raise ExerciseError(f"{what}: expected a tensor, got {type(got).__name__}")
    if got.shape != want.shape:
        raise ExerciseError(f"{what}: expected shape {tuple(want.shape)}, got {tuple(got.shape)}")
    if not torch.allclose(got.float(), want.float(), atol=atol, rtol=rtol):
        diff = (got.float() - want.float()).abs()
        where = tuple(int(i) for i in torch.nonzero(diff == diff.max())[0])
        raise ExerciseError(f"{what}: values differ "
                            f"(max difference {diff.max().item():.3g} at index {where})")


__all__ = ["exercise", "check", "expect_close", "as_int", "as_float", "ExerciseError", "CHECKS",
           "CHAPTERS", "load_checks", "Todo", "todo"]
