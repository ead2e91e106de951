"""A practice deck's summary as the trainee keeps it: CSV (one row a case) or PDF (the totals and the table).

The same words as the summary page: each case's result, and the model's pick of a multiple-choice case scored
beside the trainee's. The deck's, the trainee's and the model's text is written as text (escaped in the PDF's
HTML, never interpreted). Built in the private data folder and then moved where the user chose
(`app.export.write_staged`); the PDF needs a QGuiApplication, as every PDF export does.
"""

from __future__ import annotations

import csv
import html
import re
from datetime import datetime
from pathlib import Path

from . import INTENDED_USE
from .export import write_staged
from .practice import Attempt, Deck, Item, Summary, model_result

FORMATS = ("csv", "pdf")
CSV_COLUMNS = ["case", "question", "your answer", "your result", "seconds", "reference answer", "model's answer",
               "model's pick", "model's result"]


def summary_lines(s: Summary) -> list[str]:
    """The totals in words: the trainee's, then the model's on the same multiple-choice cases."""
    lines = [f"Answered {s.answered} of {s.total} cases."]
    if s.scored:
        lines.append(f"Multiple choice: {s.scored_correct} of {s.scored} correct ({s.scored_percent:.0f} %).")
    if s.model_scored:
        unclear = f"; {s.model_unclear} of its replies named no option" if s.model_unclear else ""
        lines.append(f"The model on the same cases: {s.model_correct} of {s.model_scored} correct "
                     f"({s.model_percent:.0f} %){unclear}.")
    if s.marked_right or s.marked_wrong or s.unmarked:
        lines.append(f"Free text (your own marking): {s.marked_right} right, {s.marked_wrong} wrong, "
                     f"{s.unmarked} not marked yet.")
    return lines


def result_cell(attempt: Attempt | None) -> str:
    """The trainee's result: right, wrong, not marked, or — when not answered."""
    return "—" if attempt is None else {True: "right", False: "wrong"}.get(attempt.correct, "not marked")


def model_pick(item: Item, attempt: Attempt | None) -> tuple[str, str]:
    """The model's pick of a multiple-choice case and its result ("right", "wrong", "" when not scored);
    ("", "") for free text or no saved reply."""
    if attempt is None or not item.is_multiple_choice or not (attempt.model_answer or "").strip():
        return "", ""
    choice, correct = model_result(item, attempt.model_answer)
    pick = item.option_label(choice) if choice is not None else "no option named"
    return pick, {True: "right", False: "wrong"}.get(correct, "")


def model_cell(item: Item, attempt: Attempt | None) -> str:
    pick, result = model_pick(item, attempt)
    return f"{pick} — {result}" if pick and result else pick or "—"


def export_summary(deck: Deck, summary: Summary, attempts: dict[int, Attempt], path: Path, fmt: str) -> Path:
    """Writes the summary to `path` as "csv" or "pdf"; returns the path."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown summary format {fmt!r}; expected one of {', '.join(FORMATS)}")

    def build(built: Path) -> None:
        if fmt == "csv":
            _write_csv(built, deck, attempts)
        else:
            from .export_pdf import write_pdf  # Qt: only a PDF export needs it

            write_pdf(built, f"Practice summary — {deck.title}", lambda _image_src: _html(deck, summary, attempts))
    return write_staged(Path(path), build)


def file_stem(deck: Deck, when: datetime | None = None) -> str:
    """A file name for the summary: the deck's title and today's date, without characters file systems refuse."""
    title = re.sub(r'[\\/:*?"<>|\x00-\x1f\s]+', " ", deck.title).strip(" .") or "practice"
    return f"{title[:80].strip()} summary {(when or datetime.now()).date().isoformat()}"


def _rows(deck: Deck, attempts: dict[int, Attempt]) -> list[list[str]]:
    rows = []
    for item in deck.items:
        a = attempts.get(item.number)
        pick, model_scored = model_pick(item, a)
        rows.append([str(item.number), item.question, a.answer if a else "", result_cell(a) if a else "",
                     f"{a.seconds:g}" if a and a.seconds is not None else "", item.reference_text() or "",
                     (a.model_answer or "") if a else "", pick, model_scored])
    return rows


def _write_csv(path: Path, deck: Deck, attempts: dict[int, Attempt]) -> None:
    # UTF-8 with a byte order mark: spreadsheet programs then read Chinese and accents right.
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(_rows(deck, attempts))


def _html(deck: Deck, summary: Summary, attempts: dict[int, Attempt]) -> str:
    e = html.escape
    head = ["#", "Question", "Your answer", "Result", "Reference", "Model's pick", "Model"]
    body = []
    for number, question, answer, result, _seconds, reference, _model_answer, pick, model in _rows(deck, attempts):
        cells = [number, question, answer, result or "—", reference, pick or "—", model or "—"]
        body.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>")
    return (f"<h2>Practice summary — {e(deck.title)}</h2>"
            f"<p><i>{e(INTENDED_USE)}</i></p>"
            + "".join(f"<p>{e(line)}</p>" for line in summary_lines(summary))
            + "<table border='1' cellspacing='0' cellpadding='3' width='100%'><tr>"
            + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>" + "".join(body) + "</table>"
            + f"<p><small>{e(deck.path.name)} · {len(deck.items)} cases · "
              f"{datetime.now().strftime('%Y-%m-%d %H:%M')}</small></p>")
