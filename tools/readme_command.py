"""Print a command that README.md shows between marker comments, so that CI runs what readers read.

    <!-- test-command -->
    ```bash
    python3 -m venv .venv && . .venv/bin/activate && ...
    ```
    <!-- /test-command -->

    python tools/readme_command.py test-command
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_command(name: str, readme: Path = README) -> str:
    """The one-line shell command in the fenced block between `<!-- name -->` and
    `<!-- /name -->`."""
    tag = re.escape(name)
    found = re.search(rf"<!-- {tag} -->\s*```\w*\n(.*?)\n```\s*<!-- /{tag} -->",
                      readme.read_text(), re.S)
    if not found:
        raise ValueError(f"{readme.name} has no block marked <!-- {name} --> ... <!-- /{name} -->")
    command = found.group(1).strip()
    if not command or "\n" in command:
        raise ValueError(f"the {name} block of {readme.name} must hold exactly one command line")
    return command


if __name__ == "__main__":
    print(readme_command(sys.argv[1]))
