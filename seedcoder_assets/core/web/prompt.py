"""The oracle prompt for web pages (ours: the paper gives none for 2.2.3), and the parser of its answer.

One request per page asks three things the web corpus needs: whether the page is code-related (the recall
model's label), which kind of site it is (the categories whose scores the paper found biased: documentation
and e-commerce over-scored, forums under-scored), and its quality for pretraining a code model, 0-10. The
answer ends in three fixed lines, so it parses without guessing and a vLLM server can be held to them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final

CATEGORIES: Final[tuple[str, ...]] = ("documentation", "reference_api", "qa_forum", "blog_tutorial", "ecommerce",
                                      "other")

WEB_PROMPT_TEMPLATE: Final[str] = (
    "You are an expert programmer curating web pages for the pretraining data of a code language model. Read "
    "the web page below (its URL, title and extracted text) and judge it.\n"
    "1. Code-related: is the page substantially about programming, software development, computer science or "
    "the use of programming tools (source code, APIs, libraries, configuration of developer tools, algorithms, "
    "debugging)? Answer yes or no. Pages that only mention software in passing, product pages, news and "
    "general help for end users of an application are not code-related.\n"
    "2. Category: which kind of site is it? One of: documentation (manuals and guides of a software project), "
    "reference_api (API and language references: signatures, parameters, return values), qa_forum (questions "
    "and answers, forums, issue threads, mailing lists), blog_tutorial (blog posts, tutorials, courses, "
    "articles), ecommerce (products, prices, shops, advertising), other.\n"
    "3. Rating: how useful is the page for teaching a model to write and understand code, from 0 to 10? Reward "
    "correct, well-explained code and technical depth; penalise boilerplate, navigation and link lists, "
    "marketing, machine-generated or spam text, and pages with little substance. A page that is not "
    "code-related gets at most 2.\n"
    "Begin with a brief explanation. Then end your answer with exactly these three lines:\n"
    "Category: [[C]]\nCode-related: [[yes or no]]\nRating: [[X]]\n"
    "URL: {URL}\n"
    "Title: {TITLE}\n"
    "Page text:\n"
    "{CONTENT}\n"
)

# Labels are cached by (page, oracle model, prompt version): any edit to the template is a new version.
WEB_PROMPT_VERSION: Final[str] = "web1-" + hashlib.sha256(WEB_PROMPT_TEMPLATE.encode()).hexdigest()[:12]

_CATEGORY = re.compile(r"Category:\s*\[\[\s*([a-z_]+)\s*\]\]", re.I)
_CODE = re.compile(r"Code-related:\s*\[\[\s*(yes|no)\s*\]\]", re.I)
_RATING = re.compile(r"Rating:\s*\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")
# vLLM `structured_outputs.regex`: the three lines alone (what a small model finishes reliably), or after an
# explanation free of "[".
ANSWER_ONLY_REGEX: Final[str] = (r"Category: \[\[(" + "|".join(CATEGORIES) + r")\]\]\nCode-related: \[\[(yes|no)\]\]\n"
                                 r"Rating: \[\[(10|[0-9])\]\]")
EXPLAINED_ANSWER_REGEX: Final[str] = r"[^\[\]]{0,1500}" + ANSWER_ONLY_REGEX
TRUNCATION_MARK: Final[str] = "\n[... truncated ...]"


@dataclass(frozen=True)
class WebJudgement:
    code_related: bool
    category: str
    rating: int


def render_web_prompt(url: str, title: str, text: str, max_chars: int) -> tuple[str, bool]:
    """The prompt for one page, the text cut at a line end past `max_chars` and marked; (prompt, truncated)."""
    truncated = len(text) > max_chars
    if truncated:
        cut = text.rfind("\n", 0, max_chars)
        text = text[: cut if cut > max_chars // 2 else max_chars] + TRUNCATION_MARK
    return WEB_PROMPT_TEMPLATE.format(URL=url, TITLE=title or "", CONTENT=text), truncated


def parse_web_answer(reply: str) -> WebJudgement | None:
    """The last of each of the three lines (an explanation may quote the format first); None unless all
    three are there, the category is one of ours and the rating is 0-10."""
    categories, codes, ratings = _CATEGORY.findall(reply), _CODE.findall(reply), _RATING.findall(reply)
    if not (categories and codes and ratings):
        return None
    category, rating = categories[-1].lower(), float(ratings[-1])
    if category not in CATEGORIES or not 0 <= rating <= 10 or rating != int(rating):
        return None
    return WebJudgement(code_related=codes[-1].lower() == "yes", category=category, rating=int(rating))
