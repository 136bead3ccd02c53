"""Model cards: schema, every bad card of issue 17 item 8, graph counting, and the CLI end to end.

The graphs are built at test time (:mod:`tests.cards_fixtures`) with inswapper_128's and
simswap_256's input/output names and shapes, so no real weights are ever needed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mfsbench.cards import license as card_license
from mfsbench.cards.graph import count_file
from mfsbench.cards.load import load_card
from mfsbench.errors import BadInputError
from mfsbench.records import read_records
from tests.cards_fixtures import (
    INSWAPPER_LIKE_MACS,
    INSWAPPER_LIKE_PARAMS,
    card_error,
    converter,
    example_card,
    inswapper_like,
    no_consent,  # noqa: F401  (autouse fixture)
    simswap_like,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "cards"




@pytest.fixture
def inswapper_card(tmp_path: Path) -> Path:
    """The shipped inswapper_128 example card, pointed at a test graph in its folder (no sha256 line)."""
    return example_card(tmp_path, sha=None)


def _drop_sha(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith("sha256"))


def _edit(card: Path, old: str, new: str) -> Path:
    text = card.read_text()
    assert old in text, f"{old!r} not in the card"
    card.write_text(text.replace(old, new, 1))
    return card


def test_example_card_loads_and_counts_by_hand(inswapper_card: Path) -> None:
    loaded = load_card(inswapper_card)
    assert loaded.card.family == "inswapper" and loaded.card.size == 128
    assert loaded.projection_shape == (512, 512)
    count = count_file(loaded.swapper_path, loaded.static_inputs(), ("@last",))
    assert count.macs == INSWAPPER_LIKE_MACS
    assert count.params == INSWAPPER_LIKE_PARAMS
    assert count.by_operator == {"Conv": 3_538_944 + 393_216, "Gemm": 4_096}
    # the emap is read by no node: listed apart even without the card's exclusion
    plain = count_file(loaded.swapper_path, loaded.static_inputs())
    assert plain.params == INSWAPPER_LIKE_PARAMS
    assert plain.excluded["emap"]["elements"] == 512 * 512
    assert "no node" in plain.excluded["emap"]["reason"]


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('family = "inswapper"', 'family = "inswapper"\ncolour = "RGB"', "`colour`"),
        ("size = 128", "size = 128\nmena = [0.0, 0.0, 0.0]", "`target.mena`"),
        ("size = 128\n", "", "`target.size` is missing"),
        ("size = 128", 'size = "128"', "`target.size` must be an integer"),
        ('template = "arcface_128"', 'template = "arcface_129"', "unknown template"),
        ("commercial = false", 'commercial = "no"', "`license.commercial`"),
        ("schema = 1", "schema = 2", "`schema`"),
        ("index = -1", "index = -1, kind2 = 1", "`identity.projection.kind2`"),
    ],
)
def test_bad_fields_are_one_line_naming_the_field(inswapper_card: Path, old: str, new: str,
                                                  field: str) -> None:
    assert field in card_error(_edit(inswapper_card, old, new))


def test_inputs_that_disagree_with_the_graph(inswapper_card: Path) -> None:
    text = inswapper_card.read_text()
    _edit(inswapper_card, 'name = "target"', 'name = "image"')
    assert "`io.target.name` 'image' is not an input" in card_error(inswapper_card)
    inswapper_card.write_text(text.replace("shape = [1, 512]", "shape = [1, 256]"))
    assert "`io.source.shape` [1, 256] disagrees" in card_error(inswapper_card)
    inswapper_card.write_text(text.replace("index = 0", "index = 3"))
    assert "`io.output.index` 3 is out of range" in card_error(inswapper_card)
    inswapper_card.write_text(text.replace("index = -1", "index = 9"))
    assert "`identity.projection.index` 9" in card_error(inswapper_card)


def test_sha256_mismatch_missing_file_and_escaping_path(inswapper_card: Path, tmp_path: Path) -> None:
    text = inswapper_card.read_text()
    wrong = "0" * 64
    inswapper_card.write_text(text.replace('path = "inswapper_128.onnx"',
                                           f'path = "inswapper_128.onnx"\nsha256 = "{wrong}"'))
    assert "does not match `files.swapper.sha256`" in card_error(inswapper_card)
    inswapper_card.write_text(text.replace('"inswapper_128.onnx"', '"missing.onnx"'))
    missing = card_error(inswapper_card)
    assert "`files.swapper.path`" in missing and "does not exist" in missing
    inside = tmp_path / "cards"
    inside.mkdir()
    escaping = inside / "card.toml"
    escaping.write_text(text.replace('"inswapper_128.onnx"', '"../inswapper_128.onnx"'))
    assert "escapes the card's folder" in card_error(escaping)


def test_custom_ops_the_runtime_lacks(inswapper_card: Path, tmp_path: Path) -> None:
    inswapper_like(tmp_path / "inswapper_128.onnx", custom_op=True)
    assert "com.example::FancyNorm" in card_error(inswapper_card)


def test_not_an_onnx_file(inswapper_card: Path, tmp_path: Path) -> None:
    (tmp_path / "inswapper_128.onnx").write_bytes(b"\xff\xff\xff\xff not a protobuf")
    assert "is not an ONNX model" in card_error(inswapper_card)


def test_simswap_example_with_converter_counts_both_stages(tmp_path: Path) -> None:
    from mfsbench.cards.count import count_stages

    simswap_like(tmp_path / "simswap_256.onnx")
    converter(tmp_path / "crossface_simswap.onnx")
    text = (EXAMPLES / "simswap_256.toml").read_text().replace("${MFS_MODELS}/", "")
    card = tmp_path / "simswap_256.toml"
    card.write_text(_drop_sha(text))
    stages = count_stages(load_card(card))
    frame, _ = stages["frame"]
    identity, _ = stages["identity"]
    conv_256 = 256 * 256 * 8 * 27 + 4_096 + 256 * 256 * 3 * 8
    assert frame.macs == conv_256 and frame.params == INSWAPPER_LIKE_PARAMS
    assert identity.macs == identity.params == 512 * 512


def test_card_init_drafts_a_card_that_checks(run_cli, tmp_path: Path) -> None:
    graph = inswapper_like(tmp_path / "my_swapper.onnx")
    result = run_cli("card", "init", str(graph))
    assert result.code == 0, result.err
    card = tmp_path / "my_swapper.toml"
    assert 'family = "inswapper"' in card.read_text() and "sha256 = " in card.read_text()
    result = run_cli("card", "check", str(card))
    assert result.code == 0, result.err
    assert "sha256 verified" in result.out and "needs --accept-license" in result.out
    assert "not compute: emap [512, 512]" in result.out
    again = run_cli("card", "init", str(graph))
    assert again.code == 2 and "already exists" in again.err


def test_flops_needs_consent_and_stamps_the_licence(run_cli, inswapper_card: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    refused = run_cli("flops", "--models", str(inswapper_card), "--out", str(out))
    assert refused.code == 2
    assert "non-commercial" in refused.err and "--accept-license" in refused.err
    assert not (out / "records.jsonl").exists()
    result = run_cli("flops", "--models", f"{inswapper_card},test_frame_only", "--out", str(out),
                     "--accept-license", "--format", "json")
    assert result.code == 0, result.err
    rows = {(r["model"], r["mode"]): r for r in json.loads(result.out)}
    assert rows[("inswapper_128", "video")]["gmacs"] == pytest.approx(INSWAPPER_LIKE_MACS / 1e9)
    assert rows[("inswapper_128", "image")]["params_m"] == pytest.approx(
        (INSWAPPER_LIKE_PARAMS + 512 * 512) / 1e6)
    assert rows[("inswapper_128", "video")]["convention"] == "macs"
    assert ("test_frame_only", "video") in rows
    records = [r for r in read_records(out / "records.jsonl") if r.model == "inswapper_128"]
    assert records and all(r.info["license"] == "LicenseRef-InsightFace-NonCommercial" for r in records)
    stages = {r.stage: r for r in records if r.stage}
    assert stages["frame"].info["excluded_initializers"]["emap"]["elements"] == 512 * 512


def test_cards_folder_is_listed_and_found_by_id(run_cli, inswapper_card: Path,
                                                monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MFSBENCH_CARDS", str(inswapper_card.parent))
    monkeypatch.setenv(card_license.ACCEPT_ENV, "LicenseRef-InsightFace-NonCommercial")
    listed = run_cli("models", "--format", "json")
    assert listed.code == 0, listed.err
    row = next(r for r in json.loads(listed.out) if r["name"] == "inswapper_128")
    assert row["kind"] == "card" and row["license"] == "LicenseRef-InsightFace-NonCommercial"
    result = run_cli("flops", "--models", "inswapper_128", "--out", str(tmp_path / "o"), "--format", "csv")
    assert result.code == 0, result.err and "inswapper_128" in result.out


def test_a_card_that_takes_a_zoo_name_or_runs_as_torch_is_refused(inswapper_card: Path) -> None:
    from mfsbench.registry import create_model, get_spec

    card_license.accept_licenses()
    assert get_spec(str(inswapper_card)).card is not None
    with pytest.raises(BadInputError, match="runs as an ONNX graph"):
        create_model("inswapper_128")
    _edit(inswapper_card, 'id = "inswapper_128"', 'id = "test_frame_only"')
    with pytest.raises(BadInputError, match="is a zoo model's name"):
        get_spec(str(inswapper_card))


def test_missing_card_and_bad_folder(run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_cli("card", "check", str(tmp_path / "nope.toml"))
    assert result.code == 2 and "does not exist" in result.err
    monkeypatch.setenv("MFSBENCH_CARDS", str(tmp_path / "no_such_folder"))
    listed = run_cli("models")
    assert listed.code == 2 and "MFSBENCH_CARDS" in listed.err


def test_example_cards_parse() -> None:
    from mfsbench.cards.schema import parse_card, read_toml

    paths = sorted(EXAMPLES.glob("*.toml"))
    assert [p.name for p in paths] == [
        "inswapper_128.toml", "mobilefaceswap_student.toml", "simswap_256.toml"]
    for path in paths:
        card = parse_card(read_toml(path), path)
        if card.format == "safetensors":  # the user's own student: their licence, the zoo's architecture
            assert card.architecture == "mobilefaceswap_224" and set(card.files) == {
                "mobilefaceswap_pdparams", "arcface_pdparams"}
            assert all("${MFS_MODELS}" in ref.path for ref in card.files.values())
            continue
        assert not card.license.commercial and "${MFS_MODELS}" in card.swapper.path
        # the user's own files, never a download
        assert all("://" not in ref.path for ref in card.files.values())
