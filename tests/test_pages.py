"""The browser check of the built book (.ci/check_pages.py): small hand-written pages shaped like
the book's (a sphinx-book-theme article 688 px wide at a 1280 px window), each reintroducing one
fault a reader would see, are each caught as that fault, and a clean page passes."""
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / ".ci"))
import check_pages  # noqa: E402

WHY = check_pages.missing()
if WHY:
    pytest.skip(f"the browser check needs Chromium and playwright: {WHY}", allow_module_level=True)

PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><style>
body {{ margin: 0; font-family: sans-serif; }}
article.bd-article {{ width: 688px; margin-left: 288px; }}
pre {{ overflow: auto; font-size: 14px; padding: 16px;
       font-family: ui-monospace, Menlo, Consolas, "DejaVu Sans Mono", monospace; }}
img {{ max-width: 100%; height: auto; }}
</style></head><body><nav>SIDEBAR_TEXT_IS_NOT_READ /home/nav/</nav>
<article class="bd-article">{body}</article></body></html>"""

CLEAN = """<h1>A chapter</h1><p>Prose with <code>POORVIT_DATA</code> and a number, 0.42.</p>
<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>
<div class="cell"><div class="cell_input"><div class="highlight"><pre>x = torch.zeros(8, 3, 32, 32)
# (B, C, H, W)</pre></div></div>
<div class="cell_output"><pre>saved in runs/abc123 (PATH_LIKE_IN_OUTPUT is code, not prose)</pre>
<img src="figure-600.png"></div></div>"""

FAULTS = {
    "table": "<p>| model | acc |\n|---|---|\n| ViT | 0.42 |</p>",
    "code": '<div class="cell_input"><div class="highlight"><pre>'
            + "y = model(x)  # " + "a shape comment that runs on " * 5 + "</pre></div></div>",
    "widget": '<div class="cell_output"><script type="application/vnd.jupyter.widget-view+json">'
              '{"model_id": "6a21b8", "version_major": 2, "version_minor": 0}</script></div>',
    "placeholder": "<p>Time per chapter: TIMES_ROWS</p>",
    "path": '<div class="cell_output"><pre>loaded /tmp/ci/main/runs/334844bdb412</pre></div>',
    "figure": '<div class="cell_output"><img src="figure-1600.png"></div>',
    "doubled": '<div class="cell_output"><div class="output stream"><pre>✓ attention/gqa: right'
               '</pre></div><div class="output text_plain"><pre>\'✓ attention/gqa: right\''
               '</pre></div></div>',
}


def png(path: Path, width: int, height: int = 40) -> None:
    """A grey PNG of `width` x `height` pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height,
                                                                      8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def browser():
    with check_pages.Browser() as b:
        yield b


@pytest.fixture
def faults_of(tmp_path, browser):
    png(tmp_path / "figure-600.png", 600)
    png(tmp_path / "figure-1600.png", 1600)

    def faults_of(body: str) -> list[tuple[str, str]]:
        page = tmp_path / "page.html"
        page.write_text(PAGE.format(body=body), encoding="utf-8")
        return browser.faults(page.as_uri())
    return faults_of


def test_a_clean_page_passes(faults_of):
    assert faults_of(CLEAN) == []


@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_each_fault_is_caught_as_what_it_is(faults_of, kind):
    found = faults_of(CLEAN + FAULTS[kind])
    assert [k for k, _ in found] == [kind], found


def test_a_widget_shown_as_its_text_is_a_widget_fault(faults_of):
    body = ('<div class="cell_output"><div class="output text_plain"><pre>interactive(children='
            "(IntSlider(value=3), Output()))</pre></div></div>")
    assert [k for k, _ in faults_of(CLEAN + body)] == ["widget"]


def test_a_raw_glue_role_is_a_placeholder_and_what_it_says_is_named(faults_of):
    found = faults_of(CLEAN + "<p>The baseline reaches {glue:text}`ch2_acc` accuracy.</p>")
    assert found == [("placeholder", "{glue:text}`ch2_acc` accuracy.")]


def test_a_figure_shown_at_just_over_half_its_width_passes(faults_of, tmp_path):
    png(tmp_path / "figure-1370.png", 1370)   # 688 px on the page: 50.2 %
    assert faults_of(CLEAN + '<div class="cell_output"><img src="figure-1370.png"></div>') == []


def test_the_book_stylesheet_fits_a_90_character_line_in_the_column(faults_of):
    """_static/pages.css sets the code size: 90 characters fit the text column (684 px) and a
    folded solution (666 px); 100 do not."""
    css = (ROOT / "_static" / "pages.css").read_text()
    block = '<div style="width: {w}px"><div class="highlight"><pre>{line}</pre></div></div>'

    def faults(n: int, width: int):
        return faults_of(f"<style>{css}</style>" + block.format(w=width, line="x" * n))
    assert faults(90, 684) == [] and faults(90, 666) == []
    assert [k for k, _ in faults(100, 684)] == ["code"]


def test_the_check_prints_a_line_per_page_saves_chapter_screenshots_and_fails_on_a_fault(
        tmp_path):
    html = tmp_path / "html"
    (html / "notebooks").mkdir(parents=True)
    png(html / "notebooks" / "figure-600.png", 600)
    (html / "notebooks" / "01_clean.html").write_text(PAGE.format(body=CLEAN), encoding="utf-8")
    (html / "notebooks" / "02_bad.html").write_text(PAGE.format(body=CLEAN + FAULTS["table"]),
                                                    encoding="utf-8")
    shots = tmp_path / "shots"

    def check(*pages):   # its own process: this one's Playwright already runs the module's browser
        return subprocess.run([sys.executable, str(ROOT / ".ci" / "check_pages.py"), "--html",
                               str(html), "--screenshots", str(shots), *pages],
                              capture_output=True, text=True, timeout=120)
    assert check("notebooks/01_clean").returncode == 0
    assert sorted(p.name for p in shots.iterdir()) == ["01_clean-screen.png", "01_clean.png"]
    run = check("notebooks/01_clean", "notebooks/02_bad", "notebooks/03_gone")
    lines = run.stdout.splitlines()
    assert run.returncode == 1 and len(lines) == 5, run.stdout + run.stderr
    assert lines[0].startswith("ok   notebooks/01_clean")
    assert lines[1].startswith("FAIL notebooks/02_bad: 1 table") and "table" in lines[2]
    assert lines[3].startswith("FAIL notebooks/03_gone") and "1 missing" in lines[4]
