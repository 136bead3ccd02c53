"""Small ONNX graphs with the community swappers' signatures, built at test time (no real weights).

``inswapper_like`` has inswapper_128's interface: inputs ``target`` 1×3×128×128 and ``source`` 1×512,
output 1×3×128×128 in [0, 1], and a 512×512 ``emap`` as the *last* initializer that no node reads.
``simswap_like`` has simswap_256's (256 px target, no emap) and ``converter`` a 512→512 crossface-like
graph. The hand-derived counts of each graph are given beside it so tests can check the counter.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

#: MACs and params of ``inswapper_like(size=128)``'s swapper graph, derived by hand:
#: conv 3→8 3×3 at 128²: 128·128·8·3·3·3 = 3,538,944; Gemm 512→8: 4,096; conv 8→3 1×1: 128·128·3·8 = 393,216.
INSWAPPER_LIKE_MACS = 3_538_944 + 4_096 + 393_216
#: 8·3·3·3 + 8 (conv) + 8·512 + 8 (Gemm) + 3·8 + 3 (1×1 conv); the int64 axes and emap are not params.
INSWAPPER_LIKE_PARAMS = 216 + 8 + 4_096 + 8 + 24 + 3


def _swapper(size: int, with_emap: bool, custom_op: bool = False) -> onnx.ModelProto:
    rng = np.random.default_rng(0)

    def init(name: str, shape: tuple[int, ...], scale: float = 0.1) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["target", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Gemm", ["source", "ws", "bs"], ["style"], transB=1),
        helper.make_node("Unsqueeze", ["style", "axes"], ["style4"]),
        helper.make_node("Add", ["c1", "style4"], ["mixed"]),
        helper.make_node("Relu", ["mixed"], ["act"]),
        helper.make_node("Conv", ["act", "w2", "b2"], ["c2"]),
        helper.make_node("Sigmoid", ["c2"], ["output"]),
    ]
    if custom_op:
        nodes.insert(5, helper.make_node("FancyNorm", ["act"], ["act2"], domain="com.example"))
        nodes[6].input[0] = "act2"
    initializers = [
        init("w1", (8, 3, 3, 3)), init("b1", (8,)), init("ws", (8, 512), 0.01), init("bs", (8,)),
        numpy_helper.from_array(np.array([2, 3], np.int64), "axes"),
        init("w2", (3, 8, 1, 1)), init("b2", (3,)),
    ]
    if with_emap:
        initializers.append(init("emap", (512, 512), 0.05))
    graph = helper.make_graph(
        nodes, "swapper",
        [helper.make_tensor_value_info("target", TensorProto.FLOAT, [1, 3, size, size]),
         helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, 512])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, size, size])],
        initializers,
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("com.example", 1)] if custom_op else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model


def inswapper_like(path: Path, *, custom_op: bool = False) -> Path:
    onnx.save(_swapper(128, with_emap=True, custom_op=custom_op), path)
    return path


def simswap_like(path: Path) -> Path:
    onnx.save(_swapper(256, with_emap=False), path)
    return path


def converter(path: Path) -> Path:
    """512 → 512 MatMul (512·512 = 262,144 MACs and params), input ``input`` like crossface_simswap."""
    weight = numpy_helper.from_array(np.eye(512, dtype=np.float32), "proj")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "proj"], ["output"])], "converter",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 512])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 512])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def card_error(card: Path) -> str:
    """The one-line :class:`CardError` that loading ``card`` raises (it must name the card)."""
    from mfsbench.cards.load import load_card
    from mfsbench.cards.schema import CardError

    with pytest.raises(CardError) as info:
        load_card(card)
    message = str(info.value)
    assert "\n" not in message and str(card) in message
    return message


def _clear_consent(monkeypatch: pytest.MonkeyPatch) -> None:
    from mfsbench.cards import license as card_license

    monkeypatch.setattr(card_license, "_accepted", set())
    monkeypatch.delenv(card_license.ACCEPT_ENV, raising=False)
    monkeypatch.delenv("MFSBENCH_CARDS", raising=False)


@pytest.fixture(autouse=True)
def no_consent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test of a module that imports this starts without licence consent (the flag's
    acceptance is process state)."""
    _clear_consent(monkeypatch)


@pytest.fixture(autouse=True, name="isolated")
def isolated_fixture(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Fixture ``isolated``, autouse in a module that imports it: no licence consent, and a cache of
    derived artefacts (conversions, exports) under the test's folder, so no test reads a file another
    test converted. Returns that cache."""
    _clear_consent(monkeypatch)
    cache = tmp_path / "cache"
    monkeypatch.setenv("MFSBENCH_ARTIFACT_CACHE", str(cache))
    return cache


EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "cards"


def example_card(folder: Path, *, swapper: str = "inswapper_128.onnx", sha: str | None = "auto") -> Path:
    """The shipped inswapper_128 example card, pointed at an :func:`inswapper_like` graph written to
    ``folder/swapper``; ``sha`` is ``"auto"`` (the graph's real sha256), ``None`` (no sha256 line) or a
    given digest (a card that lies about its file)."""
    folder.mkdir(parents=True, exist_ok=True)
    graph = inswapper_like(folder / swapper)
    digest = hashlib.sha256(graph.read_bytes()).hexdigest() if sha == "auto" else sha
    lines = []
    for line in (EXAMPLES / "inswapper_128.toml").read_text(encoding="utf-8").splitlines():
        if line.startswith("sha256"):
            if digest is not None:
                lines.append(f'sha256 = "{digest}"')
            continue
        lines.append(line.replace("${MFS_MODELS}/inswapper_128.onnx", swapper))
    card = folder / "inswapper_128.toml"
    card.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return card


#: A card for the zoo student's frame stage exported with one identity injected (target in, RGB [0, 1]
#: out; the identity input is the card schema's, unread by the graph).
STUDENT_CARD = """schema = 1
id = "{card_id}"
family = "mobilefaceswap"
description = "{description}"
[license]
id = "{license}"
commercial = {commercial}
[files.swapper]
path = "{file}"
sha256 = "{sha}"
[io]
target = {{ name = "target", shape = [1, 3, {size}, {size}] }}
source = {{ name = "source", shape = [1, 512] }}
output = {{ index = 0, range = [0.0, 1.0], color = "RGB", denorm = false }}
[target]
template = "arcface_112_v2"
size = {size}
pixel = {{ color = "RGB", scale = 255.0, mean = [0.0, 0.0, 0.0], std = [1.0, 1.0, 1.0] }}
[identity]
kind = "embedding"
"""


def write_student_card(card: Path, graph: Path, *, card_id: str, size: int, description: str,
                       license_id: str = "MIT", commercial: bool = True, extra: str = "") -> Path:
    """Write :data:`STUDENT_CARD` for ``graph`` (an ONNX file beside ``card``) with its real sha256;
    ``extra`` is appended TOML (e.g. the zoo's warp and paste tables)."""
    text = STUDENT_CARD.format(card_id=card_id, description=description, license=license_id,
                               commercial=str(commercial).lower(), file=graph.name,
                               sha=hashlib.sha256(graph.read_bytes()).hexdigest(), size=size)
    card.write_text(text + extra, encoding="utf-8")
    return card
