"""Interactive explorers (ipywidgets) for the chapters. Each returns a widget; the chapter also draws a
static figure of the same view, since widgets need a running kernel and the published book has none.

Each explorer is a thin `ipywidgets.interactive` over a plotting function in `viz` or a chapter module,
so the static figure and the widget draw exactly the same thing.
"""
from __future__ import annotations

import ipywidgets as W


def explorer(draw, **controls) -> W.Widget:
    """`ipywidgets.interactive(draw, **controls)` with its output area sized for a figure."""
    widget = W.interactive(draw, **controls)
    widget.children[-1].layout.min_height = "320px"
    return widget


__all__ = ["explorer"]


# ---- chapter 7, whitening the patch embedding --------------------------------------------------------------

def whitening_explorer(sigma) -> W.Widget:
    """A log slider for `eps`, redrawing `viz.whitening_panel(sigma, eps)`: the filters on one scale,
    the second moment of whitened patches, and the variance kept per direction."""
    import matplotlib.pyplot as plt

    from .viz import whitening_panel

    def draw(eps):
        whitening_panel(sigma, eps)
        plt.show()

    return explorer(draw, eps=W.FloatLogSlider(value=1e-2, base=10, min=-6, max=1, step=0.25, description="eps",
                                               readout_format=".1e"))


# ---- chapter 8, many class tokens --------------------------------------------------------------------------

def class_token_explorer(maps: dict, images) -> W.Widget:
    """Pick a model by its number of class tokens and one of its tokens: that token's attention on the
    images, drawn with `viz.token_maps`. maps: {n_cls: (B, n_cls, g, g)} from
    `model.class_token_attention`; images (B, 3, H, W)."""
    import matplotlib.pyplot as plt

    from .viz import token_maps

    counts = sorted(maps)

    def draw(n_cls, token):
        t = min(token, n_cls - 1)
        token_maps(images, maps[n_cls][:, t:t + 1], row_labels=[f"token {t}"],
                   suptitle=f"n_cls = {n_cls}: attention of class token {t} over the patches (last block)")
        plt.show()

    return explorer(draw, n_cls=W.Dropdown(options=counts, value=counts[-1], description="n_cls"),
                    token=W.IntSlider(value=0, min=0, max=max(counts) - 1, description="token"))


__all__ += ["whitening_explorer", "class_token_explorer"]


# ---- chapters 1-2: patch size and cost; where each token attends --------------------------------------

def patch_explorer(images, names, n_embd: int, n_cls: int = 1) -> W.Widget:
    """Chapter 1: pick an image and a patch size; see the patch grid, the token count and the attention
    cost of every patch size (`viz.patch_view`)."""
    import matplotlib.pyplot as plt

    from . import viz
    H = images.shape[-1]
    sizes = [p for p in range(1, H) if H % p == 0]

    def draw(image, patch_size):
        viz.patch_view(images[image], patch_size, n_embd, n_cls, sizes=sizes)
        plt.show()

    return explorer(draw, image=W.Dropdown(options=[(n, i) for i, n in enumerate(names)], value=0),
                    patch_size=W.SelectionSlider(options=sizes, value=4 if 4 in sizes else sizes[0],
                                                 description="patch size"))


def attention_explorer(images, maps, n_cls: int = 1) -> W.Widget:
    """Chapter 2: pick an image, a block, a head (or their mean) and a query token (0 is the class token);
    see where that token attends. `maps`: (n_layer, B, n_head, T, T) from `ViT.attention_maps`."""
    import matplotlib.pyplot as plt

    from . import viz
    L, B, H, T, _ = maps.shape
    g = int(round((T - n_cls) ** 0.5))
    p = images.shape[-1] // g

    def draw(image, block, head, query):
        m = maps[block, image]
        a = m.mean(0) if head == "mean" else m[head]
        ax = viz.attention_on_image(images[image], a[query, n_cls:], title=(
            f"block {block}, {'mean of heads' if head == 'mean' else f'head {head}'}, query "
            + ("class token" if query < n_cls else f"patch {query - n_cls}")))
        if query >= n_cls:           # outline the query patch
            r, c = divmod(query - n_cls, g)
            ax.add_patch(plt.Rectangle((c * p - 0.5, r * p - 0.5), p, p, fill=False, ec="cyan", lw=1.5))
        ax.figure.set_size_inches(3.6, 3.6)
        plt.show()

    return explorer(draw, image=W.IntSlider(value=0, min=0, max=B - 1),
                    block=W.IntSlider(value=L - 1, min=0, max=L - 1),
                    head=W.Dropdown(options=["mean", *range(H)], value="mean"),
                    query=W.IntSlider(value=0, min=0, max=T - 1))


__all__ += ["patch_explorer", "attention_explorer"]


# ---- chapter 6, attention variants ------------------------------------------------------------------------

def attention_variant_explorer(cfg) -> W.Widget:
    """Heads, key/value heads and latent ranks of `cfg`'s attention -> `viz.attention_budget`: who reads
    which keys and values, and one block's parameters and FLOPs beside MHA at the same width. A rank of 0
    turns that latent off; a combination `ViTConfig` rejects is shown with its error message."""
    import matplotlib.pyplot as plt

    from .config import with_overrides
    from .viz import attention_budget

    C = cfg.n_embd
    heads = [h for h in range(1, C + 1) if C % h == 0 and C // h >= 4]

    def draw(n_head, n_kv_head, q_rank, kv_rank):
        try:
            c = with_overrides(cfg, n_head=n_head, n_kv_head=n_kv_head, q_rank=q_rank, kv_rank=kv_rank, lowrank="")
        except ValueError as err:
            print(err)
            return
        attention_budget(c)
        plt.show()

    step = max(1, C // 24)
    return explorer(draw, n_head=W.Dropdown(options=heads, value=cfg.n_head, description="n_head"),
                    n_kv_head=W.Dropdown(options=list(range(1, max(heads) + 1)), value=cfg.kv_heads,
                                         description="n_kv_head"),
                    q_rank=W.IntSlider(value=0, min=0, max=C - 1, step=step, description="q_rank"),
                    kv_rank=W.IntSlider(value=0, min=0, max=C - 1, step=step, description="kv_rank"))


__all__ += ["attention_variant_explorer"]


# ---- chapter 9, profiling a training step ----------------------------------------------------------------

def lever_explorer(times: list, per_image: bool = True) -> W.Widget:
    """Pick a measured setting (a `profile.StepTimes` from `profile.measure_levers`): its phases next to the
    baseline's (the first), drawn with `viz.phase_bars`, per image so that batch sizes compare."""
    import matplotlib.pyplot as plt

    from .viz import phase_bars

    def parts(t):
        return {k: v / t.batch_size for k, v in t.parts_ms.items()} if per_image else t.parts_ms

    def draw(setting, shares):
        chosen = times[setting]
        phase_bars({times[0].label: parts(times[0]), chosen.label: parts(chosen)}, shares=shares,
                   unit="ms per image" if per_image else "ms per step",
                   title=f"{chosen.label}: {chosen.images_per_s / times[0].images_per_s:.2f}x the baseline's images/s")
        plt.show()

    return explorer(draw, setting=W.Dropdown(options=[(t.label, i) for i, t in enumerate(times)],
                                             value=min(1, len(times) - 1), description="setting"),
                    shares=W.Checkbox(value=False, description="as % of the step"))


__all__ += ["lever_explorer"]


# ---- chapters 4 and 5, augmentation and optimizers --------------------------------------------------------

def augmentation_explorer(images, labels, classes, n: int = 16) -> W.Widget:
    """Pick an image, an op of the study's pipeline and a seed: `n` random draws of that op on that image
    (`viz.augment_views`). images uint8 (B, 3, H, W); Mixup/CutMix partners are the other images."""
    import matplotlib.pyplot as plt

    from .augment import SINGLE_OPS
    from .viz import augment_views

    def draw(image, op, seed):
        augment_views(images[image], int(labels[image]), op, images, labels, classes, n=n, seed=seed)
        plt.show()

    return explorer(draw, image=W.IntSlider(value=0, min=0, max=len(images) - 1, description="image"),
                    op=W.Dropdown(options=list(SINGLE_OPS), value="autoaugment", description="op"),
                    seed=W.IntSlider(value=0, min=0, max=20, description="seed"))


def optimizer_explorer() -> W.Widget:
    """Learning rates of AdamW and Lion (log sliders), steps and gradient noise: their paths on a valley
    (`viz.optimizer_paths`)."""
    import matplotlib.pyplot as plt

    from .viz import optimizer_paths

    def draw(lr_adamw, lr_lion, steps, noise):
        optimizer_paths(lr_adamw, lr_lion, steps, noise)
        plt.show()

    log = dict(base=10, min=-3, max=0, step=0.125, readout_format=".3f")
    return explorer(draw, lr_adamw=W.FloatLogSlider(value=0.1, description="AdamW lr", **log),
                    lr_lion=W.FloatLogSlider(value=0.1, description="Lion lr", **log),
                    steps=W.IntSlider(value=60, min=5, max=200, step=5, description="steps"),
                    noise=W.FloatSlider(value=0.0, min=0.0, max=5.0, step=0.25, description="grad noise"))


__all__ += ["augmentation_explorer", "optimizer_explorer"]
