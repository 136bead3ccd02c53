"""The registry: lookups, duplicates, sizes and the mode composition rule."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from mfsbench.errors import BadInputError, DuplicateModelError, UnknownModelError, UnsupportedSizeError
from mfsbench.registry import (
    Builder,
    InputSpec,
    ModelSpec,
    SizeRule,
    StageSpec,
    create_model,
    get_spec,
    list_models,
    register_model,
)


def test_unknown_model_suggests_close_matches() -> None:
    with pytest.raises(UnknownModelError) as info:
        get_spec("mobilefaceswap_225")
    message = str(info.value)
    assert "mobilefaceswap_224" in message and "mfsbench models" in message


def test_duplicate_registration_is_an_error() -> None:
    def mobilefaceswap_224() -> ModelSpec:
        return get_spec("mobilefaceswap_224")

    with pytest.raises(DuplicateModelError):
        register_model(mobilefaceswap_224)


def test_spec_name_must_match_function_name() -> None:
    def some_other_name() -> ModelSpec:
        return get_spec("mobilefaceswap_224")

    with pytest.raises(ValueError, match="registered by a function named"):
        register_model(some_other_name)


def test_test_specs_are_hidden_by_default() -> None:
    assert "test_mobilefaceswap" not in list_models()
    assert "test_mobilefaceswap" in list_models(include_tests=True)


@pytest.mark.parametrize(
    ("rule", "size", "ok"),
    [
        (SizeRule(multiple_of=32, minimum=64), 224, True),
        (SizeRule(multiple_of=32, minimum=64), 240, False),
        (SizeRule(multiple_of=32, minimum=64), 32, False),
        (SizeRule(fixed=(112,)), 112, True),
        (SizeRule(fixed=(112,)), 224, False),
    ],
)
def test_size_rules(rule: SizeRule, size: int, ok: bool) -> None:
    assert rule.accepts(size) is ok


def test_impossible_size_names_the_rule() -> None:
    with pytest.raises(UnsupportedSizeError, match="multiple of 32"):
        get_spec("mobilefaceswap_224").check_size(100)


def test_modes_compose_stages() -> None:
    student = get_spec("mobilefaceswap_224")
    assert student.modes == ("image", "video")
    assert student.stages_for("image") == ("identity", "frame")
    assert student.stages_for("video") == ("frame",)
    assert get_spec("arcface_irse101").modes == ("image",)
    frame_only = ModelSpec(
        name="x",
        display_name="x",
        family="x",
        provenance="test",
        native_size=8,
        size_rule=SizeRule(),
        stages=(StageSpec("frame", (InputSpec("t", 3),), "d"),),
        builder=None,
        description="d",
    )
    assert frame_only.stages_for("image") == ("frame",) == frame_only.stages_for("video")


def test_cited_only_model_cannot_be_built() -> None:
    spec = get_spec("facecontroller_224")
    assert spec.reference is not None and spec.reference.cited_only
    with pytest.raises(BadInputError, match="cited from the paper only"):
        create_model("facecontroller_224")


def test_every_spec_is_consistent() -> None:
    for name in list_models(include_tests=True):
        spec = get_spec(name)
        assert spec.size_rule.accepts(spec.native_size), name
        if spec.runnable:
            assert spec.expected is not None, f"{name} has no expected counts for its test"
            assert "frame" in spec.stage_names or "identity" in spec.stage_names


def test_zoo_lookups_and_cli_help_import_no_torch() -> None:
    """Listing the zoo, looking specs up and ``--help`` must not pay torch's ~2 s import.

    Runs in a fresh interpreter, because this test process has long imported torch.
    """
    script = textwrap.dedent(
        """
        import contextlib, io, sys
        from mfsbench.cli.main import build_parser, main
        from mfsbench.registry import get_spec, list_models
        build_parser()
        with contextlib.redirect_stdout(io.StringIO()) as out:
            assert main(["models", "--all"]) == 0
        assert "test_mobilefaceswap" in out.getvalue()
        for name in list_models(include_tests=True):
            get_spec(name).check_size(get_spec(name).native_size)
        heavy = sorted(m for m in ("torch", "numpy", "onnx", "tensorflow") if m in sys.modules)
        print("heavy:", heavy)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("heavy: []"), done.stdout


def test_every_builder_names_a_callable() -> None:
    for name in list_models(include_tests=True):
        spec = get_spec(name)
        if spec.builder is not None:
            assert callable(spec.builder.resolve()), name


def test_builder_passes_its_keyword_arguments() -> None:
    built = Builder("collections:namedtuple", (("typename", "Pair"), ("field_names", "a b")))()
    assert built._fields == ("a", "b") and built.__name__ == "Pair"
    with pytest.raises(ValueError, match=r"package\.module:attribute"):
        Builder("collections.namedtuple").resolve()
