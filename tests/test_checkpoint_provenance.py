"""A record says "official weights, verified" only for the release's own bytes (issue 17 item 1): the
known sha256 of the MobileFaceSwap release, checked on every load, whatever the file is called."""

from __future__ import annotations

from pathlib import Path

from mfsbench.checkpoints.formats import LoadedCheckpoint, write_official
from mfsbench.checkpoints.known import BY_NAME, KNOWN_FILES, provenance
from mfsbench.records import read_records
from mfsbench.registry import create_model, get_spec
from mfsbench.swap.checkpoints import load_checkpoints
from tests.face_assets import face_photos_fixture  # noqa: F401 - registers the fixture

STUDENT_SHA256 = "ee51a18684d2862363deefde14220d7e7eb33b78b5b1840e1a76566a7f3508fb"


def test_known_digests_are_the_specs() -> None:
    assert BY_NAME["MobileFaceSwap_224.pdparams"].sha256 == STUDENT_SHA256
    assert BY_NAME["arcface.pdparams"].size_bytes == 209_017_341
    assert all(len(k.sha256) == 64 and int(k.sha256, 16) >= 0 for k in KNOWN_FILES)


def test_provenance_goes_by_digest_not_name() -> None:
    official = provenance("renamed.pdparams", STUDENT_SHA256)
    assert official == ("official: MobileFaceSwap (AAAI 2022) release, MobileFaceSwap_224.pdparams, "
                        "sha256 verified")
    impostor = provenance("MobileFaceSwap_224.pdparams", "0" * 64)
    assert impostor is not None and impostor.startswith("not the official release: named")
    assert provenance("my_student.safetensors", "0" * 64) is None
    loaded = LoadedCheckpoint("/x/MobileFaceSwap_224.pdparams", STUDENT_SHA256, "mobilefaceswap_pdparams", 3)
    assert loaded.provenance is not None and loaded.provenance.endswith("sha256 verified")


def test_loaded_files_and_swap_records_carry_their_provenance(run_cli, face_photos, tmp_path: Path) -> None:
    """Synthetic files under the official names load (same keys and shapes) and are said not to be the
    release; the swap record carries that line beside each file's sha256."""
    spec = get_spec("test_mobilefaceswap")  # the released student's two file formats, at test size
    model = create_model(spec.name)
    student = write_official(model, tmp_path / "MobileFaceSwap_224.pdparams", "mobilefaceswap_pdparams")
    arcface = write_official(model, tmp_path / "arcface.pdparams", "arcface_pdparams")
    loaded = load_checkpoints(spec, create_model(spec.name), [str(student), str(arcface)])
    assert [c.provenance.split(":")[0] for c in loaded] == ["not the official release"] * 2
    records = tmp_path / "r.jsonl"
    result = run_cli("swap", "--model", spec.name, "--source", str(face_photos["obama"].path),
                     "--target", str(face_photos["biden"].path), "--out", str(tmp_path / "out.png"),
                     "--checkpoint", str(student), "--checkpoint", str(arcface), "--records", str(records))
    assert result.code == 0, result.err
    (record,) = read_records(records)
    files = record.info["checkpoints"]
    assert {f["sha256"] for f in files} == {c.sha256 for c in loaded}
    assert all(f["provenance"].startswith("not the official release: named ") for f in files)
