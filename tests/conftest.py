"""Shared fixtures. Tests that need ../shared/eval skip cleanly when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EVAL_DIR = ROOT.parent / "shared" / "eval"


@pytest.fixture(scope="session")
def eval_dir() -> Path:
    if not (EVAL_DIR / "dev").is_dir():
        pytest.skip("../shared/eval is absent")
    return EVAL_DIR
