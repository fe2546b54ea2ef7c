"""dpcore never imports streamlit (the UI depends on the core, never the reverse); the New run form never
imports torch."""

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


# ----------------------------------------------------------------------------- no torch for the form
# The dashboard process draws the New run form (corpus sizes, calibrated noise, predicted ε) on every
# change; importing torch there costs seconds and hundreds of MB. These modules must not load it.
HEAVY = ("torch", "opacus")
VIEWS = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for p in (ROOT / "dpcore" / "views").glob("*.py")
)
TORCH_FREE = [*VIEWS, "dpcore.privacy.plan", "dpcore.privacy.accounting", "dpcore.data", "dpcore.data.dataset",
              "dpcore.data.prior", "dpcore.runs.store", "dpcore.runs.executors.local",
              "dpcore.runs.executors.registry", "dpcore.runs.lifecycle", "dpcore.audit.one_run",
              "dpcore.audit.lab", "dpcore.runs.lab_games", "dpcore.runs.gallery", "dpcore.runs.gallery_snapshot",
              "dpcore.training.result"]


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_form_modules_import_no_torch():
    """One fresh interpreter imports each module in turn and names the first that loaded torch or Opacus."""
    code = "import importlib, sys\n"
    for module in TORCH_FREE:
        code += (f"importlib.import_module({module!r})\n"
                 f"loaded = [m for m in {HEAVY!r} if m in sys.modules]\n"
                 f"assert not loaded, f'importing {module} loaded {{loaded}}'\n")
    out = _run(code)
    assert out.returncode == 0, out.stderr[-2000:]


def test_the_default_preview_is_computed_without_torch():
    """preview(TrainConfig()): RDP calibration and curve on the built-in corpus, in a fresh process."""
    code = (
        "import sys\n"
        "from dpcore.config import TrainConfig\n"
        "from dpcore.runs.preview import data_summary, preview\n"
        "config = TrainConfig()\n"
        "assert config.accountant == 'rdp' and config.corpus == 'builtin'\n"
        "pv = preview(config)\n"
        "assert config.unit == 'user' and pv.unit == 'user'\n"
        "assert pv.num_train == data_summary(config)['num_train_users'] > 0 and pv.final_epsilon > 0\n"
        f"loaded = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "assert not loaded, f'the preview loaded {loaded}'\n"
    )
    out = _run(code)
    assert out.returncode == 0, out.stderr[-2000:]


def test_a_fast_engine_run_never_loads_opacus():
    """Opacus costs about a second of worker start-up: only the runs that train on it import it."""
    code = (
        "import sys, torch\n"
        "from dpcore.training.loop import run_training\n"
        "from dpcore.training.engines import build_engine, engine_class\n"
        "assert engine_class('gaussian', 'fast').__name__ == 'FastGaussianEngine'\n"
        "assert engine_class('none', 'fast').__name__ == 'NonPrivateEngine'\n"
        "assert 'opacus' not in sys.modules, sorted(m for m in sys.modules if m.startswith('opacus'))[:3]\n"
        "assert engine_class('gaussian', 'opacus').__name__ == 'OpacusGaussianEngine'\n"
        "assert 'opacus' in sys.modules\n"
    )
    out = _run(code)
    assert out.returncode == 0, out.stderr[-2000:]
