"""Check the built book: _build/html/index.html, a page for every entry of _toc.yml, executed output
(a myst-nb `cell_output` block) on every chapter page, and no Markdown table left as text (a
`|---|` row in a paragraph: a table printed by a cell that did not render). Exit 1 with the list of
what is wrong."""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from tidy_notebooks import toc_files  # noqa: E402

HTML = ROOT / "_build" / "html"

wrong = [] if (HTML / "index.html").is_file() else ["_build/html/index.html is missing"]
for page in toc_files():
    html = HTML / f"{page}.html"
    text = html.read_text(encoding="utf-8") if html.is_file() else ""
    if not html.is_file():
        wrong.append(f"{html.relative_to(ROOT)} is missing")
    elif page.startswith("notebooks/") and 'class="cell_output' not in text:
        wrong.append(f"{html.relative_to(ROOT)} shows no executed output")
    elif re.search(r"<p>[^<]*\|\s*:?-{3,}:?\s*\|", text):
        wrong.append(f"{html.relative_to(ROOT)} shows a Markdown table as text, not as a table")
    else:
        print(f"ok  {html.relative_to(ROOT)}")
print("\n".join(wrong) or f"the book is complete: {len(toc_files())} pages")
sys.exit(1 if wrong else 0)
