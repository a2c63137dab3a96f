"""Fill-in-the-middle (paper 2.2.6): a document is split at two random character positions into prefix,
middle and suffix and rewritten as

    SPM (the paper's):  <[fim-suffix]>SUFFIX<[fim-prefix]>PREFIX<[fim-middle]>MIDDLE
    PSM:                <[fim-prefix]>PREFIX<[fim-suffix]>SUFFIX<[fim-middle]>MIDDLE

at a rate per phase (0.5 in regular pretraining, 0.1 in continued). Whether a document is transformed and
where it is cut depend only on (seed, phase, record id): re-runs are identical, on any machine.

The record id is the corpus's and the record's (a file in two corpora is cut independently in each).
The sentinels are parameters and never occur in a source text: a text that holds one is dropped (counted,
`fim_sentinel_in_text`) or, with `on_sentinel="escape"`, has a zero-width space put after the sentinel's
first character (counted), so the tokenizer never sees a real sentinel in data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import BaseModel, Field

SENTINEL_IN_TEXT: Final = "fim_sentinel_in_text"
ESCAPE: Final = "\u200b"


class FimParams(BaseModel, frozen=True):
    rate: float = Field(0.5, ge=0.0, le=1.0, description="Share of documents rewritten (paper: 0.5 regular, 0.1 "
                                                         "continued)")
    mode: Literal["spm", "psm"] = Field("spm", description="SPM (the paper's) or PSM")
    prefix: str = "<[fim-prefix]>"
    suffix: str = "<[fim-suffix]>"
    middle: str = "<[fim-middle]>"
    on_sentinel: Literal["drop", "escape"] = Field("drop", description="A source text holding a sentinel: drop it, "
                                                                       "or escape the sentinel")
    seed: int = Field(0, description="With the phase and the record id, decides every transform")

    @property
    def sentinels(self) -> tuple[str, str, str]:
        return self.prefix, self.suffix, self.middle


@dataclass(frozen=True)
class Fim:
    """A document as written: its text, and where it was cut (None: not transformed)."""

    text: str
    cuts: tuple[int, int] | None = None  # character positions in the (escaped) source: prefix | middle | suffix
    escaped: int = 0  # sentinel occurrences escaped in the source
    parts: tuple[str, str, str] | None = None  # prefix, middle, suffix (the tokenizer places the sentinels' ids)


def _draws(seed: int, phase: str, record_id: str) -> tuple[float, int, int]:
    digest = hashlib.blake2b(f"{seed}\x00{phase}\x00{record_id}".encode(), digest_size=24).digest()
    u = int.from_bytes(digest[:8], "little") / 2**64
    return u, int.from_bytes(digest[8:16], "little"), int.from_bytes(digest[16:], "little")


def holds_sentinel(text: str, params: FimParams) -> bool:
    return any(s in text for s in params.sentinels)


def escape_sentinels(text: str, params: FimParams) -> tuple[str, int]:
    count = 0
    for s in params.sentinels:
        n = text.count(s)
        if n:
            text = text.replace(s, s[0] + ESCAPE + s[1:])
            count += n
    return text, count


def fim_document(text: str, record_id: str, phase: str, params: FimParams) -> Fim | None:
    """The document a source text becomes in `phase`; None where it holds a sentinel and the policy drops it."""
    escaped = 0
    if holds_sentinel(text, params):
        if params.on_sentinel == "drop":
            return None
        text, escaped = escape_sentinels(text, params)
    u, a, b = _draws(params.seed, phase, record_id)
    if u >= params.rate or not text:
        return Fim(text, None, escaped)
    i, j = sorted((a % (len(text) + 1), b % (len(text) + 1)))
    prefix, middle, suffix = text[:i], text[i:j], text[j:]
    if params.mode == "spm":
        out = f"{params.suffix}{suffix}{params.prefix}{prefix}{params.middle}{middle}"
    else:
        out = f"{params.prefix}{prefix}{params.suffix}{suffix}{params.middle}{middle}"
    return Fim(out, (i, j), escaped, (prefix, middle, suffix))
