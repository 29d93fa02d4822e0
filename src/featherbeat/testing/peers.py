"""Peer systems (librosa, essentia) run for the benches as subprocesses of their own venvs.

A peer script takes file paths as arguments and prints one JSON object per file (a line that
starts with ``{`` and has a ``"file"`` key). Results are cached in a JSON file because the peers
take minutes per run and their answers do not change.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any


def run_peer_script(
    python: str, script: Path, files: list[str], cache: Path
) -> dict[str, dict[str, Any]]:
    """Results of ``python script FILE...`` for ``files``, running only those not in ``cache``."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    done: dict[str, dict[str, Any]] = json.loads(cache.read_text()) if cache.exists() else {}
    todo = [f for f in files if f not in done]
    # Two subprocesses at most: the machine is shared.
    chunks = [todo[i::2] for i in range(2)]
    procs = [
        subprocess.Popen(
            [python, str(script), *c], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        for c in chunks
        if c
    ]
    for p in procs:
        out, _ = p.communicate()
        for line in out.splitlines():
            if line.startswith("{"):
                d = json.loads(line)
                done[d["file"]] = d
    cache.write_text(json.dumps(done))
    return {f: done[f] for f in files if f in done}
