"""poorvit.study: the study's facts in one place. Every row the study reports has a preset, the
sweeps name rows that exist, the augmentation ablation and the recipe name real fields, and the
study's step splits into the phases the profiler measures."""
import math
from dataclasses import fields

from poorvit.config import TrainConfig, ViTConfig
from poorvit.study import (ABLATION, ACCURACY, RECIPE, ROWS, STEP_TIME_MS, STUDY_LOWRANK, SWEEPS,
                           study_accuracy, study_augmentation, study_breakdown)


def test_every_row_the_study_reports_has_a_preset():
    assert set(ACCURACY) <= set(ROWS) and SWEEPS["table"] == [n for n in ROWS if n in ACCURACY]
    assert SWEEPS["study"] == list(ROWS)
    # described by the study without a number
    for name in ("gqa", "mqa", "cls2", "cls4", "cls8", "sincos"):
        assert name in ROWS


def test_the_augmentation_ablation_rows():
    assert set(ABLATION) <= set(ACCURACY)
    for overrides in ABLATION.values():
        TrainConfig(**{**study_augmentation(), **overrides})       # every row is a valid recipe


def test_study_breakdown_adds_up_to_the_study_step():
    parts = study_breakdown()
    assert list(parts) == ["data", "forward", "backward", "optimizer"]      # timing.PHASES
    assert math.isclose(sum(parts.values()), STEP_TIME_MS["total"]) and parts["data"] >= 0


def test_recipe_and_rows_name_real_fields():
    names = {f.name for f in fields(ViTConfig)} | {f.name for f in fields(TrainConfig)}
    assert {name for name, _, _ in RECIPE} <= names
    for row in ROWS.values():
        assert row.fields <= names
    assert [f"lowrank_{w}" for w in STUDY_LOWRANK] == [n for n in ROWS if n.startswith("lowrank_")]
    assert study_accuracy("baseline") == ACCURACY["baseline"] and study_accuracy("gqa") is None
