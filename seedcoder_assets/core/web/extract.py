"""HTML to the text of a page, with its code blocks verbatim (Resiliparse for the text; chosen by
benchmarks/bench_web.py: it keeps every indented line of `<pre>` blocks where Trafilatura keeps 84%,
at a sixth of the CPU).

A page is *code-tagged* when it has a `<pre>` or `<code>` element with text in it: those pages take the
rule branch of the web corpus (the paper's "explicit code tags"), the rest go through the fastText recall.
Main-content extraction drops navigation and footers; `<pre>` text keeps its whitespace byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.html import HTMLTree, NodeType
from selectolax.lexbor import LexborHTMLParser

WORD = re.compile(r"\w+")
TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)[^>]*?(/?)>")
VOID = frozenset("area base br col embed hr img input link meta source track wbr param keygen".split())


@dataclass(frozen=True)
class ExtractedPage:
    title: str
    text: str
    code_blocks: list[str]  # every non-empty `<pre>` element's text, verbatim
    code_tags: int  # `<pre>` elements with text and `<code>` elements
    code_blocks_in_text: int  # code blocks found verbatim in `text` (main-content extraction may drop one)
    depth: int  # element nesting depth, or an upper bound of it
    words: int


class TooDeep(Exception):
    def __init__(self, depth: int) -> None:
        super().__init__(f"nested deeper than {depth}")
        self.depth = depth


def nesting_depth(tree: HTMLTree, limit: int) -> int:
    """The deepest element's depth, or `limit + 1` as soon as it is passed (main-content extraction is
    quadratic in depth: 8,000 levels take a second, 100,000 would take hours)."""
    stack = [(tree.document, 0)]
    deepest = 0
    while stack:
        node, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                return deepest
        child = node.first_child
        while child is not None:
            if child.type == NodeType.ELEMENT:
                stack.append((child, depth + 1))
            child = child.next
    return deepest


def depth_bound(html: str) -> int:
    """An upper bound of the nesting depth from the tags alone (opened minus closed, void elements aside,
    plus the levels a parser adds): cheap, and exact enough to skip the tree walk on almost every page."""
    depth = deepest = 0
    for m in TAG.finditer(html):
        if m.group(1):
            depth = max(0, depth - 1)
        elif not m.group(3) and m.group(2).lower() not in VOID:
            depth += 1
            deepest = max(deepest, depth)
    return deepest + 4


def count_words(text: str) -> int:
    return len(WORD.findall(text))


def extract(html: str, max_depth: int = 1024, main_content: bool = True) -> ExtractedPage:
    """Title, main text and code blocks of a page (raises TooDeep past `max_depth`)."""
    tree = HTMLTree.parse(html)
    depth = depth_bound(html)
    if depth > max_depth:  # the bound says it may be too deep: walk the tree the parser built to know
        depth = nesting_depth(tree, max_depth)
    if depth > max_depth:
        raise TooDeep(max_depth)
    # The code blocks through lexbor (selectolax): Resiliparse's node.text walks the whole document per
    # call (43 s for the 2,313 <pre> of Node's all.html, against 0.13 s here), with the same text.
    dom = LexborHTMLParser(html)
    blocks = [b for b in (n.text(deep=True, separator="") for n in dom.css("pre")) if b.strip()]
    tags = len(blocks) + len(dom.css("code"))
    text = extract_plain_text(tree, preserve_formatting=True, main_content=main_content, alt_texts=False)
    return ExtractedPage(title=(tree.title or "").strip(), text=text, code_blocks=blocks, code_tags=tags,
                         code_blocks_in_text=sum(1 for b in blocks if b.strip("\n") in text),
                         depth=depth, words=count_words(text))
