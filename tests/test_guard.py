"""dpcore never imports streamlit (the UI depends on the core, never the reverse)."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.conftest import ROOT


def test_no_streamlit_import_in_dpcore_sources():
    offenders = []
    for path in (ROOT / "dpcore").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "streamlit"]
    assert offenders == []


def test_importing_every_dpcore_module_loads_no_streamlit():
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in (ROOT / "dpcore").rglob("*.py") if p.name != "__main__.py"
    )
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    code += "assert 'streamlit' not in sys.modules, 'streamlit was imported'\n"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
