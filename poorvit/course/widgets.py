"""The one helper behind every chapter's interactive explorer (ipywidgets). Each chapter module
builds its explorers with it over a drawing function of its own.

Widgets need a running kernel, and the published book has none. So an explorer carries two views
of itself when a cell displays it: the live widget, which Jupyter and Colab show, and a PNG of its
first view (the controls' initial values), which the book shows instead: `_config.yml` drops the
widget-view type from the page (`nb_mime_priority_overrides`). One figure on each, never two."""
from __future__ import annotations

import base64
import contextlib
import io

import ipywidgets as W
import matplotlib.pyplot as plt

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class Explorer(W.interactive):
    """`ipywidgets.interactive` whose display bundle also holds a static PNG of its current view
    (`image/png`, base64) and a plain-text line naming its controls (`text/plain`)."""

    def static_view(self) -> bytes | None:
        """The view for the controls' current values as PNG bytes, drawn once more with
        `plt.show` silenced and saved as the inline backend saves a figure (its dpi, tight box);
        None when the drawing makes no figure."""
        before = set(plt.get_fignums())
        show, plt.show = plt.show, (lambda *args, **kwargs: None)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                self.f(**self.kwargs)
        finally:
            plt.show = show
        new = [plt.figure(n) for n in plt.get_fignums() if n not in before]
        if not new:
            return None
        buffer = io.BytesIO()
        new[-1].savefig(buffer, format="png", dpi=new[-1].dpi, bbox_inches="tight")
        for fig in new:
            plt.close(fig)
        return buffer.getvalue()

    def _repr_mimebundle_(self, **kwargs):
        data = super()._repr_mimebundle_(**kwargs)
        if not isinstance(data, dict):  # ipywidgets returns (data, metadata) in some versions
            return data
        controls = ", ".join(f"{name}={value!r}" for name, value in self.kwargs.items())
        data["text/plain"] = f"explorer ({controls}): interactive in Jupyter or Colab"
        png = self.static_view()
        if png is not None:
            data["image/png"] = base64.b64encode(png).decode("ascii")
        return data


def explorer(draw, **controls) -> Explorer:
    """`ipywidgets.interactive(draw, **controls)` with its output area sized for a figure, shown
    live in a notebook and as a figure of its first view on the book's page."""
    widget = Explorer(draw, **controls)
    widget.children[-1].layout.min_height = "320px"
    return widget


__all__ = ["Explorer", "explorer"]
