"""Check a fact-sheet draft against the evidence (``backpain check DRAFT``).

``claims`` reads every ``reports/**/claims.json`` into frozen :class:`Claim` records (one adapter
for old and new claim schemas), ``draft`` reads Markdown, text or .docx drafts into sentences,
``rules`` compares each sentence with the claim it cites (or flags evidence-like language that
cites none) and ``render`` writes the terminal, JSON and annotated HTML reports.
"""

from pipeline.check.claims import Claim, claim_from_record, load_claims
from pipeline.check.draft import DraftSentence, read_draft, split_draft
from pipeline.check.rules import Finding, check_draft

__all__ = [
    "Claim",
    "DraftSentence",
    "Finding",
    "check_draft",
    "claim_from_record",
    "load_claims",
    "read_draft",
    "split_draft",
]
