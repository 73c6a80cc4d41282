"""The checker every exercise shares: load the learner's function from a file, run it on small float64 cases,
compare each output with minicnn's own computation and with a numerical gradient, and say in plain sentences what
is wrong and where.

An exercise is a module with::

    NAME, TITLE, FUNCTION      the exercise, a one-line title, the function the learner writes
    OUTPUTS                    the names of what it returns, e.g. ("dW", "db", "dX")
    SHAPE_OF                   {output: "the shape of W"}: said when a shape is wrong
    TEMPLATE                   the learner's starting file (signature, docstring with the math, NotImplementedError)
    reference(**args)          a solution, written as a learner would
    cases()                    [(description, args)]: small float64 inputs
    expected(args)             {output: array} computed by minicnn's own layer or reference kernel
    numerical(args)            {output: array} by central differences of the forward pass ({} where it has kinks)
    MISTAKES                   [(sentence, fn)]: typical slips; when the learner's outputs equal fn's, say the sentence
    explain(args, got)         optional: more sentences on where a wrong answer went wrong
"""

from __future__ import annotations

import importlib.util
import os
import traceback
from dataclasses import dataclass, field

import numpy as np

from ..gradcheck import relative_error

RTOL, ATOL = 1e-7, 1e-10  # float64 on small inputs: a right answer agrees to rounding
NUMERIC_TOLERANCE = 1e-6  # central differences in float64 with h = 1e-6 (see minicnn.gradcheck)


@dataclass
class CheckResult:
    """Whether the learner's function passed, and the sentences that say why (or why not)."""

    passed: bool
    lines: list = field(default_factory=list)

    def __str__(self):
        return "\n".join(self.lines)


def load_function(path, function: str, exercise: str):
    """The learner's ``function`` from the file ``path``, imported on its own (nothing else of the project runs).
    A FileNotFoundError / ValueError whose message tells the learner what to do."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist: create it with python -m minicnn.exercises start {exercise}")
    spec = importlib.util.spec_from_file_location(f"learner_{exercise}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # a learner's file that does not import: say where
        where = traceback.extract_tb(err.__traceback__)[-1]
        raise ValueError(f"{path} does not import: {type(err).__name__}: {err} (line {where.lineno})") from None
    fn = getattr(module, function, None)
    if not callable(fn):
        raise ValueError(f"{path} defines no function named {function}(): keep the name the template gave it")
    return fn


def _index(idx) -> str:
    return "[" + ", ".join(str(int(i)) for i in idx) + "]"


def _factor_note(got: float, want: float) -> str:
    """': off by a factor of 2' and the like, when the ratio of two entries is telling."""
    if want == 0:
        return ""
    if got == 0:
        return ": nothing arrived there"
    r = got / want
    if abs(r + 1) < 1e-6:
        return ": the opposite sign"
    for k in (r, 1 / r):
        if abs(k - round(k)) < 1e-6 * abs(k) and round(k) not in (0, 1, -1):
            return f": off by a factor of {r:.4g}" + (f" (1/{round(1 / r)})" if k != r else "")
    return ""


def compare(name: str, got, want: np.ndarray, shape_of: str = "") -> list[str]:
    """Sentences describing how ``got`` differs from ``want`` (none when they agree)."""
    if got is None:
        return [f"{name} is None: return an array of shape {want.shape}{shape_of}."]
    dtype = getattr(got, "dtype", None)
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        return [f"{name} is not an array of numbers (got {type(got).__name__})."]
    if got.shape != want.shape:
        say = [f"{name} has shape {got.shape} but should have shape {want.shape}{shape_of}."]
        if got.ndim == want.ndim > 1 and got.shape == want.shape[::-1]:
            say.append(
                f"{got.shape} is the transposed shape: check the order of the factors in the product "
                "(which one is transposed, which comes first)."
            )
        elif got.size == want.size:
            say.append("It has the right number of entries: check how you reshaped it.")
        return say
    if not np.all(np.isfinite(got)):
        return [f"{name} contains NaN or infinity (first at {name}{_index(np.argwhere(~np.isfinite(got))[0])})."]
    close = np.isclose(got, want, rtol=RTOL, atol=ATOL)
    if close.all():
        return []
    if dtype is not None and np.dtype(dtype).itemsize < 8 and np.allclose(got, want, rtol=1e-4, atol=1e-6):
        return [
            f"{name} is {np.dtype(dtype).name}: its values are right to {np.dtype(dtype).name}'s precision, but "
            "the check needs float64 (the inputs' dtype); do not convert."
        ]
    nonzero = want != 0
    if nonzero.any() and np.array_equal(got == 0, want == 0):
        ratios = got[nonzero] / want[nonzero]
        if np.ptp(ratios) <= 1e-6 * abs(ratios.mean()):
            r = float(ratios.mean())
            if abs(r + 1) < 1e-6:
                return [
                    f"{name} has the right size everywhere but the opposite sign: check the order of the subtraction."
                ]
            return [
                f"every entry of {name} is {r:.4g} times the right value: off by a constant factor of {r:.4g}"
                f"{f' (1/{1 / r:.4g})' if abs(r) < 1 else ''}."
            ]
    bad = np.argwhere(~close)
    say = [f"{len(bad)} of {got.size} entries of {name} are wrong, for example:"]
    for idx in bad[:3]:
        g, w = float(got[tuple(idx)]) + 0.0, float(want[tuple(idx)]) + 0.0  # + 0.0: no "-0"
        say.append(f"  {name}{_index(idx)} is {g:.4g} but should be {w:.4g}{_factor_note(g, w)}")
    return say


def _as_outputs(result, names) -> tuple:
    if len(names) == 1:
        return (result,)
    if not isinstance(result, (tuple, list)) or len(result) != len(names):
        raise TypeError(f"return the {len(names)} arrays ({', '.join(names)}) as a tuple")
    return tuple(result)


def _same(got, mistake, args, names) -> bool:
    """Whether the learner's outputs equal those of the typical slip ``mistake`` on ``args``."""
    try:
        want = _as_outputs(mistake(**_copy(args)), names)
        return all(np.shape(g) == np.shape(w) and np.allclose(g, w, rtol=RTOL, atol=ATOL) for g, w in zip(got, want))
    except Exception:  # a slip that does not apply to this case (or a learner's output that is not an array)
        return False


def _copy(args: dict) -> dict:
    return {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in args.items()}


def _numeric_lines(ex, args, got) -> tuple[bool, list[str]]:
    ok, say = True, []
    for name, numeric in ex.numerical(_copy(args)).items():
        value = got[ex.OUTPUTS.index(name)]
        if np.shape(value) != numeric.shape:
            continue
        err = float(relative_error(value, numeric).max())
        good = err <= NUMERIC_TOLERANCE
        ok &= good
        say.append(
            f"    {name} against the numerical gradient (central differences of the forward pass): largest "
            f"relative error {err:.1e} ({'ok' if good else 'too large, above ' + f'{NUMERIC_TOLERANCE:.0e}'})"
        )
    return ok, say


def run_checks(ex, fn) -> CheckResult:
    """Run the learner's ``fn`` on every case of exercise module ``ex``; stop at the first case that fails."""
    cases = ex.cases()
    lines = [f"Checking {ex.FUNCTION}() ({ex.TITLE}) on {len(cases)} small float64 cases."]
    for k, (description, args) in enumerate(cases, start=1):
        lines.append(f"  case {k} of {len(cases)}: {description}")
        try:
            result = fn(**_copy(args))
        except NotImplementedError:
            lines.append(
                f"    {ex.FUNCTION}() raises NotImplementedError: it is not written yet. Replace that line "
                "with your code."
            )
            return CheckResult(False, lines)
        except Exception as err:  # the learner's code failed: show where, in their file
            frames = [f for f in traceback.extract_tb(err.__traceback__) if f.name != "run_checks"]
            where = f" (line {frames[-1].lineno}: {frames[-1].line})" if frames else ""
            lines.append(f"    {ex.FUNCTION}() raised {type(err).__name__}: {err}{where}")
            return CheckResult(False, lines)
        try:
            got = _as_outputs(result, ex.OUTPUTS)
        except TypeError as err:
            lines.append(f"    {ex.FUNCTION}() returned a {type(result).__name__}: {err}.")
            return CheckResult(False, lines)
        want = ex.expected(_copy(args))
        wrong = []
        for name, g in zip(ex.OUTPUTS, got):
            wrong += [f"    {s}" for s in compare(name, g, want[name], ex.SHAPE_OF.get(name, ""))]
        numeric_ok, numeric_say = _numeric_lines(ex, args, got)
        if not wrong and numeric_ok:
            lines.append(f"    {', '.join(ex.OUTPUTS)}: equal to minicnn's own result.")
            lines += numeric_say
            continue
        slips = [sentence for sentence, mistake in ex.MISTAKES if _same(got, mistake, args, ex.OUTPUTS)]
        where = getattr(ex, "explain", lambda args, got: [])(_copy(args), got)
        lines += [f"    Likely slip: {s}" for s in slips] + wrong + [f"    {s}" for s in where] + numeric_say
        return CheckResult(False, lines)
    lines.append(f"PASSED: {ex.FUNCTION}() agrees with minicnn and with the numerical gradient on every case.")
    return CheckResult(True, lines)
