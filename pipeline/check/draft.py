"""Read a draft (Markdown, plain text or .docx) into sentences with their line and claim ids."""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.summarise import lint


@dataclass(frozen=True)
class DraftSentence:
    """One sentence of a draft: 1-based line, text as checked, cited ids (``C-id`` or ``C-id@v``)."""

    line: int
    text: str
    claim_ids: tuple[str, ...]


def read_draft(path: Path) -> str:
    """A draft's text: Markdown and .txt as they are, .docx paragraph by paragraph (python-docx).

    A .txt draft has one block per line and per tab-separated cell (published fact sheets put
    headings and table rows on lines of their own); a .docx paragraph is one block, list
    paragraphs become Markdown bullets and table cells blocks of their own.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".docx":
        import docx  # python-docx

        document = docx.Document(str(path))
        blocks = []
        for paragraph in document.paragraphs:
            text = paragraph.text.strip()
            if not text:
                continue
            style = (paragraph.style.name if paragraph.style is not None else "") or ""
            blocks.append(f"- {text}" if style.lower().startswith("list") else text)
        for table in document.tables:
            for row in table.rows:
                blocks.extend(cell.text.strip() for cell in row.cells if cell.text.strip())
        return "\n\n".join(blocks) + "\n"
    text = path.read_text(encoding="utf-8")
    if suffix == ".txt":
        text = "\n\n".join(line.replace("\t", "\n\n") for line in text.splitlines())
    return text


def split_draft(text: str, source: str | None = None) -> list[DraftSentence]:
    """Sentences of a draft with the claim ids cited in each and the line each starts on.

    Notes
    -----
    Sentence splitting is :func:`pipeline.summarise.lint.split_sentences` (Markdown stripped, a
    claim id after the stop belongs to the sentence before). The line is found by searching the
    sentence's first words in the lines of ``source`` (the file as written, default ``text``),
    moving forward through the draft.
    """
    starts: list[int] = []
    parts: list[str] = []
    offset = 0
    for line in (source or text).splitlines():
        flat = _normalise(lint._CLAIM_ID_WITH_SPACE.sub(" ", line))
        starts.append(offset)
        parts.append(flat)
        offset += len(flat) + 1
    whole = " ".join(parts)
    result = []
    cursor = 0
    for sentence, ids in lint._sentences_with_ids(text):
        probe = _normalise(sentence)[:80].strip()
        position = whole.find(probe, cursor) if probe else -1
        if position < 0:
            position = cursor
        else:
            cursor = position + len(probe)
        line_no = bisect.bisect_right(starts, position) - 1
        result.append(DraftSentence(max(line_no, 0) + 1, sentence, ids))
    return result


def _normalise(text: str) -> str:
    """Lower-case words separated by single spaces (for finding a sentence's line)."""
    return " ".join(re.sub(r"\W+", " ", lint._strip_inline(text)).lower().split())
