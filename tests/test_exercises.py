"""The exercise registry (`poorvit.course.exercises`): importing it registers nothing and imports no
chapter, `load_checks()` imports every chapter module so that each registers its own checks under
its own slug, and `check()` answers with a verdict, a hint, or "not attempted"."""
import subprocess
import sys

import pytest

from poorvit.course import exercises
from poorvit.course.exercises import CHAPTERS, CHECKS, ExerciseError, check, load_checks, todo

SLUGS = {"ch01_tokens": "tokens", "ch02_attention": "attention", "ch03_first_vit": "first-vit",
         "ch04_augmentation": "augmentation", "ch05_optimizers": "optimizers",
         "ch06_variants": "variants", "ch07_whitening": "whitening",
         "ch08_class_tokens": "cls-tokens", "ch09_profiling": "profiling",
         "ch10_together": "together"}


def test_the_registry_imports_no_chapter_until_asked():
    code = ("import sys; import poorvit.course.exercises as e; "
            "assert not [m for m in sys.modules if '.ch0' in m or '.ch10' in m], sys.modules; "
            "assert e.CHECKS == {}; e.load_checks(); "
            "assert all(f'poorvit.course.{c}' in sys.modules for c in e.CHAPTERS)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_each_chapter_module_registers_the_checks_of_its_own_slug():
    load_checks()
    assert list(CHAPTERS) == list(SLUGS)
    for name, entry in CHECKS.items():
        module = entry["check"].__module__.rsplit(".", 1)[-1]
        if module in SLUGS:                                 # tests may register checks of their own
            assert name.split("/")[0] == SLUGS[module], f"{name} registered by {module}"
    assert {name.split("/")[0] for name in CHECKS} >= set(SLUGS.values())


def test_check_loads_the_checks_and_refuses_an_unknown_name():
    with pytest.raises(KeyError, match="no exercise named 'tokens/nope'"):
        check("tokens/nope", None)
    assert "tokens/patchify" in exercises.CHECKS


def test_a_todo_placeholder_is_not_attempted_and_raises_when_used():
    placeholder = todo("together/row")
    with pytest.raises(ExerciseError, match="not attempted yet"):
        check("together/row", placeholder)
    with pytest.raises(NotImplementedError, match="together/row"):
        placeholder.model
    assert repr(placeholder) == "todo('together/row')"


def test_a_crashing_answer_is_reported_with_the_hint():
    def crash(*args):
        raise RuntimeError("boom")
    with pytest.raises(ExerciseError, match="your code raised RuntimeError: boom\nHint: "):
        check("tokens/patchify", crash)
