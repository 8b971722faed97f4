"""``text_table``: the one aligned text table every command prints (zoo, eval, bench attention, bench model).

Kept below every layer, with no imports of its own, so that ``models.zoo`` can use it too.
"""

from __future__ import annotations

from collections.abc import Sequence


def text_table(rows: Sequence[Sequence[str]], right: bool = False, boxed: bool = False) -> str:
    """``rows[0]`` is the header. Plain: columns two spaces apart under a rule of dashes. ``right``: every column
    but the first right-aligned (numbers). ``boxed``: mmseg's ``+---+`` frame (first column left, the others
    right), as its evaluation log prints per-class tables."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def cells(row: Sequence[str]) -> list[str]:
        return [cell.rjust(width) if index and (right or boxed) else cell.ljust(width)
                for index, (cell, width) in enumerate(zip(row, widths))]

    if boxed:
        rule = "+" + "+".join("-" * (width + 2) for width in widths) + "+"
        lines = ["| " + " | ".join(cells(row)) + " |" for row in rows]
        return "\n".join([rule, lines[0], rule, *lines[1:], rule])
    lines = ["  ".join(cells(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
