"""No metric's name is written out in the library outside the metric definitions.

The epoch line, the board, the loggers, the monitors and the run tables read the fit's metric
list (`d2lai.metrics`); a name such as "val_acc" typed anywhere else is a second source of
truth that a new metric does not reach. Allowed: `d2lai/metrics.py` itself and the model
families' `METRICS = ...` declarations (the PyTorch edition's `self.plot("acc", ...)` names no
pass, so it is no such name).
"""

import ast
from pathlib import Path

import d2lai
from d2lai.metrics import KNOWN, SPLITS

ROOT = Path(d2lai.__file__).parent
ALLOWED_FILES = {ROOT / "metrics.py"}
# every pass's name of every metric every fit knows: train_loss, val_acc, test_ppl, ...
NAMES = {f"{split}_{m.name}" for split in SPLITS for m in KNOWN if m.splits != (None,)}


def declared(tree: ast.AST) -> set[int]:
    """The ids of the string constants inside `METRICS = ...` assignments of class bodies."""
    ids = set()
    for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
        for stmt in cls.body:
            targets = stmt.targets if isinstance(stmt, ast.Assign) else \
                [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
            if any(isinstance(t, ast.Name) and t.id == "METRICS" for t in targets):
                ids |= {id(n) for n in ast.walk(stmt) if isinstance(n, ast.Constant)}
    return ids


def stragglers(path: Path) -> list[str]:
    """`file:line 'name'` for each metric name written as a string literal in `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    allowed = declared(tree)
    return [f"{path.relative_to(ROOT.parent)}:{node.lineno} {node.value!r}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and node.value in NAMES and id(node) not in allowed]


def test_the_names_scanned_for_are_the_metrics_own():
    assert {"train_loss", "val_loss", "val_acc", "train_acc", "val_ppl", "test_acc"} <= NAMES


def test_the_scan_finds_a_name_and_passes_a_declaration(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('class Family:\n    METRICS = ("val_acc",)\n\n\n'
                   'def monitor(m="val_loss"):\n    return m\n')
    tree = ast.parse(bad.read_text())
    allowed = declared(tree)
    found = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Constant)
             and n.value in NAMES and id(n) not in allowed]
    assert found == [5]


def test_no_metric_name_outside_the_metric_definitions():
    found = [s for path in sorted(ROOT.rglob("*.py")) if path not in ALLOWED_FILES
             for s in stragglers(path)]
    assert not found, ("metric names written out in the library (read them from the fit's "
                       "metric list, d2lai.metrics, instead):\n" + "\n".join(found))
