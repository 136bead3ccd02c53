"""Audit E5: under make test and CI a face-photo test cannot pass by skipping."""

from __future__ import annotations

import pytest

from tests import face_assets


def _unreachable() -> dict:
    raise RuntimeError("pip download failed: no index")


def test_missing_photos_fail_when_required_and_skip_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("cv2")
    monkeypatch.setattr(face_assets, "fetch_face_photos", _unreachable)
    with pytest.raises(pytest.fail.Exception, match="required under make test"):
        face_assets.load_face_photos(required=True)
    with pytest.raises(pytest.skip.Exception, match="no index"):
        face_assets.load_face_photos(required=False)


def test_make_test_requires_the_photos() -> None:
    from pathlib import Path

    makefile = (Path(__file__).parents[1] / "Makefile").read_text()
    test_recipe = makefile.split("\ntest:")[1].split("\n\n")[0]
    assert "MFSBENCH_REQUIRE_FACE_ASSETS=1" in test_recipe
