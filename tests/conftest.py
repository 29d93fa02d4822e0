"""Shared fixtures and the layout of the suite.

Tests are grouped the way their markers group them: ``tests/inprocess/`` (no marker: real parts
in one process, no server, no Redis, no browser), ``tests/service/`` (``service``: a real
gunicorn + consumer), ``tests/redis/`` (``redis``: a real redis-server), ``tests/browser/``
(``browser``: headless Chromium) and ``tests/eval/`` (``eval``: ../shared/eval audio, skipped
cleanly when it is absent). A test module gets its folder's marker here, so ``pytest
tests/service`` and ``pytest -m service`` select the same tests (a test in inprocess/ that
also reads the eval audio carries ``eval`` itself).
Support code (signals, profiles, service / Redis / S3 harnesses) is the featherbeat.testing
package, shared with bench/.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

# The fixtures of the shared support package (featherbeat.testing): ``service`` (a real
# gunicorn + consumer), ``redis_server`` (a real redis-server per test), ``redis_url`` (one per module) and ``s3_endpoint`` /
# ``s3_env`` / ``bucket`` (moto's S3 server on loopback), for every test module.
pytest_plugins = [
    "featherbeat.testing.service",
    "featherbeat.testing.redis_server",
    "featherbeat.testing.s3_server",
]

ROOT = Path(__file__).resolve().parent.parent
EVAL_DIR = ROOT.parent / "shared" / "eval"


@pytest.fixture(scope="session")
def eval_dir() -> Path:
    if not (EVAL_DIR / "dev").is_dir():
        pytest.skip("../shared/eval is absent")
    return EVAL_DIR


_FOLDER_MARKERS = ("eval", "service", "redis", "browser")


@pytest.fixture(scope="session")
def train_module() -> Callable[[str], ModuleType]:
    """Loads a script of train/ by name (``train_module("corpus")``): train/ is not a package,
    and its scripts import each other by bare name, so train/ goes on sys.path first."""
    train_dir = Path(__file__).resolve().parents[1] / "train"

    def load(name: str) -> ModuleType:
        if str(train_dir) not in sys.path:
            sys.path.insert(0, str(train_dir))
        spec = importlib.util.spec_from_file_location(f"train_{name}", train_dir / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[f"train_{name}"] = module
        spec.loader.exec_module(module)
        return module

    return load


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        folder = item.path.parent.name
        if folder in _FOLDER_MARKERS:
            item.add_marker(folder)
