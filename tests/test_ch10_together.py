"""Chapter 10 (`poorvit.course.ch10_together`): the explorer of the swept rows offers every row but
the baseline, in the order asked, and draws a row's curves beside the baseline's (the chapter's
`together/*` checks run in its notebook)."""
import matplotlib.pyplot as plt

from poorvit.course import ch10_together as ch


def _history(acc: float) -> list[dict]:
    return [{"epoch": 1, "loss": 2.0, "test_acc": acc}, {"epoch": 2, "loss": 1.5, "test_acc": acc}]


def test_row_explorer_offers_the_rows_but_the_baseline(monkeypatch):
    histories = {"whitening": _history(0.3), "baseline": _history(0.2), "cls4": _history(0.25)}
    widget = ch.row_explorer(histories, ["baseline", "cls4", "whitening"])
    assert widget.children[0].description == "row"
    assert list(widget.children[0].options) == ["cls4", "whitening"]
    assert list(ch.row_explorer(histories).children[0].options) == ["whitening", "cls4"]
    drawn = []
    monkeypatch.setattr(plt, "show", lambda: drawn.append(plt.gcf()))
    widget.children[0].value = "whitening"                    # the widget draws on a change
    lines = [ln.get_label() for ax in drawn[-1].axes for ln in ax.get_lines()]
    assert {"baseline", "whitening"} <= set(lines) and "cls4" not in lines
