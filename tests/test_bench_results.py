"""Benchmark results are honest by construction: each was written whole by a script that names
every key it holds, and the README's measured section is what bench/report.py renders."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
RESULTS = sorted((BENCH / "results").glob("*.json"))


@pytest.mark.parametrize("path", RESULTS, ids=[p.name for p in RESULTS])
def test_every_result_names_its_command_and_every_key_is_written_by_it(path: Path):
    data = json.loads(path.read_text(encoding="utf-8"))
    command = data.get("provenance", {}).get("command", "")
    match = re.search(r"bench/(\w+)\.py", command)
    assert match, f"{path.name}: no provenance command naming the bench script that wrote it"
    script = BENCH / f"{match.group(1)}.py"
    assert script.is_file(), f"{path.name}: its script {script.name} is gone"
    source = script.read_text(encoding="utf-8") + (BENCH / "_common.py").read_text("utf-8")
    for key in data:
        assert f'"{key}"' in source, f"{path.name}: {script.name} writes no key {key!r}"
    assert data["provenance"].get("commit") and data["provenance"].get("machine")


def test_the_readme_shows_what_the_results_hold():
    done = subprocess.run(
        [sys.executable, str(BENCH / "report.py"), "--check"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
