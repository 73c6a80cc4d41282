"""Exercises that grade themselves: the checker passes right answers, names typical slips, and its command works.

The learners' files below are written as a learner would write them (text in a file, loaded by path), so the
tests go through the same loader as ``python -m minicnn.exercises check``."""

import os
import subprocess
import sys
import textwrap

import pytest

from minicnn.exercises import EXERCISES, check
from minicnn.exercises.core import compare, run_checks

SOLUTIONS = {
    "dense_backward": """
        def dense_backward(x, W, dZ):
            return x.T @ dZ, dZ.sum(axis=0), dZ @ W.T
    """,
    "softmax_crossentropy_backward": """
        def softmax_crossentropy_backward(z, y):
            e = np.exp(z - z.max(axis=1, keepdims=True))
            return (e / e.sum(axis=1, keepdims=True) - y) / len(z)
    """,
    "maxpool_backward": """
        def maxpool_backward(x, dY, P):
            dX = np.zeros_like(x)
            N, OH, OW, C = dY.shape
            for n, i, j, c in np.ndindex(N, OH, OW, C):
                k = np.argmax(x[n, i*P:(i+1)*P, j*P:(j+1)*P, c])
                dX[n, i*P + k // P, j*P + k % P, c] = dY[n, i, j, c]
            return dX
    """,
    "avgpool_backward": """
        def avgpool_backward(dY, x_shape, P):
            dX = np.zeros(x_shape)
            N, OH, OW, C = dY.shape
            share = np.repeat(np.repeat(dY, P, axis=1), P, axis=2) / (P * P)
            dX[:, :OH*P, :OW*P, :] = share
            return dX
    """,
    "col2im": """
        def col2im(dcols, x_shape, K, S):
            N, H, W, C = x_shape
            OH, OW = (H - K) // S + 1, (W - K) // S + 1
            rows = dcols.reshape(N, OH, OW, K, K, C)
            dX = np.zeros(x_shape)
            for i in range(K):
                for j in range(K):
                    dX[:, i:i + S*(OH-1) + 1:S, j:j + S*(OW-1) + 1:S, :] += rows[:, :, :, i, j, :]
            return dX
    """,
    "conv2d_weight_gradient": """
        def conv2d_weight_gradient(x, dZ, K):
            N, OH, OW, F = dZ.shape
            dW = np.zeros((K, K, x.shape[-1], F))
            for i in range(K):
                for j in range(K):
                    patch = x[:, i:i + OH, j:j + OW, :].reshape(-1, x.shape[-1])
                    dW[i, j] = patch.T @ dZ.reshape(-1, F)
            return dW, dZ.sum(axis=(0, 1, 2))
    """,
}


def _write(tmp_path, name, body):
    path = tmp_path / f"{name}.py"
    path.write_text("import numpy as np\n\n" + textwrap.dedent(body))
    return path


@pytest.mark.parametrize("name", list(EXERCISES))
def test_the_checker_passes_a_right_answer(tmp_path, name):
    result = check(name, _write(tmp_path, name, SOLUTIONS[name]))
    assert result.passed, str(result)
    assert "PASSED" in result.lines[-1]


@pytest.mark.parametrize("name", list(EXERCISES))
def test_the_exercise_reference_passes_and_every_listed_slip_is_caught_and_named(name):
    ex = EXERCISES[name]
    assert run_checks(ex, ex.reference).passed
    for sentence, mistake in ex.MISTAKES:
        result = run_checks(ex, mistake)
        assert not result.passed and f"Likely slip: {sentence}" in str(result), (sentence, str(result))


# (exercise, a learner's wrong body, sentences the diagnosis must contain)
SLIPS = [
    (
        "dense_backward",
        """
        def dense_backward(x, W, dZ):
            return dZ.T @ x, dZ.sum(axis=0), dZ @ W.T          # transposed product
     """,
        [
            "dW has shape (5, 3) but should have shape (3, 5) (the shape of W)",
            "is the transposed shape",
            "Likely slip: dW = dZ^T @ x",
        ],
    ),
    (
        "dense_backward",
        """
        def dense_backward(x, W, dZ):
            return x.T @ dZ, dZ.mean(axis=0), dZ @ W.T        # mean instead of sum
     """,
        ["every entry of db is 0.25 times the right value", "(1/4)", "Likely slip: db is the MEAN"],
    ),
    (
        "softmax_crossentropy_backward",
        """
        def softmax_crossentropy_backward(z, y):
            p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
            return p - y                                       # the 1/N is missing
     """,
        ["off by a constant factor of 4", "Likely slip: the 1/N of the mean is missing"],
    ),
    (
        "maxpool_backward",
        """
        def maxpool_backward(x, dY, P):                       # routes to the LAST maximum on ties
            dX = np.zeros_like(x)
            for n, i, j, c in np.ndindex(*dY.shape):
                win = x[n, i*P:(i+1)*P, j*P:(j+1)*P, c].ravel()
                k = len(win) - 1 - np.argmax(win[::-1])
                dX[n, i*P + k // P, j*P + k % P, c] = dY[n, i, j, c]
            return dX
     """,
        [
            "case 4 of 4",
            "Likely slip: the gradient went to the LAST maximum",
            "its first maximum is x[0, 0, 0, 0] = 0; your gradient went to x[0, 1, 1, 0]",
        ],
    ),
    (
        "maxpool_backward",
        """
        def maxpool_backward(x, dY, P):                       # row and column of the winner swapped
            dX = np.zeros_like(x)
            for n, i, j, c in np.ndindex(*dY.shape):
                k = np.argmax(x[n, i*P:(i+1)*P, j*P:(j+1)*P, c])
                dX[n, i*P + k % P, j*P + k // P, c] = dY[n, i, j, c]
            return dX
     """,
        [
            "case 1 of 4",
            "Likely slip: row and column inside the window are swapped",
            "its first maximum is",
            "against the numerical gradient",
            "too large",
        ],
    ),
    (
        "avgpool_backward",
        """
        def avgpool_backward(dY, x_shape, P):
            dX = np.zeros(x_shape)
            OH, OW = dY.shape[1:3]
            dX[:, :OH*P, :OW*P, :] = np.repeat(np.repeat(dY, P, axis=1), P, axis=2)   # not divided by P * P
            return dX
     """,
        ["every entry of dX is 4 times the right value", "Likely slip: each cell got the whole dY"],
    ),
    (
        "col2im",
        """
        def col2im(dcols, x_shape, K, S):
            N, H, W, C = x_shape
            OH, OW = (H - K) // S + 1, (W - K) // S + 1
            rows = dcols.reshape(N, OH, OW, K, K, C)
            dX = np.zeros(x_shape)
            for a in range(OH):
                for b in range(OW):
                    dX[:, a*S:a*S + K, b*S:b*S + K, :] = rows[:, a, b]     # overwrites instead of adding
            return dX
     """,
        ["entries of dX are wrong, for example:", "dX[0, 0, 1, 0] is", "Likely slip: pixels covered by several"],
    ),
    (
        "conv2d_weight_gradient",
        """
        def conv2d_weight_gradient(x, dZ, K):                 # a true convolution: the kernel comes out flipped
            N, OH, OW, F = dZ.shape
            dW = np.zeros((K, K, x.shape[-1], F))
            for i in range(K):
                for j in range(K):
                    dW[K - 1 - i, K - 1 - j] = np.einsum("nhwc,nhwf->cf", x[:, i:i + OH, j:j + OW], dZ)
            return dW, dZ.sum(axis=(0, 1, 2))
     """,
        [
            "Likely slip: the kernel gradient is flipped",
            "entries of dW are wrong",
            "dW against the numerical",
            "too large",
        ],
    ),
]


@pytest.mark.parametrize("name, body, diagnosis", SLIPS, ids=[f"{s[0]}-{k}" for k, s in enumerate(SLIPS)])
def test_a_typical_slip_fails_with_its_diagnosis(tmp_path, name, body, diagnosis):
    result = check(name, _write(tmp_path, name, body))
    assert not result.passed
    for sentence in diagnosis:
        assert sentence in str(result), (sentence, str(result))


def test_compare_names_the_entry_and_the_factor():
    import numpy as np

    want = np.array([[1.0, 2.0], [0.31, 4.0]])
    got = want.copy()
    got[1, 0] = 0.62
    ((head, entry),) = [compare("dW", got, want)]
    assert head == "1 of 4 entries of dW are wrong, for example:"
    assert entry.strip() == "dW[1, 0] is 0.62 but should be 0.31: off by a factor of 2"
    assert compare("dW", want, want) == []
    assert compare("dW", want * -1, want)[0].endswith("opposite sign: check the order of the subtraction.")


def test_a_float32_answer_is_told_to_keep_float64():
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((6, 50)), rng.standard_normal((50, 4))
    computed_in_float32 = a.astype(np.float32) @ b.astype(np.float32)  # rounding errors add up past 1e-7
    (sentence,) = compare("dX", computed_in_float32, a @ b)
    assert sentence.startswith("dX is float32: its values are right to float32's precision")


def test_a_learner_error_is_shown_with_its_line(tmp_path):
    result = check(
        "dense_backward",
        _write(
            tmp_path,
            "dense_backward",
            """
        def dense_backward(x, W, dZ):
            return x @ dZ, dZ.sum(axis=0), dZ @ W.T
    """,
        ),
    )
    assert not result.passed
    assert "raised ValueError" in str(result) and "return x @ dZ" in str(result)


def test_a_wrong_number_of_outputs_is_named(tmp_path):
    result = check(
        "dense_backward",
        _write(
            tmp_path,
            "dense_backward",
            """
        def dense_backward(x, W, dZ):
            return x.T @ dZ
    """,
        ),
    )
    assert "dense_backward() returned a ndarray: return the 3 arrays (dW, db, dX) as a tuple." in str(result)


def _cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "minicnn.exercises", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=os.environ,
        timeout=120,
    )


def test_the_command_lists_starts_and_checks(tmp_path):
    listed = _cli(cwd=tmp_path)
    assert listed.returncode == 0 and all(name in listed.stdout for name in EXERCISES)
    started = _cli("start", "dense_backward", "--dir", "work", cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    path = tmp_path / "work" / "dense_backward.py"
    text = path.read_text()
    assert "def dense_backward(x, W, dZ):" in text and "raise NotImplementedError" in text and "dW = dL/dW" in text
    again = _cli("start", "dense_backward", "--dir", "work", cwd=tmp_path)
    assert again.returncode == 1 and "exists already" in again.stderr and path.read_text() == text
    untouched = _cli("check", "dense_backward", "--file", str(path), cwd=tmp_path)
    assert untouched.returncode == 1
    assert "raises NotImplementedError: it is not written yet" in untouched.stdout
    path.write_text("import numpy as np\n" + textwrap.dedent(SOLUTIONS["dense_backward"]))
    solved = _cli("check", "dense_backward", "--file", str(path), cwd=tmp_path)
    assert solved.returncode == 0 and "PASSED" in solved.stdout, solved.stdout


def test_the_command_says_what_to_do_when_the_file_or_exercise_is_missing(tmp_path):
    missing = _cli("check", "col2im", cwd=tmp_path)
    assert missing.returncode == 1 and "python -m minicnn.exercises start col2im" in missing.stderr
    unknown = _cli("check", "conv_backward", cwd=tmp_path)
    assert unknown.returncode == 1 and "no exercise named 'conv_backward'" in unknown.stderr


def test_the_guides_python_snippet_runs_and_prints_what_it_says(tmp_path, monkeypatch, capsys):
    import re

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    text = open(os.path.join(root, "docs", "exercises.md")).read()
    (block,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "docs/exercises.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    promised = [line.split("# ", 1)[1] for line in block.splitlines() if line.startswith("print(")]
    assert printed == promised
    assert (tmp_path / "my_exercises" / "dense_backward.py").exists()
