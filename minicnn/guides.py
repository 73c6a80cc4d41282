"""python -m minicnn.guides: the guides (backprop, extending, performance, ...), which ship inside the package, so
that an installed copy has them even where the README's links to docs/ do not reach (a package index's page).

    python -m minicnn.guides             # lists the guides and where they are
    python -m minicnn.guides backprop    # prints one guide (markdown)
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources


def guides() -> dict:
    """``{name: path}`` of every guide: the markdown files of the package's ``docs`` folder (a link to the project's
    docs/ in a source checkout, a copy in an installed one)."""
    folder = resources.files("minicnn") / "docs"
    if not folder.is_dir():
        return {}
    return {
        entry.name.removesuffix(".md"): entry
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".md")
    }


def main(argv=None) -> int:
    found = guides()
    parser = argparse.ArgumentParser(
        prog="python -m minicnn.guides", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("name", nargs="?", choices=sorted(found) or None, help="the guide to print")
    args = parser.parse_args(argv)
    if not found:
        print("error: no guides found beside the package (minicnn/docs is missing from this copy)", file=sys.stderr)
        return 2
    if args.name:
        sys.stdout.write(found[args.name].read_text(encoding="utf-8"))
        return 0
    for name, path in found.items():
        print(f"{name:<14} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
