"""Read a draft (Markdown, plain text or .docx) into sentences with their line and claim ids."""

from __future__ import annotations

import bisect
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from pipeline.summarise import lint


@dataclass(frozen=True)
class DraftSentence:
    """One sentence of a draft: 1-based line, text as checked, cited ids (``C-id`` or ``C-id@v``)."""

    line: int
    text: str
    claim_ids: tuple[str, ...]


def read_draft(path: Path) -> str:
    """A draft's text: Markdown and .txt as they are, .docx paragraph by paragraph.

    A .txt draft has one block per line and per tab-separated cell (published fact sheets put
    headings and table rows on lines of their own); a .docx paragraph is one block (table cells
    too) and list paragraphs become Markdown bullets.

    Raises
    ------
    ValueError
        When a .docx is not a Word document (no ``word/document.xml``).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".docx":
        return _read_docx(path)
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


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def _read_docx(path: Path) -> str:
    """The paragraphs of a Word file, read from its ``word/document.xml`` (ECMA-376 WordprocessingML).

    Read with the standard library (zipfile, ElementTree) rather than python-docx: python-docx
    needs lxml, and lxml installed changes the bytes openpyxl writes (the xlsx exports).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            xml = archive.read("word/document.xml")
    except (zipfile.BadZipFile, KeyError) as error:
        raise ValueError(f"not a Word .docx file ({error})") from None
    root = ElementTree.fromstring(xml)
    blocks = []
    for paragraph in root.iter(f"{_W}p"):
        text = "".join(
            node.text or ("\t" if node.tag == f"{_W}tab" else "")
            for node in paragraph.iter()
            if node.tag in {f"{_W}t", f"{_W}tab"}
        ).strip()
        if not text:
            continue
        style = paragraph.find(f"{_W}pPr/{_W}pStyle")
        listed = paragraph.find(f"{_W}pPr/{_W}numPr") is not None or (
            style is not None and style.get(f"{_W}val", "").lower().startswith("list")
        )
        blocks.append(f"- {text}" if listed else text)
    return "\n\n".join(blocks) + "\n"
