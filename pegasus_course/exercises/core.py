"""The core of the exercise checkers: the verdict, the contracts, the matcher that names a mistake, and the
functions a notebook calls around an exercise (:func:`use`, :func:`solution`, :func:`show_solution`).

A checker calls the learner's ``my_*`` the way the notebook's next cells will: with the same argument types
and shapes, score functions as strict as the U-Net, under ``torch.no_grad()`` where a sampler runs. What the
function returns must then be what those cells need (a tensor of x's shape and dtype, a loss that
``backward()`` can differentiate, an int); when it is not, the verdict says what the next cell needs and why,
at once. Only then are the values compared with the package's, on seeded inputs of several shapes. A wrong
value gets a general hint at the first try; from the second try the matcher names the planted mistake whose
values the answer reproduces (so the answer is not given away at once). Answers that follow another
convention (the paper's form where the course writes the code's) are named at the first try and not called
mistakes. A checker never raises: whatever the learner's function does, it prints a verdict and returns a
:class:`CheckResult`.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

_attempts: dict[str, int] = {}
CALLS: dict[str, str] = {}  # exercise -> how the notebook calls the learner's function (for the messages)
RTOL = 1e-4  # float32 rounding of the learner's arithmetic against the package's


@dataclass
class CheckResult:
    """What a checker found: ``status`` is ``"correct"``, ``"wrong"``, ``"error"`` or ``"not attempted"``."""

    exercise: str
    status: str
    message: str
    diagnosis: str | None = None  # the named mistake, when recognised (shown from the 2nd try)

    @property
    def passed(self) -> bool:
        return self.status == "correct"

    def __str__(self) -> str:
        return f"[{self.exercise}] {self.status}: {self.message}"


def reset_attempts() -> None:
    """Forget earlier calls (the next wrong answer gets the general hint again)."""
    _attempts.clear()


class BadAnswer(Exception):
    """An answer the next cells cannot use (a contract broken); the message says what they need and why."""


# ----- contracts: what the next cells need of a returned value
def describe(got: Any) -> str:
    """A returned value in a few words, for a verdict (``None`` gets the forgotten ``return``)."""
    if got is None:
        return "None (did you forget `return`?)"
    if isinstance(got, (str, bytes)):
        return f"a string, {str(got)[:40]!r}"
    if isinstance(got, (list, tuple, dict)):
        n = len(got)
        tail = " (torch.stack or torch.cat makes one tensor of a list of tensors)" if not isinstance(got, dict) else ""
        return f"a {type(got).__name__} of {n} item{'' if n == 1 else 's'}{tail}"
    if isinstance(got, np.ndarray):
        return f"a NumPy array of shape {tuple(got.shape)}"
    if isinstance(got, np.generic):
        return f"a NumPy {type(got).__name__}, {got!r}"
    if isinstance(got, bool):
        return f"a bool, {got}"
    if isinstance(got, (int, float)):
        return f"a {type(got).__name__}, {got!r}" if len(repr(got)) <= 12 else f"a {type(got).__name__}, {got:.6g}"
    if torch.is_tensor(got):
        return f"a {str(got.dtype).removeprefix('torch.')} tensor of shape {tuple(got.shape)} on {got.device}"
    return f"an object of type {type(got).__name__}"


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _finite(t: torch.Tensor, what: str) -> torch.Tensor:
    """``t`` (float64, CPU) when every value is finite, else a BadAnswer naming the first that is not."""
    if not bool(torch.isfinite(t).all()):
        bad = tuple(int(i) for i in torch.nonzero(~torch.isfinite(t))[0]) if t.ndim else ()
        where = f" at index {list(bad)}" if t.ndim else ""
        raise BadAnswer(f"{what} returned {float(t[bad]) if t.ndim else float(t)}{where}; expected finite numbers")
    return t


def tensor_answer(got: Any, like: torch.Tensor | Sequence[int], why: str, what: str = "your function",
                  dtype: torch.dtype | None = None, device: torch.device | None = None) -> torch.Tensor:
    """``got`` as a float64 CPU tensor for comparing, once it is what the next cells need: a tensor of
    ``like``'s shape, dtype and device (``like`` a tensor, or a shape with ``dtype``/``device``). Else a
    BadAnswer that names what came back, what was expected and ``why`` the next cell needs it."""
    if torch.is_tensor(like):
        shape, dtype, device = tuple(like.shape), like.dtype, like.device
    else:
        shape = tuple(like)
    expected = f"a tensor of shape {shape}" + (f", {_dtype_name(dtype)}" if dtype is not None else "")
    if not torch.is_tensor(got):
        extra = " (stay in torch: math.sqrt or torch.sqrt, not NumPy)" if isinstance(got, (np.ndarray, np.generic)) \
            else ""
        raise BadAnswer(f"{what} returned {describe(got)}; expected {expected}: {why}{extra}")
    if got.is_complex():
        raise BadAnswer(f"{what} returned complex numbers; expected {expected} of real numbers: {why}")
    if tuple(got.shape) != shape:
        raise BadAnswer(f"{what} returned a tensor of shape {tuple(got.shape)}; expected {expected}: {why}")
    if dtype is not None and got.dtype != dtype:
        raise BadAnswer(f"{what} returned a {_dtype_name(got.dtype)} tensor; expected {expected}, like its input: "
                        f"{why}")
    if device is not None and got.device != device:
        raise BadAnswer(f"{what} returned a tensor on {got.device}; expected it on {device}, the input's device: "
                        f"{why}")
    return _finite(got.detach().to("cpu", torch.float64), what)


def number_answer(got: Any, why: str, what: str = "your function", integer: bool = False) -> torch.Tensor:
    """``got`` as a 0-dim float64 tensor once it is one number (an ``int`` if ``integer``: a count), else a
    BadAnswer that says what came back and ``why`` the next cell needs one number."""
    if integer:
        if isinstance(got, bool) or not isinstance(got, (int, np.integer)):
            fix = ""
            if isinstance(got, (float, np.floating)) or (torch.is_tensor(got) and got.numel() == 1):
                fix = " (int(...) makes one)"
            raise BadAnswer(f"{what} returned {describe(got)}; expected an int: {why}{fix}")
        return torch.tensor(float(got), dtype=torch.float64)
    if isinstance(got, (bool, str, bytes, list, tuple, dict)) or got is None:
        raise BadAnswer(f"{what} returned {describe(got)}; expected one number: {why}")
    if torch.is_tensor(got) or isinstance(got, np.ndarray):
        t = torch.as_tensor(got)
        if t.ndim != 0:
            raise BadAnswer(f"{what} returned {describe(got)}; expected one number (a float, or a tensor of shape ()): "
                            f"{why}" + (" (.item() or float(...) makes one)" if t.numel() == 1 else ""))
    try:
        t = torch.as_tensor(got).detach()
    except Exception:  # noqa: BLE001  anything torch cannot read as a number
        raise BadAnswer(f"{what} returned {describe(got)}; expected one number: {why}") from None
    if t.is_complex():
        raise BadAnswer(f"{what} returned a complex number; expected one real number: {why}")
    return _finite(t.to("cpu", torch.float64), what)


# ----- comparing values, and the matcher that names a mistake
def distance(got: torch.Tensor, want: Any, rtol: float = RTOL) -> float:
    """How far ``got`` is from ``want`` in units of the tolerance (<= 1: equal up to float32 rounding), judged
    relative to the size of ``want`` (values range over 1e-13..1e3); ``inf`` for another shape or no number."""
    try:
        w = torch.as_tensor(want).detach().to("cpu", torch.float64)
    except Exception:  # noqa: BLE001  a planted answer that gives no tensor matches nothing
        return math.inf
    g = torch.as_tensor(got, dtype=torch.float64)
    if g.shape != w.shape or not bool(torch.isfinite(w).all()):
        return math.inf
    if not g.numel():
        return 0.0
    atol = 1e-6 * float(w.abs().max())
    scale = atol + rtol * w.abs()
    diff = (g - w).abs()
    return float(torch.where(scale > 0, diff / scale.clamp_min(1e-300), diff * math.inf).nan_to_num(0.0).max())


def close(got, want, rtol: float = RTOL) -> bool:
    """Equal up to float32 rounding (see :func:`distance`)."""
    return distance(torch.as_tensor(got, dtype=torch.float64), want, rtol) <= 1.0


def _variants(table_entry) -> list[Callable]:
    return table_entry if isinstance(table_entry, (list, tuple)) else [table_entry]


def closest(got: torch.Tensor, make: Callable[[], tuple], table: dict[str, Any], rtol: float = RTOL) -> str | None:
    """The label of the planted answer in ``table`` (label -> function or list of functions, each called on
    fresh arguments ``make()``) closest to ``got`` within tolerance, or None when none is that close."""
    best: tuple[float, str] | None = None
    for label, entry in table.items():
        for planted in _variants(entry):
            try:
                d = distance(got, planted(*make()), rtol)
            except Exception:  # noqa: BLE001  a planted answer that cannot run on this case matches nothing
                continue
            if d <= 1.0 and (best is None or d < best[0]):
                best = (d, label)
    return None if best is None else best[1]


def raised_like(exc: Exception, make: Callable[[], tuple], table: dict[str, Any]) -> str | None:
    """The label of a planted answer in ``table`` that raises what the learner's function raised (the same type
    and message on the same arguments): a mistake that a package check refuses is still named."""
    for label, entry in table.items():
        for planted in _variants(entry):
            try:
                planted(*make())
            except Exception as other:  # noqa: BLE001  raising is what is compared
                if type(other) is type(exc) and str(other) == str(exc):
                    return label
    return None


def first_mismatch(g: torch.Tensor, w: torch.Tensor, rtol: float = RTOL) -> tuple[int, ...] | None:
    """Index of the first element where ``g`` and ``w`` differ beyond :func:`close`'s tolerance, or None."""
    bad = ~torch.isclose(g, w, rtol=rtol, atol=1e-6 * float(w.abs().max()))
    return tuple(int(i) for i in torch.nonzero(bad)[0]) if bool(bad.any()) else None


def where(got, want) -> str:
    """The first element that differs: a tensor's first value alone can agree (a row's first image)."""
    g, w = torch.as_tensor(got, dtype=torch.float64), torch.as_tensor(want, dtype=torch.float64)
    idx = first_mismatch(g, w) if g.numel() > 1 else None
    if idx is None:
        return f"got {_summary(g)}, expected {_summary(w)}"
    return (f"at index {list(idx)} got {float(g[idx]):.5g}, expected {float(w[idx]):.5g} "
            f"(largest difference {float((g - w).abs().max()):.3g})")


def _summary(t: torch.Tensor) -> str:
    return f"{float(t.flatten()[0]):.5g}" if t.numel() == 1 else f"a tensor with first value {float(t.flatten()[0]):.5g}"


# ----- one check: the cases, the learner's call, the reference and the tables of other answers
@dataclass
class Check:
    """What a checker runs. ``cases`` make fresh arguments, as the next cells pass them; ``call(args)`` runs
    the learner's function on them the way those cells do and returns its answer as a float64 tensor (or
    raises :class:`BadAnswer` when the answer breaks what they need); ``reference(*args)`` is the package.

    ``mistakes`` (label -> planted answer or list of them) are named from the second wrong try;
    ``conventions`` are right under another convention (the paper's form): named at once, not passed;
    ``accepted`` are other correct forms, named in the verdict (``reference_label`` names the package's);
    ``explain(got, want)`` describes a mismatch better than its first values, ``explain_error(exc)`` adds a
    hint to an exception the learner's function raised; ``structural(args) -> label | None`` names at once a
    mistake seen in how the function ran (a noise source never called), when its value is wrong;
    ``unchanged`` (argument index -> why) lists the arguments the next cells use again, which the function
    must not change in place.
    """

    name: str
    hint: str
    cases: Sequence[Callable[[], tuple]]
    call: Callable[[tuple], torch.Tensor]
    reference: Callable[..., Any]
    mistakes: dict[str, Any] = field(default_factory=dict)
    conventions: dict[str, Any] = field(default_factory=dict)
    accepted: dict[str, Callable] = field(default_factory=dict)
    reference_label: str | None = None
    explain: Callable[[torch.Tensor, torch.Tensor], str] | None = None
    explain_error: Callable[[Exception], str | None] | None = None
    structural: Callable[[tuple], str | None] | None = None
    unchanged: dict[int, str] = field(default_factory=dict)
    rtol: float = RTOL


def run(check: Check) -> CheckResult:
    """Compare the learner's answers with the reference case by case; on a mismatch, name what it matches."""
    name = check.name
    written: set[str] | None = None  # the forms (labels) that every case so far matched
    for i, make in enumerate(check.cases):
        args = make()
        try:
            got = check.call(args)
        except NotImplementedError:
            return CheckResult(name, "not attempted", "the stub still raises NotImplementedError; fill it in.")
        except BadAnswer as bad:
            return CheckResult(name, "wrong", str(bad))
        except Exception as exc:  # noqa: BLE001  a learner's bug must not stop the notebook
            planted = raised_like(exc, make, check.mistakes)
            if planted is not None:  # a common mistake that the package's own checks refuse
                return _wrong(name, f"case {i + 1}: your function raised {exc.__class__.__name__}: {exc}",
                              check.hint, planted)
            extra = check.explain_error(exc) if check.explain_error is not None else None
            if extra is None and isinstance(exc, TypeError):
                extra = f"it is called as my_{name}{CALLS.get(name, '(...)')}"
            return CheckResult(name, "error", f"your function raised {exc.__class__.__name__}: {exc}"
                               + (f" ({extra})" if extra else ""))
        changed = _changed(args, make(), check.unchanged)
        if changed is not None:
            return CheckResult(name, "wrong", _changed_message(name, *changed, isinstance(args[changed[0]], dict)))
        got = torch.as_tensor(got).detach().to("cpu", torch.float64)
        want = torch.as_tensor(check.reference(*make())).detach().to("cpu", torch.float64)
        forms = {label for label, ok in check.accepted.items() if distance(got, ok(*make()), check.rtol) <= 1}
        if distance(got, want, check.rtol) <= 1:
            forms.add(check.reference_label or "")
        if forms:  # a correct answer; in one case two forms can agree by chance, so keep those all cases share
            written = forms if written is None else (written & forms or written | forms)
            continue
        seen = check.structural(args) if check.structural is not None else None
        other = seen or closest(got, make, check.conventions, check.rtol)
        if other is not None:
            return CheckResult(name, "wrong", f"case {i + 1}: you wrote {other}", other)
        diagnosis = closest(got, make, check.mistakes, check.rtol)
        explain = check.explain(got, want) if check.explain is not None else where(got, want)
        return _wrong(name, f"first mismatch in case {i + 1}: {explain}", check.hint, diagnosis)
    _attempts.pop(name, None)
    forms = sorted(w for w in (written or set()) if w)
    note = f" You wrote: {'; '.join(forms)}." if forms and "" not in (written or set()) else ""
    return CheckResult(name, "correct", f"matches the package on all {len(check.cases)} cases.{note}")


def _wrong(name: str, what: str, hint: str, diagnosis: str | None) -> CheckResult:
    """A wrong answer: the general hint at the first try, the likely mistake's name from the second on."""
    _attempts[name] = _attempts.get(name, 0) + 1
    if _attempts[name] == 1:
        advice = f"hint: {hint}"
    elif diagnosis:
        advice = f"likely mistake: {diagnosis}"
    else:
        advice = f"hint: {hint} (no common mistake matched; compare term by term with the formula)"
    return CheckResult(name, "wrong", f"{what}. {advice}", diagnosis)


def _same(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if torch.is_tensor(a) and torch.is_tensor(b):
        return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a.detach().cpu(), b.cpu()))
    return True  # not a tensor: nothing to change in place


def _changed(args: tuple, fresh: tuple, unchanged: dict[int, str]) -> tuple[int, str] | None:
    """The first argument in ``unchanged`` that the call changed in place (against fresh arguments)."""
    return next(((i, why) for i, why in unchanged.items() if not _same(args[i], fresh[i])), None)


def _changed_message(name: str, index: int, why: str, a_dict: bool = False) -> str:
    names = re.match(r"\(([^)]*)\)", CALLS.get(name, "")).group(1).split(", ") if name in CALLS else []
    arg = names[index] if index < len(names) else f"argument {index + 1}"
    if a_dict:
        return (f"your function changed its argument {arg} ({arg}[i] = ..., or a draw changed in place): {why}; "
                "build the mixed draws in a new dict")
    return (f"your function changed its argument {arg} in place ({arg} += ..., or a method ending in _ such as "
            f"mul_): {why}; compute new tensors instead (x = x + ..., or start from a .clone())")


def checker(name: str, call: str):
    """Decorate a checker ``check(fn) -> CheckResult`` into ``check_<name>(fn, verbose=True)``: a learner who
    passes something other than a function (None, its result, a tensor) gets a verdict, the verdict is
    printed when ``verbose``, nothing the checker meets escapes as an exception, and the global random state
    is left as it was. ``call`` shows how the notebook calls the function, for the messages."""
    CALLS[name] = call

    def decorate(check: Callable[[Callable], CheckResult]):
        @functools.wraps(check)
        def wrapper(fn, verbose: bool = True) -> CheckResult:
            if not callable(fn):
                what = "None" if fn is None else f"a {type(fn).__name__}"
                result = CheckResult(name, "error", f"the checker needs your function itself, check_{name}(my_{name}) "
                                     f"(no parentheses after my_{name}); it got {what}. Your function is called as "
                                     f"my_{name}{call}.")
            else:
                try:
                    with torch.random.fork_rng(devices=[]):  # the notebook's random numbers stay as they were
                        result = check(fn)
                except Exception as exc:  # noqa: BLE001  the notebook goes on, whatever happened
                    result = CheckResult(name, "error", f"the check could not run your function: "
                                         f"{exc.__class__.__name__}: {exc}")
            if verbose:
                print(result)
            return result
        return wrapper
    return decorate


# ----- the reference solutions, on demand, and the function the later cells run
def _solutions():
    """The module of reference solutions, imported only when asked (the package never imports it)."""
    return importlib.import_module(f"{__package__}.solutions")


def solution(name: str) -> Callable:
    """The reference solution of exercise ``name`` (e.g. ``"langevin_step"``), loaded without showing it."""
    solutions = _solutions()
    fn = getattr(solutions, name, None) if name in solutions.__all__ else None
    if fn is None:
        raise ValueError(f"no exercise called {name!r}; the exercises are: {', '.join(solutions.__all__)}.")
    return fn


def solution_source(name: str) -> str:
    """The reference solution's source, written as the learner's ``my_<name>`` so it can be pasted over the stub."""
    source = inspect.getsource(solution(name))
    return re.sub(rf"^def {name}\(", f"def my_{name}(", source, count=1, flags=re.M)


def show_solution(name: str) -> None:
    """Print the reference solution of exercise ``name``: read it, or paste it over your stub."""
    print(solution_source(name), end="")


def use(mine, check: Callable[..., CheckResult], fallback: Callable) -> Callable:
    """What a notebook's later cells run: the learner's ``mine`` if ``check(mine)`` passes, else ``fallback``
    (the reference solution), with a printed line that says which and, for a failed check, why. A wrong or
    unfinished exercise thus never stops Run All, and a solved one is what runs. The check runs silently and
    does not count as a try (the hints of the checker cell stay as they were)."""
    saved = dict(_attempts)
    try:
        result = check(mine, verbose=False)
    except Exception as exc:  # noqa: BLE001  whatever goes wrong, the notebook goes on with the reference
        name = getattr(check, "__name__", "check").removeprefix("check_")
        result = CheckResult(name, "error", f"the check raised {exc.__class__.__name__}: {exc}")
    finally:
        _attempts.clear()
        _attempts.update(saved)
    label = getattr(mine, "__name__", "function") if callable(mine) else "function"
    if result.passed:
        print(f"[{result.exercise}] using your {label}: it passes its check.")
        return mine
    if result.status == "not attempted":
        print(f"[{result.exercise}] using the reference solution: your {label} is still the stub. Write it, then "
              "re-run this cell to use yours.")
    else:
        print(f"[{result.exercise}] using the reference solution: your {label} does not pass its check "
              f"({result.status}: {result.message.rstrip('.')}). Fix it, then re-run this cell to use yours.")
    return fallback
