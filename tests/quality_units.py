"""The mini FF++ tree that the quality engine tests run as units, and its local Table 2 (the reference).

``tests/conftest.py`` registers the two fixtures at session scope, so test_engine_ray and
test_engine_cluster share one tree and one local run (each module built its own: ~15 s on 2 cores).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROTOCOL = REPO / "mfsbench" / "quality" / "protocols" / "ffpp_v1.toml"
#: 2 pairs x 3 rows (identity_oracle, target_copy, MiniPaste)
UNITS = 6


def quality(tree: tuple[Path, Path], out: Path, *extra: str) -> list[str]:
    """The CLI's argument list for one run of the mini tree."""
    root, protocol = tree
    return ["quality", "--dataset", "ffpp", "--root", str(root), "--splits-dir", str(root / "splits"),
            "--protocol", str(protocol), "--evaluators", "offline", "--out", str(out), "--no-progress",
            *extra]


def units_run(err: str) -> int:
    found = re.search(r"(\d+) unit\(s\) run on", err)
    assert found, err
    return int(found.group(1))


@pytest.fixture(scope="session")
def units_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 2-person tree (2 pairs x 3 rows = 6 units) and a protocol of 2 frames per video."""
    from mfsbench.quality.mini import build_mini_ffpp

    folder = tmp_path_factory.mktemp("ffpp")
    try:
        root = build_mini_ffpp(folder / "tree", people=2, frames=8)
    except RuntimeError as exc:  # registry unreachable: no real faces, no test (never fake data)
        pytest.skip(f"face photos unavailable: {exc}")
    protocol = folder / "ffpp_small.toml"
    text = PROTOCOL.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^frames_per_video = \d+$", "frames_per_video = 2", text)
    protocol.write_text(text, encoding="utf-8")
    return root, protocol


@pytest.fixture(scope="session")
def units_local_csv(units_tree: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Table 2 of today's local path (no units, no Ray): the reference."""
    from tests.conftest import cli_in_process

    out = tmp_path_factory.mktemp("local")
    result = cli_in_process(*quality(units_tree, out))
    assert result.code == 0, result.err
    return (out / "table2_quality.csv").read_bytes()
