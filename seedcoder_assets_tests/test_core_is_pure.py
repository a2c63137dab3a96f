import subprocess
import sys


def test_core_imports_no_dagster() -> None:
    code = (
        "import pkgutil, importlib, sys, seedcoder_assets.core as c\n"
        "for m in pkgutil.walk_packages(c.__path__, 'seedcoder_assets.core.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('dagster' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
