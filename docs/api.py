"""Build the API reference from the docstrings: one HTML page a module, with pdoc.

    pip install -e ".[dev]"            # brings pdoc
    python docs/api.py                 # writes docs/api/index.html and a page a module
    python docs/api.py OUT             # ... under OUT instead

Every module of the `d2lai` package is listed (pdoc itself would follow only the names in a
package's `__all__`), and `chapters.cli`, the flags every chapter's command line shares.
"""

from __future__ import annotations

import pkgutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def modules() -> list[str]:
    """`d2lai` and every module under it, then `chapters.cli`."""
    sys.path.insert(0, str(ROOT))
    import d2lai

    names = ["d2lai"] + sorted(m.name for m in pkgutil.walk_packages(d2lai.__path__, "d2lai."))
    return names + ["chapters.cli"]


def main(out: str | Path = ROOT / "docs" / "api") -> Path:
    import warnings

    import pdoc
    import pdoc.render

    # pdoc adds the submodules of some packages itself; naming them again is harmless
    warnings.filterwarnings("ignore", "The module specification", UserWarning)
    pdoc.render.configure(docformat="google", search=True)
    pdoc.pdoc(*modules(), output_directory=Path(out))
    return Path(out)


if __name__ == "__main__":
    print(f"API reference written to {main(*sys.argv[1:2]) / 'index.html'}")
