"""The notebooks in notebooks/ run from a clean kernel and their own checks pass, so they never go stale.

Each notebook is executed with nbclient in a fresh ``python3`` kernel (ipykernel), from the notebooks/ folder, with
this project first on the kernel's PYTHONPATH; any error (an exception, a failed ``assert`` on a key number) fails
the test. Committed notebooks carry no outputs. Skips when nbclient/ipykernel are absent (``pip install '.[test]'``,
which .ci/run installs).
"""

import base64
import glob
import os

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat not installed; pip install '.[test]'")
nbclient = pytest.importorskip("nbclient", reason="nbclient not installed; pip install '.[test]'")
pytest.importorskip("ipykernel", reason="ipykernel not installed; pip install '.[test]'")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = os.path.join(ROOT, "notebooks")
EXPECTED = {"backprop_by_hand.ipynb", "gradient_checks.ipynb", "cpu_vs_gpu_kernels.ipynb", "pytorch_side_by_side.ipynb"}
CELL_TIMEOUT_S = 600  # the kernel-timing notebook compiles Numba kernels on a cold cache


def notebook_paths():
    return sorted(glob.glob(os.path.join(NOTEBOOKS, "*.ipynb")))


def test_the_notebooks_are_there():
    assert EXPECTED <= {os.path.basename(p) for p in notebook_paths()}


@pytest.mark.parametrize("path", notebook_paths(), ids=os.path.basename)
def test_committed_notebooks_have_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path}: cell {i} has outputs; clear them"


def pictures(nb):
    """The PNG images among the outputs of an executed notebook (each a decodable PNG)."""
    found = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            png = output.get("data", {}).get("image/png")
            if png:
                data = base64.b64decode(png)
                assert data[:8] == b"\x89PNG\r\n\x1a\n"
                found.append(data)
    return found


@pytest.mark.parametrize("path", notebook_paths(), ids=os.path.basename)
def test_notebook_runs_from_a_clean_kernel(path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the notebooks draw inline (%matplotlib inline)
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": NOTEBOOKS}}
    )
    client.execute()  # raises CellExecutionError, naming the cell, on any error or failed assert
    assert len(pictures(nb)) >= 1, f"{path}: no picture was drawn"
    text = "".join(o.get("text", "") for cell in nb.cells for o in cell.get("outputs", []))
    if os.environ.get("MINICNN_REQUIRE_TORCH") == "1":
        assert "PyTorch is not installed" not in text, "PyTorch must be installed here (MINICNN_REQUIRE_TORCH=1)"
