"""The GPU path (store, embed, train, predict, the benchmark's GPU phase) imports without the
packages that GPU machines lack (motile, ilpy, traccuracy, geff, highspy, imagecodecs, zarr)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ABSENT = ("motile", "ilpy", "traccuracy", "geff", "highspy", "imagecodecs", "zarr")
GPU_PATH = (
    "attrackt",
    "attrackt.cli",
    "attrackt.store",
    "attrackt.budget",
    "attrackt.embed",
    "attrackt.training",
    "attrackt.predict",
    "attrackt.evaluate",
    "attrackt.link.guard",
    "attrackt.link.affinities",
    "attrackt.finetune",
)


def test_gpu_path_imports_without_the_cpu_only_packages(tmp_path):
    script = textwrap.dedent(
        f"""
        import importlib.abc, sys

        class Absent(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {ABSENT!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)")
                return None

        sys.meta_path.insert(0, Absent())
        for name in {ABSENT!r}:
            sys.modules.pop(name, None)
        try:
            import motile  # noqa: F401
        except ModuleNotFoundError:
            pass
        else:
            raise SystemExit("the blocker does not work")
        import importlib
        for name in {GPU_PATH!r}:
            importlib.import_module(name)
        sys.path.insert(0, {str(REPO / "bench")!r})
        import accuracy, interactive  # the benchmarks' GPU phases
        from typer.testing import CliRunner
        from attrackt.cli import app
        for command in ("prepare", "embed", "train", "predict"):
            result = CliRunner().invoke(app, [command, "--help"])
            assert result.exit_code == 0, result.output
        leaked = sorted(n for n in sys.modules if n.split(".")[0] in {ABSENT!r})
        assert not leaked, leaked
        print("ok")
        """
    )
    env = {"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
