"""``python -m minicnn.exercises [list | start NAME | check NAME]``: see minicnn/exercises/__init__.py."""

from __future__ import annotations

import argparse
import os
import sys

from . import EXERCISES, check, get_exercise, start
from .core import NUMERIC_TOLERANCE


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m minicnn.exercises",
        description="Exercises that grade themselves: write a backward pass in a file, then "
        "check it against minicnn's own layer and a numerical gradient.",
    )
    sub = p.add_subparsers(dest="command")
    sub.add_parser("list", help="list the exercises (the default)")
    start = sub.add_parser("start", help="write NAME.py from the exercise's template")
    start.add_argument("name", help="the exercise's name (see list)")
    start.add_argument("--dir", default=".", help="the folder to write it in (default: the current one)")
    start.add_argument("--force", action="store_true", help="overwrite the file when it exists")
    chk = sub.add_parser("check", help="check your function; exit status 0 when it passes, 1 when not")
    chk.add_argument("name", help="the exercise's name (see list)")
    chk.add_argument("--file", default=None, help="your file (default: ./NAME.py)")
    return p


def list_exercises() -> int:
    print("Exercises (write the function, then check it):")
    for name, ex in EXERCISES.items():
        print(f"  {name:<31} {ex.TITLE}")
    print("\nStart one:  python -m minicnn.exercises start dense_backward")
    print("Check it:   python -m minicnn.exercises check dense_backward")
    print(
        f"(A check compares your outputs with minicnn's own and with central differences, tolerance "
        f"{NUMERIC_TOLERANCE:.0e}.)"
    )
    return 0


def start_command(name: str, folder: str, force: bool) -> int:
    ex = get_exercise(name)
    path = start(name, folder, force)
    where = "" if os.path.abspath(folder) == os.getcwd() else f" --file {path}"
    print(
        f"wrote {path}: write {ex.FUNCTION}() in it (the docstring has the math), then run\n"
        f"  python -m minicnn.exercises check {name}{where}"
    )
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command in (None, "list"):
            return list_exercises()
        if args.command == "start":
            return start_command(args.name, args.dir, args.force)
        result = check(args.name, args.file)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(result)
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
