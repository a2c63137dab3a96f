"""Language of a source file from its extension or file name.

The language set is the 89 languages of Seed-Coder's appendix A.1 (the StarCoder
selection of The Stack). Extensions follow GitHub linguist for those languages.
Anything else is non-code and is dropped by the language filter with a reason.
"""

from __future__ import annotations

import posixpath
from typing import Final

# Appendix A.1 of the paper, verbatim: the languages a code file may be in.
PAPER_LANGUAGES: Final[frozenset[str]] = frozenset((
    "ANTLR, Ada, Agda, Alloy, AppleScript, Assembly, Augeas, AWK, Batchfile, Bluespec, C, C#, C++, CMake, CSS, "
    "Clojure, CoffeeScript, Common Lisp, CUDA, Dart, Dockerfile, Elixir, Elm, Emacs Lisp, Erlang, F#, Fortran, GLSL, "
    "Go, Groovy, HTML, Haskell, Idris, Isabelle, JSON, Java, Java Server Pages, JavaScript, Julia, Kotlin, Lean, "
    "Literate Agda, Literate CoffeeScript, Literate Haskell, Lua, Makefile, Maple, Markdown, Mathematica, MATLAB, "
    "OCaml, PHP, Pascal, Perl, PowerShell, Prolog, Protocol Buffer, Python, R, RMarkdown, Racket, Ruby, Rust, SAS, "
    "SPARQL, SQL, Scala, Scheme, Shell, Smalltalk, Solidity, Stan, Standard ML, Stata, Swift, SystemVerilog, Tcl, "
    "Tcsh, TeX, Thrift, TypeScript, VHDL, Verilog, Visual Basic, XSLT, YAML, Yacc, Zig, reStructuredText"
).split(", "))

# language -> (extensions, exact file names). Extensions are lower-case, without the dot.
LANGUAGES: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "Ada": (("adb", "ada", "ads"), ()),
    "Agda": (("agda",), ()),
    "Alloy": (("als",), ()),
    "ANTLR": (("g4",), ()),
    "AppleScript": (("applescript", "scpt"), ()),
    "Assembly": (("asm", "a51", "nasm", "s"), ()),
    "Augeas": (("aug",), ()),
    "AWK": (("awk", "gawk", "mawk", "nawk"), ()),
    "Batchfile": (("bat", "cmd"), ()),
    "Bluespec": (("bsv",), ()),
    "C": (("c", "h"), ()),
    "C#": (("cs", "csx"), ()),
    "C++": (("cpp", "cc", "cxx", "c++", "hpp", "hh", "hxx", "h++", "ipp", "tcc", "tpp", "inl"), ()),
    "Clojure": (("clj", "cljs", "cljc", "edn"), ()),
    "CMake": (("cmake",), ("CMakeLists.txt",)),
    "CoffeeScript": (("coffee",), ()),
    "Common Lisp": (("lisp", "lsp", "cl", "asd"), ()),
    "CSS": (("css",), ()),
    "CUDA": (("cu", "cuh"), ()),
    "Dart": (("dart",), ()),
    "Dockerfile": (("dockerfile",), ("Dockerfile", "Containerfile")),
    "Elixir": (("ex", "exs"), ()),
    "Elm": (("elm",), ()),
    "Emacs Lisp": (("el",), (".emacs",)),
    "Erlang": (("erl", "hrl"), ()),
    "F#": (("fs", "fsi", "fsx"), ()),
    "Fortran": (("f", "f77", "f90", "f95", "f03", "f08", "for", "ftn"), ()),
    "GLSL": (("glsl", "vert", "frag", "geom", "comp"), ()),
    "Go": (("go",), ()),
    "Groovy": (("groovy", "gradle", "gvy"), ("Jenkinsfile",)),
    "Haskell": (("hs", "hsc"), ()),
    "HTML": (("html", "htm", "xhtml"), ()),
    "Idris": (("idr",), ()),
    "Isabelle": (("thy",), ()),
    "Java": (("java",), ()),
    "Java Server Pages": (("jsp",), ()),
    "JavaScript": (("js", "mjs", "cjs", "jsx"), ()),
    "JSON": (("json",), ()),
    "Julia": (("jl",), ()),
    "Kotlin": (("kt", "kts"), ()),
    "Lean": (("lean",), ()),
    "Literate Agda": (("lagda",), ()),
    "Literate CoffeeScript": (("litcoffee",), ()),
    "Literate Haskell": (("lhs",), ()),
    "Lua": (("lua",), ()),
    "Makefile": (("mk", "mak", "make"), ("Makefile", "GNUmakefile", "makefile")),
    "Maple": (("mpl",), ()),
    "Markdown": (("md", "markdown"), ()),
    "Mathematica": (("nb", "wl", "wls"), ()),
    "MATLAB": (("matlab",), ()),
    "OCaml": (("ml", "mli"), ()),
    "Pascal": (("pas", "pp", "dpr", "lpr"), ()),
    "Perl": (("pl", "pm", "t"), ()),
    "PHP": (("php", "phtml"), ()),
    "PowerShell": (("ps1", "psm1", "psd1"), ()),
    "Prolog": (("pro", "prolog"), ()),
    "Protocol Buffer": (("proto",), ()),
    "Python": (("py", "pyi", "pyx", "pxd"), ()),
    "R": (("r",), ()),
    "Racket": (("rkt",), ()),
    "reStructuredText": (("rst",), ()),
    "RMarkdown": (("rmd",), ()),
    "Ruby": (("rb", "rake", "gemspec"), ("Rakefile", "Gemfile")),
    "Rust": (("rs",), ()),
    "SAS": (("sas",), ()),
    "Scala": (("scala", "sc"), ()),
    "Scheme": (("scm", "ss"), ()),
    "Shell": (("sh", "bash", "zsh", "ksh"), ()),
    "Smalltalk": (("st",), ()),
    "Solidity": (("sol",), ()),
    "SPARQL": (("sparql", "rq"), ()),
    "SQL": (("sql",), ()),
    "Stan": (("stan",), ()),
    "Standard ML": (("sml", "sig"), ()),
    "Stata": (("do", "ado"), ()),
    "Swift": (("swift",), ()),
    "SystemVerilog": (("sv", "svh"), ()),
    "Tcl": (("tcl",), ()),
    "Tcsh": (("tcsh", "csh"), ()),
    "TeX": (("tex", "sty", "cls", "bib"), ()),
    "Thrift": (("thrift",), ()),
    "TypeScript": (("ts", "tsx", "mts", "cts"), ()),
    "Verilog": (("v", "vh"), ()),
    "VHDL": (("vhd", "vhdl"), ()),
    "Visual Basic": (("vb", "bas", "vbs"), ()),
    "XSLT": (("xsl", "xslt"), ()),
    "Yacc": (("y", "yacc"), ()),
    "YAML": (("yml", "yaml"), ()),
    "Zig": (("zig",), ()),
}

# Where two languages claim an extension, the one with far more files on GitHub wins
# (linguist would look at the content; a file-name rule keeps this stage O(1) per file).
_EXTENSION_OWNER: Final[dict[str, str]] = {"cl": "Common Lisp", "m": "MATLAB"}

# tree-sitter-language-pack 0.13 grammar per language; languages missing here (AWK, Prolog,
# Smalltalk, Bluespec, ... have no bundled grammar) pass the syntax stage as "unchecked".
GRAMMARS: Final[dict[str, str]] = {
    "Ada": "ada", "Agda": "agda", "Assembly": "asm", "C": "c", "C#": "csharp", "C++": "cpp", "Clojure": "clojure", "CMake": "cmake", "Common Lisp": "commonlisp",
    "CSS": "css", "CUDA": "cuda", "Dart": "dart", "Dockerfile": "dockerfile", "Elixir": "elixir", "Elm": "elm",
    "Emacs Lisp": "elisp", "Erlang": "erlang", "F#": "fsharp", "Fortran": "fortran", "GLSL": "glsl", "Go": "go",
    "Groovy": "groovy", "Haskell": "haskell", "HTML": "html", "Java": "java", "JavaScript": "javascript",
    "JSON": "json", "Julia": "julia", "Kotlin": "kotlin", "Lua": "lua", "Makefile": "make",
    "Markdown": "markdown", "MATLAB": "matlab", "OCaml": "ocaml", "Pascal": "pascal",
    "Perl": "perl", "PHP": "php", "PowerShell": "powershell", "Protocol Buffer": "proto",
    "Python": "python", "R": "r", "Racket": "racket", "reStructuredText": "rst", "Ruby": "ruby", "Rust": "rust",
    "Scala": "scala", "Scheme": "scheme", "Shell": "bash", "Solidity": "solidity", "Swift": "swift",
    "SPARQL": "sparql", "SQL": "sql", "SystemVerilog": "verilog", "Tcl": "tcl", "TeX": "latex",
    "Thrift": "thrift", "TypeScript": "typescript", "Verilog": "verilog", "VHDL": "vhdl", "XSLT": "xml",
    "YAML": "yaml", "Zig": "zig",
}

# .tsx needs the tsx grammar. Cython (.pyx/.pxd/.pxi) is not Python: no grammar, "unchecked".
# GNU-as .s/.S and fixed-form Fortran (.f/.for/.f77) do not match the bundled grammars
# (99% and 48% of released files parse with errors, benchmarks/bench_syntax.py): unchecked.
GRAMMAR_BY_EXTENSION: Final[dict[str, str]] = {
    "tsx": "tsx", "jsx": "javascript", "pyx": "", "pxd": "", "pxi": "",
    "s": "", "asm": "", "a51": "", "nasm": "", "f": "", "for": "", "f77": "", "ftn": "",
    "m": "",  # MATLAB or Objective-C: the name cannot tell, so no grammar can judge it
}

# When the first grammar reports errors, these are tried too and the best parse counts:
# C headers are routinely C++ (`extern "C" {` guards, classes in .h), and C is nearly a subset of C++.
FALLBACK_GRAMMARS: Final[dict[str, tuple[str, ...]]] = {"c": ("cpp",), "cuda": ("cpp",)}


def _build_index() -> tuple[dict[str, str], dict[str, str]]:
    by_ext: dict[str, str] = {}
    by_name: dict[str, str] = {}
    for lang, (exts, names) in LANGUAGES.items():
        for ext in exts:
            by_ext.setdefault(ext, lang)
        for name in names:
            by_name[name] = lang
    by_ext.update(_EXTENSION_OWNER)
    return by_ext, by_name


_BY_EXT, _BY_NAME = _build_index()


def file_extension(path: str) -> str:
    """Lower-case extension of the last path component, '' if none (dot files have none)."""
    base = posixpath.basename(path)
    dot = base.rfind(".")
    return base[dot + 1 :].lower() if dot > 0 else ""


def language_of(path: str) -> str | None:
    """Language of a file path, or None when the file is not code in the 89-language set.

    Args:
        path: path inside the repository, '/'-separated.

    Returns:
        The language name as in `LANGUAGES`, or None.
    """
    base = posixpath.basename(path)
    if base in _BY_NAME:
        return _BY_NAME[base]
    if base.startswith("Dockerfile."):
        return "Dockerfile"
    return _BY_EXT.get(file_extension(path))


def grammar_of(language: str | None, path: str) -> str | None:
    """tree-sitter grammar name for a file, or None when no grammar covers its language."""
    if language is None:
        return None
    ext = file_extension(path)
    if ext in GRAMMAR_BY_EXTENSION:
        return GRAMMAR_BY_EXTENSION[ext] or None
    return GRAMMARS.get(language)
