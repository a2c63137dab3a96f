"""Jupyter notebooks as code: the code cells plus the markdown, in jupytext's percent format.

A notebook is JSON whose bulk is usually outputs (images, tables, tracebacks). What a code model should
read is the code and the prose around it, so a notebook is stored as a script of its kernel's language:
`# %%` before each code cell, `# %% [markdown]` before each markdown cell with its lines commented, magics
(`%matplotlib`, `!pip`) commented out, outputs and metadata left out (jupytext, the format StarCoder2's
Jupyter scripts use). The file keeps its `.ipynb` path; its language is the kernel's, so the syntax stage
parses the script with that language's grammar and every later stage treats it as code of that language.
"""

from __future__ import annotations

import json
import logging
import warnings
from typing import Final

# jupytext's language (from the kernel) -> (the script extension that gives jupytext its comment style,
# our language). Kernels of languages outside the paper's 89 (q, IDL, Robot Framework, SoS, Sage, Maxima,
# gnuplot, xonsh, Coconut, Logtalk) are not code we keep.
_KERNELS: Final[dict[str, tuple[str, str]]] = {
    "python": (".py", "Python"), "r": (".R", "R"), "julia": (".jl", "Julia"), "c++": (".cpp", "C++"),
    "scheme": (".scm", "Scheme"), "clojure": (".clj", "Clojure"), "bash": (".sh", "Shell"),
    "powershell": (".ps1", "PowerShell"), "matlab": (".m", "MATLAB"), "wolfram language": (".wolfram", "Mathematica"),
    "javascript": (".js", "JavaScript"), "typescript": (".ts", "TypeScript"), "scala": (".scala", "Scala"),
    "rust": (".rs", "Rust"), "csharp": (".cs", "C#"), "fsharp": (".fsx", "F#"), "java": (".java", "Java"),
    "groovy": (".groovy", "Groovy"), "ocaml": (".ml", "OCaml"), "haskell": (".hs", "Haskell"), "tcl": (".tcl", "Tcl"),
    "stata": (".do", "Stata"), "sas": (".sas", "SAS"), "lua": (".lua", "Lua"), "go": (".go", "Go"),
}
# Names kernels give their language that jupytext's table spells otherwise.
_ALIASES: Final[dict[str, str]] = {
    "python3": "python", "python2": "python", "ipython": "python", "cpp": "c++", "c++11": "c++", "c++14": "c++",
    "c++17": "c++", "c++20": "c++", "c#": "csharp", "f#": "fsharp", "sh": "bash", "zsh": "bash", "shell": "bash",
    "octave": "matlab", "mathematica": "wolfram language", "node": "javascript", "js": "javascript",
    "ts": "typescript",
}
# Why a notebook is not kept, beside the ingest reasons (empty, binary, undecodable, oversized).
BAD_NOTEBOOK: Final = "bad_notebook"  # not JSON, or not a notebook nbformat can read
OLD_NOTEBOOK: Final = "old_notebook_format"  # nbformat 1-3 (before 2015): jupytext reads version 4 only
NOTEBOOK_LANGUAGE: Final = "notebook_language_not_code"  # a kernel outside the 89 languages
EMPTY_NOTEBOOK: Final = "empty_notebook"  # no code in any cell

IS_NOTEBOOK_SUFFIX: Final = ".ipynb"


class _QuietValidation(logging.Filter):
    """nbformat logs every schema violation through traitlets' logger and then reads the notebook anyway;
    jupytext converts such notebooks, so the message is noise in a crawl of thousands."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Notebook JSON is invalid")


logging.getLogger("traitlets").addFilter(_QuietValidation())


def is_notebook(path: str) -> bool:
    return path.lower().endswith(IS_NOTEBOOK_SUFFIX)


def without_outputs(data: bytes) -> bytes:
    """A notebook's JSON without its cells' outputs (most of its bytes: plots, tables), so a repository of
    big notebooks holds little while its members are read; what is not a readable notebook stays as it is,
    for `notebook_script` to give its reason."""
    try:
        raw = json.loads(data)
        for cell in raw.get("cells", []) if isinstance(raw, dict) else []:
            if isinstance(cell, dict) and cell.get("outputs"):
                cell["outputs"] = []
        return json.dumps(raw).encode()  # ASCII with \u escapes: a lone surrogate stays an escape
    except (ValueError, RecursionError, TypeError, AttributeError):
        return data


def kernel_language(metadata: dict) -> str:
    """The notebook's language, lower-cased as jupytext names it: the kernelspec's, else language_info's,
    else Python (Jupyter's default kernel, and what notebooks without metadata were written for)."""
    spec = metadata.get("kernelspec") or {}
    info = metadata.get("language_info") or {}
    name = str((spec.get("language") if isinstance(spec, dict) else None)
               or (info.get("name") if isinstance(info, dict) else None) or "python").strip().lower()
    return _ALIASES.get(name, name)


def notebook_script(text: str) -> tuple[str | None, str | None, str | None]:
    """(script, language, None) for a readable notebook with code, else (None, None, reason)."""
    import jupytext

    try:
        raw = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than the parser's stack
        return None, None, BAD_NOTEBOOK
    if not isinstance(raw, dict) or not isinstance(raw.get("metadata", {}), dict):
        return None, None, BAD_NOTEBOOK
    if not isinstance(raw.get("nbformat"), int) or raw["nbformat"] < 4:
        return None, None, OLD_NOTEBOOK if isinstance(raw.get("nbformat"), int) else BAD_NOTEBOOK
    ext, language = _KERNELS.get(kernel_language(raw.get("metadata", {})), (None, None))
    if ext is None:
        return None, None, NOTEBOOK_LANGUAGE
    with warnings.catch_warnings():  # nbformat warns about missing cell ids and untested minor versions
        warnings.simplefilter("ignore")
        try:
            nb = jupytext.reads(text, fmt="ipynb")
            if not any(c.get("cell_type") == "code" and str(c.get("source", "")).strip() for c in nb.cells):
                return None, None, EMPTY_NOTEBOOK
            # No header, no cell metadata: the script holds the cells and nothing else.
            nb.metadata["jupytext"] = {"notebook_metadata_filter": "-all", "cell_metadata_filter": "-all"}
            script = jupytext.writes(nb, fmt=f"{ext}:percent")
        except MemoryError:  # the machine's fault, not the notebook's: fail the step so it is retried
            raise
        except Exception:  # nbformat's validation and jupytext raise many kinds; each one is a bad notebook
            return None, None, BAD_NOTEBOOK
    return script, language, None
