import pytest

from seedcoder_assets.core.languages import GRAMMARS, LANGUAGES, PAPER_LANGUAGES, grammar_of, language_of

# Appendix A.1 of the paper, verbatim.
PAPER_A1 = (
    "ANTLR, Ada, Agda, Alloy, AppleScript, Assembly, Augeas, AWK, Batchfile, Bluespec, C, C#, C++, CMake, CSS, "
    "Clojure, CoffeeScript, Common Lisp, CUDA, Dart, Dockerfile, Elixir, Elm, Emacs Lisp, Erlang, F#, Fortran, GLSL, "
    "Go, Groovy, HTML, Haskell, Idris, Isabelle, JSON, Java, Java Server Pages, JavaScript, Julia, Kotlin, Lean, "
    "Literate Agda, Literate CoffeeScript, Literate Haskell, Lua, Makefile, Maple, Markdown, Mathematica, MATLAB, "
    "OCaml, PHP, Pascal, Perl, PowerShell, Prolog, Protocol Buffer, Python, R, RMarkdown, Racket, Ruby, Rust, SAS, "
    "SPARQL, SQL, Scala, Scheme, Shell, Smalltalk, Solidity, Stan, Standard ML, Stata, Swift, SystemVerilog, Tcl, "
    "Tcsh, TeX, Thrift, TypeScript, VHDL, Verilog, Visual Basic, XSLT, YAML, Yacc, Zig, reStructuredText"
).split(", ")


def test_the_89_languages_of_the_paper_and_every_grammar_loads() -> None:
    from tree_sitter_language_pack import get_parser

    assert len(PAPER_A1) == 89
    assert set(LANGUAGES) == set(PAPER_A1) == PAPER_LANGUAGES
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
