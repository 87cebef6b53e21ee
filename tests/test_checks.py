"""The argument checks as one family (`d2lai.checks`), and the Trainer's constructor using it."""

import ast
import inspect
import textwrap

import numpy as np
import pytest

import d2lai
from d2lai import checks
from d2lai.checks import ArgumentError


def test_integers_and_reals_are_told_from_bools():
    assert checks.is_int(3) and checks.is_int(np.int64(3)) and not checks.is_int(True)
    assert not checks.is_int(3.0) and not checks.is_int("3")
    assert checks.is_real(0.5) and checks.is_real(np.float32(0.5)) and checks.is_real(2)
    assert not checks.is_real(False) and not checks.is_real("0.5")


@pytest.mark.parametrize("value, kwargs, kept", [
    (3, {"integer": True}, 3), (np.int64(2), {"integer": True}, 2), (0, {"integer": True,
                                                                         "zero": True}, 0),
    (0.5, {}, 0.5), (0.0, {"zero": True}, 0.0), (None, {"allow_none": True}, None)])
def test_positive_keeps_what_it_accepts(value, kwargs, kept):
    out = checks.positive("x", value, **kwargs)
    assert out == kept and type(out) is type(kept)


@pytest.mark.parametrize("value, kwargs, message", [
    (0, {"integer": True}, "x must be a positive integer, got 0"),
    (True, {"integer": True}, "x must be a positive integer, got True"),
    (2.0, {"integer": True}, "x must be a positive integer, got 2.0"),
    (-1, {"integer": True, "zero": True}, "x must be a non-negative integer, got -1"),
    (float("nan"), {}, "x must be a positive number, got nan"),
    (float("inf"), {"zero": True}, "x must be a non-negative number, got inf"),
    ("1", {}, "x must be a positive number, got '1'")])
def test_positive_says_what_it_wanted(value, kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        checks.positive("x", value, **kwargs)


def test_a_flag_takes_none_only_when_told_what_none_means():
    assert checks.flag("live", None, none_means="live in Jupyter") is None
    with pytest.raises(ArgumentError, match=r"^live must be True, False or None \(None: live "
                                            r"in Jupyter\), got 'yes'$"):
        checks.flag("live", "yes", none_means="live in Jupyter")
    with pytest.raises(ArgumentError, match=r"^gpu must be True or False, got None$"):
        checks.flag("gpu", None)


def test_number_says_its_bounds_in_the_format_asked():
    with pytest.raises(ArgumentError, match=r"Adam: lr must be a number in \[0, 3.4e\+38\]"):
        d2lai.Adam(-1.0)
    with pytest.raises(ArgumentError, match=r"Descent: lr must be a number"):
        d2lai.Descent(True)


def test_the_trainers_constructor_raises_nothing_itself():
    """Its checks are calls into d2lai.checks, one a concern; no `raise` of its own."""
    source = textwrap.dedent(inspect.getsource(d2lai.Trainer.__init__))
    raises = [n.lineno for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Raise)]
    assert raises == []


@pytest.mark.parametrize("kwargs, message", [
    ({"max_epochs": None}, "max_epochs must be a positive integer, got None"),
    ({"resume": True}, "resume=True needs checkpoint='path.pt'"),
    ({"clip": "norm"}, "clip must be one of 'rescale', 'max_norm', got 'norm'"),
    ({"board_yscale": "log2"}, "board_yscale must be one of"),
    ({"seed": -1}, r"seed must be an integer in \[0, 2\*\*64 - 1\]")])
def test_the_trainers_arguments_are_refused_through_the_checks(tiny_data, kwargs, message):
    from conftest import TinyClassifier

    with pytest.raises(ValueError, match=message):
        d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1), **kwargs)


def test_a_family_method_under_its_earlier_name_is_refused_not_ignored(tiny_data):
    from conftest import TinyClassifier

    class Old(TinyClassifier):
        def epoch_figures(self, logs):
            return {"val_twice": 2 * logs["val_loss"]}

    with pytest.raises(TypeError, match="defines epoch_figures, .*rename it epoch_metrics"):
        d2lai.Trainer(Old(), tiny_data, d2lai.Descent(0.1))
