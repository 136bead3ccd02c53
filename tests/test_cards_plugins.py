"""Code plug-ins: specs registered through the ``mfsbench.models`` entry-point group.

Each case runs in a fresh interpreter (the registry loads plug-ins once per process), with a fake
installed distribution on ``sys.path``: a ``*.dist-info`` folder whose ``entry_points.txt`` names the
plug-in, exactly what ``pip install`` writes for ``[project.entry-points."mfsbench.models"]``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN = '''
from mfsbench.registry import Builder, InputSpec, ModelSpec, SizeRule, StageSpec


def specs():
    return [ModelSpec(
        name="plugin_frame_net", display_name="Plug-in frame net", family="test", provenance="plugin",
        native_size=32, size_rule=SizeRule(multiple_of=2, minimum=4),
        stages=(StageSpec("frame", (InputSpec("target", 3),), "conv autoencoder"),),
        builder=Builder("mfsbench.models.tiny:TinyFrameNet"), description="from a plug-in")]


def broken():
    raise RuntimeError("needs a GPU library that is not installed")
'''

LIST = "from mfsbench.registry import list_models; print(sorted(n for n in list_models() if 'plugin' in n))"


def _install(root: Path, entry: str) -> None:
    (root / "mfs_plugin_demo.py").write_text(PLUGIN)
    info = root / "mfs_plugin_demo-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mfs-plugin-demo\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[mfsbench.models]\n{entry}\n")


def _run(root: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.getcwd()]), **env}
    environ.pop("MFSBENCH_DISABLE_PLUGIN_AUTOLOAD", None)
    environ.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ,
                          timeout=120, check=False)


@pytest.mark.slow
def test_plugin_specs_are_registered_and_counted(tmp_path: Path) -> None:
    _install(tmp_path, "demo = mfs_plugin_demo:specs")
    done = _run(tmp_path, LIST)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['plugin_frame_net']"
    flops = _run(tmp_path, "from mfsbench.cli.main import main; raise SystemExit(main(['flops', '--models', "
                 f"'plugin_frame_net', '--out', {str(tmp_path / 'out')!r}, '--format', 'csv']))")
    assert flops.returncode == 0, flops.stderr
    assert "plugin_frame_net" in flops.stdout


@pytest.mark.slow
def test_switch_and_broken_plugin(tmp_path: Path) -> None:
    _install(tmp_path, "demo = mfs_plugin_demo:specs\nbad = mfs_plugin_demo:broken\ngone = no_such_module:x")
    off = _run(tmp_path, LIST, MFSBENCH_DISABLE_PLUGIN_AUTOLOAD="1")
    assert off.returncode == 0 and off.stdout.strip() == "[]" and off.stderr == ""
    on = _run(tmp_path, LIST)
    assert on.returncode == 0, on.stderr
    assert on.stdout.strip() == "['plugin_frame_net']"  # the good plug-in still loads
    warnings = [line for line in on.stderr.splitlines() if line.startswith("warning: mfsbench plug-in")]
    assert len(warnings) == 2, on.stderr
    assert any("bad" in w and "needs a GPU library" in w for w in warnings)
    assert any("gone" in w and "ModuleNotFoundError" in w for w in warnings)
