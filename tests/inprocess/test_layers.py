"""The layers stay apart: the analysis core imports nothing of the service or the CLI.

The core must run in a 128 MB function with only numpy and the decoders installed, so an
import of Flask, huey or redis from it (even an indirect one) is a bug, and so is an import
of a service layer from a lower one (web -> jobs -> analysis, never back).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "featherbeat"

# Lower number = lower layer; a module may import its own layer or lower ones only.
# featherbeat.testing (support code of tests/ and bench/) sits above everything.
LAYERS = {"analysis": 0, "jobs": 1, "web": 2, "cli": 3, "testing": 4}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "featherbeat" or len(parts) < 2:
        return None
    return LAYERS.get(parts[1])


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[str]:
    """Absolute names of the featherbeat modules a file imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path)
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append(name)
    return [name for name in found if name.startswith("featherbeat")]


def test_no_module_imports_a_higher_layer() -> None:
    offenders = []
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 30, "the package layout moved: update this test"
    for path in files:
        own = _layer(_module_name(path))
        if own is None:
            continue
        for name in _imports(path):
            target = _layer(name)
            if target is not None and target > own:
                offenders.append(f"{_module_name(path)} imports {name}")
    assert offenders == []


def test_importing_the_whole_core_loads_no_service_module() -> None:
    core = sorted(
        _module_name(p)
        for p in (PACKAGE / "analysis").rglob("*.py")
        if "__pycache__" not in p.parts
    )
    script = (
        "import importlib, json, sys\n"
        f"for name in {core!r}:\n"
        "    importlib.import_module(name)\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('flask', 'huey', 'redis', 'gunicorn', 'werkzeug', 'scipy', 'numba', 'librosa') "
        "or m.startswith(('featherbeat.web', 'featherbeat.jobs', 'featherbeat.cli')))\n"
        "print(json.dumps(loaded))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert len(core) > 20
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_format_registry_and_the_version_load_no_numpy() -> None:
    """Every layer reads FORMATS / MEDIA_TYPES / EXTENSIONS and __version__ from their one home;
    the CLI must do so before numpy loads (it sets OPENBLAS_NUM_THREADS first)."""
    script = (
        "import sys\n"
        "import featherbeat\n"
        "from featherbeat.analysis.formats import EXTENSIONS, FORMATS, MEDIA_TYPES\n"
        "assert set(FORMATS) == set(EXTENSIONS) == set(MEDIA_TYPES)\n"
        "print(featherbeat.__version__, 'numpy' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    version, numpy_loaded = out.stdout.split()
    assert numpy_loaded == "False"
    # One home: __init__.py; the installed metadata (what pip shows) is read from it.
    from importlib.metadata import version as installed_version

    assert installed_version("featherbeat") == version
    pyproject = (PACKAGE.parents[1] / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and '\nversion = "' not in pyproject


def test_stage_names_have_one_home() -> None:
    """analysis/progress.Stage is the list; the API's schema and the page's words follow it."""
    import re

    from featherbeat.analysis.progress import Stage

    spec = json.loads((PACKAGE / "web" / "openapi.json").read_text())
    enum = spec["components"]["schemas"]["Job"]["properties"]["stage"]["enum"]
    assert enum == [*Stage, None]
    page = (PACKAGE / "web" / "static" / "js" / "progress.js").read_text()
    table = page[page.index("const STAGE_TEXT = {") : page.index("};", page.index("STAGE_TEXT"))]
    assert re.findall(r"^\s+(\w+):", table, flags=re.M) == list(Stage)


def test_no_importlib_of_our_modules_and_the_environment_read_once() -> None:
    """Plain imports only (mypy and a reader follow them), and FEATHERBEAT_* read by
    config.Settings.from_env alone: a second reader would be a second parser and default."""
    readers = ('environ.get("FEATHERBEAT_', 'environ["FEATHERBEAT_', 'env.get("FEATHERBEAT_')
    importlib_use, env_reads = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        if name.startswith("featherbeat.testing"):
            continue  # the test harnesses set variables for the processes they start
        text = path.read_text()
        if "import_module(" in text or "spec_from_file_location(" in text:
            importlib_use.append(name)
        if name != "featherbeat.config" and any(r in text for r in readers):
            env_reads.append(name)
    assert importlib_use == []
    assert env_reads == []
