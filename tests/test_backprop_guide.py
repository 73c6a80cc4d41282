"""docs/backprop.md runs as written and prints what it says.

Its Python blocks run in order, in one namespace. Each ``print(...)`` line promises its output in a comment (on the
same line, or alone on the next line); the printed line must be that promise or its start, followed by ":", ","
or " " and an explanation. A print without a promise fails, so that no printed value goes unchecked, and a check
that cannot fail (a comparison with an empty string, ``or True``) is refused.
"""

import os
import re

from conftest import promised_outputs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIDE = os.path.join(ROOT, "docs", "backprop.md")
ALWAYS_TRUE = re.compile(r"""!=\s*(""|'')|\bor\s+True\b""")


def python_blocks():
    with open(GUIDE) as fh:
        return re.findall(r"```python\n(.*?)```", fh.read(), flags=re.S)


def test_every_print_of_the_guide_promises_a_value_that_can_fail():
    for block in python_blocks():
        promises = promised_outputs(block)
        assert None not in promises, f"a print without a promised output in:\n{block}"
        for line in block.splitlines():
            if line.lstrip().startswith("print("):
                assert not ALWAYS_TRUE.search(line.split("#", 1)[0]), f"a check that cannot fail: {line}"


def test_the_backprop_guide_snippets_run_and_print_what_they_say(capsys):
    blocks = python_blocks()
    assert len(blocks) >= 15
    namespace = {}
    checked = 0
    for block in blocks:
        exec(compile(block, GUIDE, "exec"), namespace)
        printed = capsys.readouterr().out.splitlines()
        promises = promised_outputs(block)
        assert len(printed) == len(promises), (block, printed)
        for shown, promise in zip(printed, promises):
            shown = shown.strip()
            assert promise.startswith(shown) and (len(promise) == len(shown) or promise[len(shown)] in ":, "), (
                shown,
                promise,
            )
            checked += 1
    assert checked >= 35
