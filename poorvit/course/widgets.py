"""The one helper behind every chapter's interactive explorer (ipywidgets). Each chapter module
builds its explorers with it over a plotting function of its own, and also draws a static figure of
the same view, since widgets need a running kernel and the published book has none."""
from __future__ import annotations

import ipywidgets as W


def explorer(draw, **controls) -> W.Widget:
    """`ipywidgets.interactive(draw, **controls)` with its output area sized for a figure."""
    widget = W.interactive(draw, **controls)
    widget.children[-1].layout.min_height = "320px"
    return widget


__all__ = ["explorer"]
