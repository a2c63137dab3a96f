import pytest

from seedcoder_assets.core.languages import GRAMMARS, LANGUAGES, PAPER_LANGUAGES, grammar_of, language_of


def test_the_89_languages_of_the_paper_and_every_grammar_loads() -> None:
    from tree_sitter_language_pack import get_parser

    assert len(PAPER_LANGUAGES) == 89  # core/languages.py holds the paper's A.1 list verbatim
    assert set(LANGUAGES) == PAPER_LANGUAGES
    for grammar in set(GRAMMARS.values()):
        get_parser(grammar)


@pytest.mark.parametrize(
    ("path", "language"),
    [("src/a.py", "Python"), ("A.PY", "Python"), ("x/CMakeLists.txt", "CMake"), ("Dockerfile", "Dockerfile"),
     ("Dockerfile.dev", "Dockerfile"), ("lib/x.hpp", "C++"), ("m.h", "C"), ("a.tsx", "TypeScript"),
     ("Makefile", "Makefile"), ("README", None), ("LICENSE.txt", None), ("setup.cfg", None),
     (".gitignore", None), ("data.csv", None), ("x.ipynb", None), ("App.swift", "Swift"), ("x.litcoffee", "Literate CoffeeScript")],
)
def test_language_of(path: str, language: str | None) -> None:
    assert language_of(path) == language


def test_grammar_of() -> None:
    assert grammar_of("TypeScript", "a.tsx") == "tsx"
    assert grammar_of("TypeScript", "a.ts") == "typescript"
    assert grammar_of("AWK", "x.awk") is None
    assert grammar_of(None, "x") is None
