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
