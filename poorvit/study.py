"""The study's facts in one place: its numbers, its rows, its recipe, quoted (never measured here).

Wu, *Powerful Design of Small Vision Transformer on CIFAR10*, arXiv 2501.06220 (bibtex key
`wu2025poorvit`). Test accuracy in percent on the official CIFAR-10 test set after the study's full
recipe (100 epochs); step times in milliseconds on the study's GPU. Chapters quote these through
`glue` with the citation beside them; measured numbers come from run records instead.

* `ACCURACY`, `STEP_TIME_MS`, `FINDINGS`: what the study reports; `study_breakdown()` splits its
  step into the phases `poorvit.timing` measures.
* `ROWS` (`Row`): every row of its ablations as the fields it changes in the baseline model and
  recipe; `SWEEPS` names groups of rows for `poorvit.sweep`.
* `ABLATION`, `study_augmentation()`: its augmentation ablation and settings; `STUDY_LOWRANK`:
  the projections of its low-rank ablation; `RECIPE`: its recipe field by field, with the chapter
  of each.

Pure data and tiny functions: this module imports only the configs (and the names of the
augmentation fields).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .augment import AUGMENT_FIELDS
from .config import get_train_config

CITATION = "wu2025poorvit"

# test accuracy (%) reported by the study, by row of its ablations
ACCURACY = {
    "baseline": 93.65,
    "no_autoaugment": 92.14,
    "no_mixup": 93.68,
    "no_cutmix": 92.77,
    "whitening": 93.28,
    "lowrank_q": 93.32,
    "lowrank_k": 92.50,
    "lowrank_kv": 92.43,
    "lowrank_qk": 92.42,
    "lowrank_qkv": 91.80,
    "adamw_bs256": 93.44,
    "adamw_bs1024": 92.09,
    "lion_bs1024": 92.38,
}

# one training step of the baseline on the study's GPU, broken down (ms)
STEP_TIME_MS = {"total": 120.7, "forward": 25.2, "backward": 79.3, "optimizer": 12.7}

# where the study starts from: a plain tiny ViT on CIFAR-10 versus CNN speed-runs (percent)
PLAIN_TINY_VIT = 80.0   # "a Tiny ViT achieves only 80% accuracy on CIFAR-10" (its introduction)
CNN_SPEEDRUN = 94.0     # airbench reaches 94 % in seconds on one GPU (Jordan, arXiv 2404.00498)

# The study's findings in its own words, quoted from its abstract: the wording to quote where a row
# has no number in `ACCURACY` (the multi-class-token rows, the GQA/MQA rows), with the citation.
FINDINGS = {
    "lowrank_q": ("low-rank compression of queries in Multi-Head Latent Attention (MLA) incurs "
                  "minimal performance loss, indicating redundancy in ViTs"),
    "multi_cls": ("introducing multiple CLS tokens improves global representation capacity, "
                  "boosting accuracy"),
}
# Rows the course sweeps that have no number here: "sincos" (2-D sin-cos positions), "gqa", "mqa",
# "cls2", "cls4", "cls8". Add a number only with the table of the paper it comes from.
URL = "https://arxiv.org/abs/2501.06220"



def study_accuracy(name: str) -> float | None:
    """The study's reported test accuracy (%) for a row, or None where it reports none."""
    return ACCURACY.get(name)


def study_breakdown() -> dict:
    """The study's step (ms) in the phases `poorvit.timing` measures: what its forward, backward and
    optimizer leave of the total is counted as data and other work."""
    s = STEP_TIME_MS
    return {"data": s["total"] - s["forward"] - s["backward"] - s["optimizer"],
            "forward": s["forward"], "backward": s["backward"], "optimizer": s["optimizer"]}


# ---- the rows of the study's ablations ---------------------------------------------------------

@dataclass(frozen=True)
class Row:
    """One row of the study: what it changes in the baseline model and recipe, and where it is
    taught."""

    title: str                                   # the row as the study names it
    model: dict = field(default_factory=dict)    # ViTConfig overrides
    train: dict = field(default_factory=dict)    # TrainConfig overrides
    reference: str = "baseline"                  # the row the study compares it with
    chapter: str = ""                            # the chapter of the course that explains it

    @property
    def fields(self) -> set[str]:
        """The fields the row names."""
        return set(self.model) | set(self.train)

    def change(self) -> str:
        """The row's overrides as `field=value` text ("" for the baseline)."""
        return ", ".join(f"{k}={v!r}" for k, v in {**self.model, **self.train}.items())


_AUG, _OPT, _ATT = "04_augmentation", "05_optimizers", "06_attention_variants"
_TOK, _INIT, _CLS = "01_images_to_tokens", "07_whitening", "08_class_tokens"
ROWS: dict[str, Row] = {
    "baseline": Row("Baseline (the full recipe)", chapter="03_first_vit"),
    "no_autoaugment": Row("minus AutoAugment", train=dict(autoaugment=False), chapter=_AUG),
    "no_mixup": Row("minus Mixup", train=dict(mixup_alpha=0.0), chapter=_AUG),
    "no_cutmix": Row("minus CutMix", train=dict(cutmix_alpha=0.0), chapter=_AUG),
    "sincos": Row("2-D sin-cos positions instead of learned ones", model=dict(pos_embed="sincos"),
                  chapter=_TOK),
    "whitening": Row("patch embedding initialised by whitening", train=dict(whiten="trainable"),
                     chapter=_INIT),
    "lowrank_q": Row("low-rank q (rank 64)", model=dict(lowrank="q"), chapter=_ATT),
    "lowrank_k": Row("low-rank k (rank 64)", model=dict(lowrank="k"), chapter=_ATT),
    "lowrank_kv": Row("low-rank k and v (rank 64)", model=dict(lowrank="kv"), chapter=_ATT),
    "lowrank_qk": Row("low-rank q and k (rank 64)", model=dict(lowrank="qk"), chapter=_ATT),
    "lowrank_qkv": Row("low-rank q, k and v (rank 64)", model=dict(lowrank="qkv"), chapter=_ATT),
    # the optimizer table: its rows are compared with its own AdamW row at batch 256 (= the
    # baseline recipe)
    "adamw_bs256": Row("AdamW, batch 256", train=dict(optimizer="adamw", batch_size=256),
                       chapter=_OPT),
    "adamw_bs1024": Row("AdamW, batch 1024", train=dict(batch_size=1024), reference="adamw_bs256",
                        chapter=_OPT),
    "lion_bs1024": Row("Lion, batch 1024", train=dict(optimizer="lion", batch_size=1024),
                       reference="adamw_bs256", chapter=_OPT),
    # described by the study without numbers: key/value heads shared at the same width, several
    # class tokens
    "gqa": Row("GQA: 4 key/value heads for 12 query heads", model=dict(n_kv_head=4), chapter=_ATT),
    "mqa": Row("MQA: 1 key/value head", model=dict(n_kv_head=1), chapter=_ATT),
    "cls2": Row("2 class tokens", model=dict(n_cls=2), chapter=_CLS),
    "cls4": Row("4 class tokens", model=dict(n_cls=4), chapter=_CLS),
    "cls8": Row("8 class tokens", model=dict(n_cls=8), chapter=_CLS),
}

# named sweeps: `python -m poorvit sweep NAME`
SWEEPS: dict[str, list[str]] = {
    "study": list(ROWS),                                     # every row
    "table": [name for name in ROWS if name in ACCURACY],    # the rows the study gives a number for
}

# the projections of the study's low-rank ablation (rows lowrank_q ... lowrank_qkv)
STUDY_LOWRANK = ("q", "k", "kv", "qk", "qkv")


# ---- the augmentation ablation -----------------------------------------------------------------

def study_augmentation() -> dict:
    """The study's augmentation settings (the `paper` recipe), as TrainConfig overrides."""
    paper = get_train_config("paper")
    return {name: getattr(paper, name) for name in AUGMENT_FIELDS}


# The study's augmentation ablation: its row names (keys of `ACCURACY`) -> what each row turns off
# from the full recipe. Without Mixup, CutMix still mixes `mix_prob` of the batches, and vice versa.
ABLATION = {"baseline": {}, "no_autoaugment": {"autoaugment": False},
            "no_mixup": {"mixup_alpha": 0.0}, "no_cutmix": {"cutmix_alpha": 0.0}}


# ---- the recipe, field by field ----------------------------------------------------------------

# (field, what it sets, the chapter that explains it): the study's recipe as the course builds it up
RECIPE = [
    ("patch_size", "pixels per patch side", "1"),
    ("pos_embed", "positional embedding", "1"),
    ("n_embd", "token width", "3"), ("n_layer", "transformer blocks", "3"),
    ("n_head", "attention heads", "3"),
    ("mlp_ratio", "MLP hidden width / token width", "3"),
    ("drop_path", "stochastic depth of the last block", "3"),
    ("crop_pad", "random crop after padding (pixels)", "4"),
    ("flip", "random horizontal flip", "4"),
    ("autoaugment", "AutoAugment, CIFAR-10 policy", "4"),
    ("random_erasing", "random erasing probability", "4"),
    ("mixup_alpha", "Mixup Beta(α, α)", "4"), ("cutmix_alpha", "CutMix Beta(α, α)", "4"),
    ("repeats", "repeated augmentation", "4"), ("label_smoothing", "label smoothing", "4"),
    ("optimizer", "optimizer", "5"), ("batch_size", "images per step", "5"),
    ("lr", "peak learning rate", "5"),
    ("weight_decay", "decoupled weight decay", "5"),
    ("warmup_epochs", "linear warmup (epochs)", "5"),
    ("epochs", "training length (epochs)", "5"),
    ("n_kv_head", "key/value heads (None: one per query head)", "6"),
    ("lowrank", "low-rank q/k/v bottleneck", "6"),
    ("whiten", "patch embedding initialised by whitening", "7"), ("n_cls", "class tokens", "8"),
    ("train_subset", "training images used (0: all 50,000)", "setup"),
]
