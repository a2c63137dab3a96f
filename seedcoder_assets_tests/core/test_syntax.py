import pytest

from seedcoder_assets.core.filters.syntax import SyntaxParams, check

P = SyntaxParams()

C_WITH_MACROS = """
#include <stdio.h>
#define DEFINE_GETTER(type, name) type get_##name(void) { return name; }
static int counter = 0;
DEFINE_GETTER(int, counter)
PyMODINIT_FUNC PyInit_mod(void) {
    Py_BEGIN_ALLOW_THREADS
    counter++;
    Py_END_ALLOW_THREADS
    return NULL;
}
int main(void) { printf("%d\\n", get_counter()); return 0; }
"""


@pytest.mark.parametrize(("code", "lang", "path", "verdict"), [
    ("def f(x):\n    return x + 1\n", "Python", "a.py", "ok"),
    ("def f(x:\n    return x +\n", "Python", "a.py", "syntax_error"),
    ('{"a": [1, 2, 3]}', "JSON", "a.json", "ok"),
    ('{"a": [1, 2,, }', "JSON", "a.json", "syntax_error"),
    (C_WITH_MACROS, "C", "m.c", "ok"),
    (C_WITH_MACROS[: len(C_WITH_MACROS) // 2] + "\n}}} ((( int int int ;;; [[[", "C", "m.c", "syntax_error"),
    ("BEGIN { print 1 }", "AWK", "a.awk", "unchecked"),
])
def test_check(code: str, lang: str, path: str, verdict: str) -> None:
    assert check(code, lang, path, P)[0] == verdict


def test_macro_noise_is_tolerated_only_where_configured() -> None:
    verdict, share = check(C_WITH_MACROS, "C", "m.c", SyntaxParams(max_error_share={}, default_max_error_share=0.0))
    assert verdict == "syntax_error" and 0 < share < P.limit("C")  # a literal has_error rule drops valid C


def test_c_header_with_cplusplus_guard_is_ok() -> None:
    header = '#ifdef __cplusplus\nextern "C" {\n#endif\nint add(int a, int b);\n#ifdef __cplusplus\n}\n#endif\n'
    verdict, share = check(header, "C", "x.h", P)
    assert verdict == "ok" and share < 0.02  # the C grammar alone puts `extern "C" {` in an ERROR node


@pytest.mark.parametrize("path", ["m.pyx", "m.pxd", "start.S", "legacy.f", "thing.m"])
def test_grammar_mismatches_are_unchecked(path: str) -> None:
    from seedcoder_assets.core.languages import language_of

    assert check("cdef int x = 1\n", language_of(path), path, P) == ("unchecked", None)


def test_untrusted_grammars_pass_as_unchecked_and_are_configurable() -> None:
    assert check("SELECT 1;", "SQL", "q.sql", P) == ("unchecked", None)
    assert check("SELECT 1;", "SQL", "q.sql", SyntaxParams(unchecked_languages=frozenset()))[0] == "ok"
