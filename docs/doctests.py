"""A griffe extension for the API reference: a docstring's `>>>` examples shown as code.

d2lai's docstrings put their examples inline, as `help()` shows them; Markdown would read
`>>>` as nested quotes. Each run of example lines (a `>>>` line, its `...` lines and the output
up to a blank line) becomes a fenced Python console block.
"""

from __future__ import annotations

import griffe


def fence_examples(text: str) -> str:
    """`text` with every run of doctest lines outside a code fence put in a ```pycon fence."""
    out, block, indent, fenced = [], [], "", False

    def close():
        if block:
            out.extend([f"{indent}```pycon", *block, f"{indent}```"])
            block.clear()

    for line in text.splitlines():
        stripped = line.lstrip()
        if stripped.startswith("```"):
            close()
            fenced = not fenced
        elif not fenced and stripped.startswith(">>>") and not block:
            indent = line[: len(line) - len(stripped)]
        if block or (not fenced and stripped.startswith(">>>")):
            if stripped:
                block.append(line)
                continue
            close()
        out.append(line)
    close()
    return "\n".join(out)


class DoctestBlocks(griffe.Extension):
    """Fence the examples of every docstring griffe reads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_examples(obj.docstring.value)
