"""docs/extending.md runs as written: its Python blocks, in order, in one namespace, section by section.

Each ``print(...)`` line of the page promises its output in a comment (on the same line, or alone on the next line);
the printed line must be that promise or its start, followed by ":", "," or " " and an explanation. A print without
a promise fails the test, so that no printed value goes unchecked. The Numba part of section 3 skips when Numba is
absent; the Keras comparisons of sections 1 and 2 skip inside the page when Keras is absent, unless
MINICNN_REQUIRE_KERAS=1 (the CI), where they must have run.
"""

import os
import re

import pytest
from conftest import promised_outputs

os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # the page's Keras snippets use tf.GradientTape
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = os.path.join(ROOT, "docs", "extending.md")
SECTIONS = ("1. A layer", "2. An optimizer", "3. A backend kernel", "4. A data set")


def sections():
    """{section title: [python blocks]} in the page's order."""
    with open(PAGE) as fh:
        text = fh.read()
    parts = re.split(r"^## ", text, flags=re.M)[1:]
    return {part.splitlines()[0]: re.findall(r"```python\n(.*?)```", part, flags=re.S) for part in parts}


def run_block(block, namespace, capsys):
    """Execute ``block`` in ``namespace`` and check every printed line against its promise; returns the count."""
    exec(compile(block, PAGE, "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    promises = promised_outputs(block)
    assert None not in promises, f"a print without a promised output in:\n{block}"
    assert len(printed) == len(promises), (block, printed)
    for shown, promise in zip(printed, promises):
        shown = shown.strip()
        assert promise.startswith(shown) and (len(promise) == len(shown) or promise[len(shown)] in ":, "), (
            shown,
            promise,
        )
    return len(printed)


DONE = set()  # the sections that ran to the end; later ones need section 1's imports and objects


@pytest.fixture(scope="module")
def namespace():
    return {}


def require_section_1():
    if "1." not in DONE:
        pytest.skip("section 1 did not run to the end (later sections use its imports and objects)")


def section_blocks(prefix):
    return next(blocks for title, blocks in sections().items() if title.startswith(prefix))


def test_the_page_has_the_four_sections_and_every_block_is_run_here():
    found = sections()
    titles = [t for t in found if t[:1].isdigit()]
    assert [t.split(":")[0] for t in titles] == list(SECTIONS)
    # every Python block of the page sits in one of the four sections (and so is executed below)
    assert sum(len(found[t]) for t in titles) == sum(len(b) for b in found.values()) == 14


def test_layer_section_runs(namespace, capsys):
    checked = sum(run_block(b, namespace, capsys) for b in section_blocks("1."))
    assert checked == 4
    scale = namespace["scale"]
    assert scale.weight_names(trainable=False) == ["gamma", "beta"]  # frozen by the page
    if os.environ.get("MINICNN_REQUIRE_KERAS") == "1":
        assert namespace["keras"] is not None, "MINICNN_REQUIRE_KERAS=1 but the page's Keras comparison was skipped"
    DONE.add("1.")


def test_optimizer_section_runs(namespace, capsys):
    require_section_1()
    checked = sum(run_block(b, namespace, capsys) for b in section_blocks("2."))
    assert checked == 2
    assert namespace["model"].optimizer.iterations == 5


def test_kernel_section_runs(namespace, capsys):
    require_section_1()
    blocks = section_blocks("3.")
    assert "numba" not in blocks[0]  # the reference part runs everywhere
    assert run_block(blocks[0], namespace, capsys) == 1
    pytest.importorskip("numba")
    for block in blocks[1:]:
        run_block(block, namespace, capsys)
    assert namespace["leaky_relu_kernel"].signatures  # compiled: the comparison did run the Numba kernel


def test_dataset_section_runs(namespace, capsys):
    require_section_1()
    checked = sum(run_block(b, namespace, capsys) for b in section_blocks("4."))
    assert checked == 2
    assert not os.path.exists(namespace["folder"])  # the page cleans up after itself
