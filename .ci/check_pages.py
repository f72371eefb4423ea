"""Read the built book as a student would: headless Chromium (Debian's /usr/bin/chromium, driven
by Playwright for Python) loads every page of _toc.yml from _build/html at a 1280 px wide window
and fails on what a reader would see broken:

  table        a Markdown table left as text (a `|---|` row in a paragraph), not a <table>
  code         a code block (`pre`) wider than its box: the line is cut off on the right
  widget       an empty widget output: a widget view with nothing visible (no kernel on the page),
               or a widget shown as its text (`interactive(children=...)`)
  placeholder  an ALL_CAPS_WITH_UNDERSCORES token or a raw `{glue:` in the prose (not in code)
  path         a path of the machine that built the book (its temporary folder, its home, the
               folder the repository sits in) in the prose or an output
  figure       a figure of a cell output shown at under half its natural width (its text unreadable)
  doubled      a cell showing the same output twice (a printed line echoed again as its result)

It saves a screenshot of every chapter (notebooks/) in _build/screenshots/, the whole page and
its first screen (NN_name.png, NN_name-screen.png; README's picture is chapter 6's first screen),
and prints one line per page, then every fault. Exit 1 when any page has a fault.

    python .ci/check_pages.py                                  # the book in _build/html
    python .ci/check_pages.py --html /path/to/_build/html notebooks/06_attention_variants
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
# headless, and nothing that reaches for the network (a closed network makes lookups hang)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WIDTH, HEIGHT = 1280, 900
KINDS = ("table", "code", "widget", "placeholder", "path", "figure", "doubled")

# Runs in the page; returns [[kind, detail], ...]. Only the article is read (not the sidebars).
FAULTS_JS = r"""
async (machineRoots) => {
  await Promise.all([...document.images].map(i => i.complete ? null :
    new Promise(done => { i.addEventListener('load', done); i.addEventListener('error', done); })));
  const root = document.querySelector('article.bd-article') || document.querySelector('main')
               || document.body;
  const faults = [];
  const add = (kind, detail) =>
    faults.push([kind, detail.replace(/\s+/g, ' ').trim().slice(0, 110)]);
  const shown = e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  // the text of `el` without what `skip` matches (code, scripts, ...)
  const textOf = (el, skip) => {
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    const parts = [];
    for (let n = walker.nextNode(); n; n = walker.nextNode())
      if (!n.parentElement.closest(skip)) parts.push(n.nodeValue);
    return parts.join('');
  };
  const CODE = 'pre, code, kbd, script, style, .highlight, .math, mjx-container';
  // table: a Markdown table that rendered as a paragraph of pipes
  for (const p of root.querySelectorAll('p')) {
    const text = textOf(p, CODE);
    if (/\|\s*:?-{3,}:?\s*\|/.test(text)) add('table', text);
  }
  // code: a pre wider than its box (one not laid out, display: none, has no box; a folded
  // solution's code is measured as it shows when opened)
  for (const pre of root.querySelectorAll('pre')) {
    if (pre.clientWidth > 0 && pre.scrollWidth > pre.clientWidth + 1) {
      const line = pre.textContent.split('\n').reduce((a, b) => b.length > a.length ? b : a, '');
      add('code', `${pre.scrollWidth} px in a ${pre.clientWidth} px block, ` +
                  `${line.length} characters: ${line.trim()}`);
    }
  }
  // widget: a widget view whose output shows nothing
  const views = root.querySelectorAll(
    'script[type="application/vnd.jupyter.widget-view+json"], .jupyter-widgets, .widget-output');
  const seen = new Set();
  for (const view of views) {
    const box = view.closest('.cell_output, .output') || view.parentElement;
    if (seen.has(box)) continue;
    seen.add(box);
    const text = textOf(box, 'script, style').trim();
    const media = [...box.querySelectorAll('img, svg, canvas, video, iframe')].some(shown);
    if (!text && !media) add('widget', 'a widget output with nothing visible on the page');
  }
  // ... or a widget's text stand-in: a widget displayed without a static view shows its repr
  for (const out of root.querySelectorAll('.cell_output .output')) {
    const text = out.textContent.trim();
    if (/^(interactive|[A-Z]\w*)\((children|value|options|layout|description)=/.test(text))
      add('widget', `a widget shown as its text: ${text}`);
  }
  // placeholder: ALL_CAPS_WITH_UNDERSCORES or a raw {glue: in the prose (code may name both)
  const prose = textOf(root, CODE);
  for (const m of new Set(prose.match(/\b[A-Z][A-Z0-9]+(?:_[A-Z0-9]+)+\b/g) || []))
    add('placeholder', m);
  const at = prose.indexOf('{glue:');
  if (at >= 0) add('placeholder', prose.slice(at, at + 60));
  const shownText = textOf(root, '.cell_input, script, style');
  // path: a machine path anywhere but in the code cells' source
  for (const dir of machineRoots) {
    const at = shownText.indexOf(dir + '/');
    if (at >= 0) add('path', shownText.slice(at, at + 60).split(/\s/)[0]);
  }
  // doubled: one cell showing the same output twice (a printed line and the same value echoed as
  // the cell's result, for want of a `;`)
  for (const cell of root.querySelectorAll('.cell_output')) {
    const keys = new Set();
    for (const out of cell.querySelectorAll(':scope > .output')) {
      const img = out.querySelector('img');
      const key = img ? img.getAttribute('src')
                      : out.textContent.trim().replace(/^(['"])([\s\S]*)\1$/, '$2').trim();
      if (key && keys.has(key)) add('doubled', key);
      keys.add(key);
    }
  }
  // figure: an image of a cell output shown at under half its natural width
  for (const img of root.querySelectorAll('.cell_output img, .output img')) {
    const w = img.getBoundingClientRect().width;
    if (img.naturalWidth > 0 && w < img.naturalWidth / 2)
      add('figure', `${img.getAttribute('src').split('/').pop().slice(0, 16)}: ` +
                    `${Math.round(w)} px wide on the page, ${img.naturalWidth} px natural ` +
                    `(${(img.naturalWidth / 100).toFixed(1)} in at 100 dpi)`);
  }
  return faults;
}
"""


class Browser:
    """One headless Chromium page at WIDTH x HEIGHT; requests that leave file:// are refused
    (the book's pages load no third-party scripts, and the network may be closed)."""

    def __init__(self, width: int = WIDTH, height: int = HEIGHT):
        from playwright.sync_api import sync_playwright

        self._profile = tempfile.TemporaryDirectory(prefix="check-pages-")
        self._playwright = sync_playwright().start()
        self.context = self._playwright.chromium.launch_persistent_context(
            self._profile.name, executable_path=CHROMIUM, args=FLAGS, headless=True,
            viewport={"width": width, "height": height})
        self.context.route("**/*", lambda route: route.continue_()
                           if route.request.url.startswith(("file:", "data:")) else route.abort())
        self.page = self.context.new_page()

    def faults(self, url: str) -> list[tuple[str, str]]:
        """The faults of the page at `url`, as (kind, detail)."""
        self.page.goto(url, wait_until="load", timeout=60_000)
        return [tuple(f) for f in self.page.evaluate(FAULTS_JS, machine_roots())]

    def screenshot(self, path: Path) -> None:
        """The whole page in `path`, and its first screen (what a reader sees on opening it, the
        README's picture) beside it as `<name>-screen.png`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=True)
        self.page.screenshot(path=str(path.with_name(f"{path.stem}-screen.png")))

    def close(self) -> None:
        self.context.close()
        self._playwright.stop()
        self._profile.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def machine_roots() -> list[str]:
    """The folders of the machine that builds the book, which no page should show: the temporary
    folder, the home folder and the folder the repository sits in (not "/" itself)."""
    roots = {tempfile.gettempdir(), str(Path.home()), str(ROOT.parent)}
    return sorted(r.rstrip("/") for r in roots if r.rstrip("/"))


def shown(path: Path) -> str:
    """`path` relative to the repository when it is inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def missing() -> str | None:
    """Why the check cannot run here (no Chromium, no playwright), or None."""
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM} (Debian: apt-get install -y chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -r requirements.txt)"
    return None


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(ROOT / "tools"))
    from tidy_notebooks import toc_files

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", help="pages as in _toc.yml (default: all of them)")
    parser.add_argument("--html", type=Path, default=ROOT / "_build" / "html",
                        help="the built book (default: _build/html)")
    parser.add_argument("--screenshots", type=Path, default=None,
                        help="where the chapters' screenshots go (default: <html>/../screenshots)")
    parser.add_argument("--width", type=int, default=WIDTH, help="window width in px (1280)")
    args = parser.parse_args(argv)
    why = missing()
    if why:
        print(f"check_pages: cannot run: {why}", file=sys.stderr)
        return 2
    html = args.html.resolve()
    shots = (args.screenshots or html.parent / "screenshots").resolve()
    pages = args.pages or toc_files()
    counts: dict[str, collections.Counter] = {}
    start = time.perf_counter()
    with Browser(width=args.width) as browser:
        for page in pages:
            file = html / f"{page}.html"
            if not file.is_file():
                counts[page] = collections.Counter(missing=1)
                print(f"FAIL {page}: {file} is missing")
                continue
            found = browser.faults(file.as_uri())
            counts[page] = collections.Counter(kind for kind, _ in found)
            shot = ""
            if page.startswith("notebooks/"):
                target = shots / f"{Path(page).name}.png"
                browser.screenshot(target)
                shot = f"  screenshot {shown(target)}"
            summary = ", ".join(f"{n} {k}" for k, n in sorted(counts[page].items()))
            print(f"{'FAIL' if found else 'ok  '} {page}{': ' + summary if found else ''}{shot}")
            for kind, detail in found:
                print(f"       {kind:<11} {detail}")
    total = sum(counts.values(), collections.Counter())
    print(f"{len(pages)} pages at {args.width} px in {time.perf_counter() - start:.0f} s: "
          + (", ".join(f"{n} {k}" for k, n in sorted(total.items())) or "no faults"))
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
