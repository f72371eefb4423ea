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

from dataclasses import asdict, dataclass, field

from .augment import AUGMENT_FIELDS
from .config import get_train_config, planned_steps, scale_model

CITATION = "wu2025poorvit"

# test accuracy (%) reported by the study, by row of its ablations
ACCURACY = {
    "baseline": 93.65,
    "no_autoaugment": 92.14,
    "no_mixup": 93.68,
    "no_cutmix": 92.77,
    "sincos": 93.43,
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

# the runtime the study's table gives beside each accuracy (the README of its code; probably seconds
# of the whole run, on a GPU it does not name): RUNTIME_LABEL says so wherever it is shown
RUNTIME_S = {
    "baseline": 4658, "no_autoaugment": 4684, "no_mixup": 4656, "no_cutmix": 4651, "sincos": 4687,
    "whitening": 4676, "lowrank_q": 4716, "lowrank_k": 4711, "lowrank_kv": 4756,
    "lowrank_qk": 4785, "lowrank_qkv": 4805, "adamw_bs256": 3582, "adamw_bs1024": 1371,
    "lion_bs1024": 1545,
}
RUNTIME_LABEL = "runtime (s, the study's GPU, unknown model)"

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
# Rows the course sweeps that have no number here: "gqa", "mqa", "cls2", "cls4", "cls8". Add a
# number only with the table of the paper it comes from.
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
    # at `paper` (and `demo`) the baseline carries the study's whitening (eps 5e-4 on ~5,000
    # augmented images from its loader, finetune.py) and Lion's own betas (0.9, 0.99): a row names
    # only what it changes, so that at a CPU scale it changes the same one thing
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
    # the study's Lion: its lr and wd are not recorded, so the recipe's (the AdamW values, which
    # its code's defaults would give)
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


# ---- fidelity: the `paper` scale against the study's code, setting by setting ----------------

@dataclass(frozen=True)
class Setting:
    """One setting of the study's code (../shared/STUDY.md) and the config fields that carry it.

    `expect`: field -> the study's value (fields of ViTConfig or TrainConfig, or `steps_per_epoch`
    / `steps` from `config.planned_steps`); `reason`: why the course differs (empty: it does not);
    `note`: what remains different although the fields match, and why it does not change the
    result."""

    setting: str
    study: str
    where: str
    expect: dict = field(default_factory=dict)
    reason: str = ""
    note: str = ""
    row: str = ""       # a row of `ROWS`: the values are that row's at the scale


FIDELITY: list[Setting] = [
    Setting("model", "patch 4, width 192, 9 blocks, 12 heads, MLP ratio 2, GELU, qkv bias, "
            "pre-norm, 1 class token", "models/build_model.py, models/vit.py",
            dict(patch_size=4, n_embd=192, n_layer=9, n_head=12, mlp_ratio=2.0, qkv_bias=True,
                 n_cls=1, pos_embed="learned")),
    Setting("LayerNorm eps", "1e-6, every norm", "models/build_model.py", dict(norm_eps=1e-6)),
    Setting("init", "trunc_normal_(std 0.02) cut at ±2 absolute; patch conv: PyTorch default",
            "models/vit.py", dict(init="study")),
    Setting("stochastic depth", "0.1, rising linearly; no dropout", "finetune.py, models/vit.py",
            dict(drop_path=0.1, patch_drop=0.0)),
    Setting("an epoch", "3 passes (repeated augmentation 3, copies in a row): 585 steps of 256; "
            "100 epochs = 58,500 steps", "finetune.py (BatchAugmentation)",
            dict(repeats=3, full_repeats=True, batch_size=256, epochs=100, steps_per_epoch=585,
                 steps=58_500)),
    Setting("schedule", "warmup 10 epochs from 1e-6, cosine to 1e-6, per iteration",
            "utils/scheduler.py", dict(warmup_epochs=10, min_lr=1e-6),
            note="the warmup starts at 0, not 1e-6: the lr of a warmup step differs by less "
                 "than 1e-6 (0.1 % of the peak), too little to change the result"),
    Setting("AdamW", "lr 1e-3, wd 0.05 on every parameter, betas (0.9, 0.999), no clipping",
            "finetune.py", dict(optimizer="adamw", lr=1e-3, weight_decay=0.05, decay_all=True,
                                beta1=0.9, beta2=0.999, grad_clip=0.0)),
    Setting("Lion", "lion-pytorch's betas (0.9, 0.99); lr, wd not recorded", "finetune.py",
            dict(optimizer="lion", batch_size=1024, lion_betas="lion-pytorch"), row="lion_bs1024",
            note="the Lion row runs with the recipe's lr 1e-3 and wd 0.05 (its code's defaults); "
                 "the README's values are unknown"),
    Setting("Muon", "present, no reported number", "utils/muon.py",
            reason="not in the course: the study reports no number to reproduce"),
    Setting("loss", "cross-entropy, label smoothing 0.1", "finetune.py",
            dict(label_smoothing=0.1)),
    Setting("augmentation", "crop 32 after padding 4, flip, AutoAugment CIFAR-10 (DeepVoltaire's "
            "port: grey 128 fill, rotation one way, bicubic shear)", "utils/autoaug.py",
            dict(crop_pad=4, flip=True, autoaugment=True, augment_impl="study"),
            note="batched on the device, not PIL: torch's bicubic kernel (a = -0.75; PIL's -0.5), "
                 "translations by whole pixels, torchvision's rounding in the colour ops: "
                 "differences of a grey level or a pixel in a few ops"),
    Setting("random erasing", "p 0.25, area 0.02-0.4, aspect uniform in [0.3, 1/0.3], 100 "
            "tries, fill (0.4914, 0.4822, 0.4465) in the normalized image", "utils/transforms.py",
            dict(random_erasing=0.25, augment_impl="study")),
    Setting("Mixup / CutMix", "alpha 1 each, half the batches, 50/50; a permutation of the batch, "
            "loss lam CE(y_a) + (1 - lam) CE(y_b)", "finetune.py",
            dict(mixup_alpha=1.0, cutmix_alpha=1.0, mix_prob=0.5, mix_partner="permute"),
            note="the mixed loss is cross-entropy on the mixed soft targets: the same number, CE "
                 "being linear in the target (tests/test_fidelity.py)"),
    Setting("whitening row", "~5,000 augmented, normalized images from the loader; eps 5e-4; "
            "first 48 of 192 channels; bias untouched", "finetune.py",
            dict(whiten="trainable", whiten_eps=5e-4, whiten_source="loader", whiten_images=5000),
            row="whitening", note="filters from a float64 second moment (the study's: float32)"),
    Setting("low-rank rows", "Linear(192, 64, no bias) then Linear(64, 192) per projection named",
            "models/vit.py", dict(lowrank="q", lowrank_dim=64), row="lowrank_q"),
    Setting("sin-cos row", "fixed 2-D sin-cos, temperature 1e4, zero vector for the class token",
            "models/vit.py", dict(pos_embed="sincos"), row="sincos"),
    Setting("several class tokens", "outputs concatenated into one linear head", "models/vit.py",
            dict(n_cls=2, cls_head="concat"), row="cls2"),
    Setting("precision", "float32 forward (autocast only in its CutMix-only branch)",
            "finetune.py", dict(precision="fp32")),
    Setting("evaluation", "every 5 epochs (after epochs 1, 6, ..., 96), best tracked; best or "
            "last reported: unknown", "finetune.py", dict(eval_every=5),
            note="poorvit evaluates after epochs 5, 10, ..., 100 and on the full test set at the "
                 "end; the record keeps final_acc (compared with the study) and best_acc"),
    Setting("data order", "seed 0, cuDNN deterministic, DDP (gloo) under torchrun", "finetune.py",
            dict(seed=0),
            reason="other random streams (the loader's device generator, not DataLoader workers): "
                   "a run is another draw of the same recipe, as a second seed of the study "
                   "would be; one process on one GPU computes what DDP on one GPU does"),
]


def paper_values(scale: str = "paper", row: str = "") -> dict:
    """Every field of a scale's model and recipe (with `row`'s overrides, as `sweep.row_configs`
    applies them at the study's own sizes), with `steps_per_epoch` and `steps`."""
    r = ROWS[row] if row else Row("")
    m, t = scale_model(scale, **r.model), get_train_config(scale, **r.train)
    per_epoch, steps = planned_steps(t)
    return {**asdict(m), **asdict(t), "steps_per_epoch": per_epoch, "steps": steps}


def fidelity(scale: str = "paper") -> list[dict]:
    """`FIDELITY` against a scale's configs: per setting the study's value and file, the course's
    values of the fields, and the status: "same", "same; <note>", "differs: <reason>", or
    "DIFFERS, no reason given" (which the fidelity test refuses)."""
    out = []
    for s in FIDELITY:
        values = paper_values(scale, s.row)
        ours = {k: values[k] for k in s.expect}
        match = all(ours[k] == v for k, v in s.expect.items())
        status = (f"differs: {s.reason}" if s.reason
                  else ("same" + (f"; {s.note}" if s.note else "")) if match
                  else "DIFFERS, no reason given")
        out.append({"setting": s.setting + (f" (row {s.row})" if s.row else ""),
                    "study": s.study, "where": s.where,
                    "ours": ", ".join(f"{k}={v!r}" for k, v in ours.items()) or "–",
                    "status": status, "match": match})
    return out


def fidelity_markdown(scale: str = "paper") -> str:
    """`fidelity(scale)` as a Markdown table (the results page's `fidelity` block)."""
    lines = [f"| setting | the study's code | file | poorvit at `{scale}` | same? |",
             "|---|---|---|---|---|"]
    for r in fidelity(scale):
        lines.append(f"| {r['setting']} | {r['study']} | `{r['where']}` | `{r['ours']}` | "
                     f"{r['status']} |".replace("`–`", "–"))
    return "\n".join(lines)
