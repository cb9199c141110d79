"""The proof-reading widget's words, with no Qt in them: the help line, the journal field's
hint, the legend of the markers' shapes and colours, and how a cell and its children read."""

from __future__ import annotations

from attrackt.napari._display import ROLES
from attrackt.napari.cells import LIKELY_WRONG, Cell

__all__ = ["HELP", "JOURNAL_NOTE", "SCORE_NOTE", "cell_text", "children_text", "legend"]

HELP = (
    "<b>Keys</b> N/P next/previous · A accept solver · 1–4 model's answer · 0 no children · "
    "click children, C use clicks · Esc clear · U undo · S next frame beside · G back to cell<br>"
    "<b>Score</b> how strongly the model disagrees with the solver at the cell (0: agree; 1: "
    f"one child more or less); ≥ {LIKELY_WRONG:g}: likely wrong. Answers are saved at once."
)
#: what the score means, in plain text (the cell line's tooltip)
SCORE_NOTE = HELP.split("<br>")[1].replace("<b>", "").replace("</b>", "")
JOURNAL_NOTE = "answers.jsonl (the project's by default)"


def children_text(children: tuple[int, ...] | None, scores: tuple[float, ...] = ()) -> str:
    """Children as the widget writes them: ``-`` (no answer yet), ``none``, or their ids (with
    the model's ``scores``)."""
    if children is None:
        return "-"
    if not children:
        return "none"
    if scores:
        return ", ".join(f"{c} ({s:.2f})" for c, s in zip(children, scores, strict=True))
    return ", ".join(map(str, children))


def legend() -> str:
    """The markers' shapes and colours by role (:data:`~attrackt.napari._display.ROLES`)."""
    shapes = {"ring": "◯", "diamond": "◇", "square": "□", "star": "☆"}
    names = {"cell": "cell", "model": "model (M)", "solver": "solver (S)", "answer": "answer (A)"}
    return " ".join(
        f'<span style="color:{colour}">{shapes[symbol]} {names[role]}</span>'
        for role, (symbol, colour, _, _) in ROLES.items()
    )


def cell_text(cell: Cell, ranked: int, strategy: str) -> str:
    """The cell line: the cell, its frame, its rank of ``ranked``, its score (or the ranking
    ``strategy`` where there are no scores), and the solver's, the model's and the answered
    children."""
    where = f"rank {cell.rank} of {ranked}" if cell.rank else "not ranked"
    if strategy == "confidence":
        likely = " (likely wrong)" if cell.score >= LIKELY_WRONG else ""
        score = f"score {cell.score:.2f}{likely}"
    else:
        score = f"{strategy} order (no model scores)"
    return (
        f"<b>cell {cell.id}</b> · frame {cell.t} · {where} · {score}"
        f"<br>solver: {children_text(cell.solver_children)} · model: "
        f"{children_text(cell.model_children, cell.model_scores)} · answer: "
        f"{children_text(cell.answer)}"
    )
