"""Official checkpoint formats: exact keys, strict loading, lossless round trips, and no code execution.

Every synthetic checkpoint here is written the way its official file was (Paddle's protocol-4 pickle
of numpy arrays, torch zip, torch 2017 legacy, a whole pickled model whose classes live in a module
called ``models``), with the official key names taken from the spec key list or generated from the
spec's key rules, independently of our modules.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import os
import pickle
import sys
import types
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from baselines.simswap import SimSwapGenerator
from mfsbench.checkpoints import formats
from mfsbench.checkpoints.formats import (
    load_arcface_pdparams,
    load_arcface_tar,
    load_cosface,
    load_hopenet,
    load_mobilefaceswap_pdparams,
    load_simswap_generator,
    write_official,
)
from mfsbench.checkpoints.mapping import paddle_key_to_torch
from mfsbench.checkpoints.safe_pickle import load_torch_file
from mfsbench.errors import BadInputError, MissingDependencyError
from mfsbench.evalnets import Hopenet, SphereFace20, decode_degrees
from mfsbench.models.arcface import ArcFaceIRSE, IRBlock, SEBlock
from mfsbench.models.mobilefaceswap import DEMOD_EPS, MobileFaceSwap, Mod2Weight, WeightPrediction
from mfsbench.models.tiny import TINY_STUDENT, build_tiny_student
from tests.conftest import DATA

# ------------------------------------------------------------------------------- official key lists


def _pdparams_keys() -> dict[str, OrderedDict[str, tuple[int, ...]]]:
    """Paddle key → shape per ``.pdparams`` file, in the spec's (Paddle state-dict) order."""
    sections: dict[str, OrderedDict[str, tuple[int, ...]]] = {}
    current = None
    for line in (DATA / "mobilefaceswap_keys.tsv").read_text().splitlines():
        if line.startswith("## "):
            current = line.split()[1]
            continue
        if current is None or not line.strip() or line.startswith("#"):
            continue
        key, shape = line.split("\t")[:2]
        sections.setdefault(current, OrderedDict())[key] = tuple(ast.literal_eval(shape))
    return sections


def _bn(prefix: str, c: int, tracked: bool) -> dict[str, tuple[int, ...]]:
    keys = {f"{prefix}.{n}": (c,) for n in ("weight", "bias", "running_mean", "running_var")}
    if tracked:
        keys[f"{prefix}.num_batches_tracked"] = ()
    return keys


def simswap_g_keys() -> dict[str, tuple[int, ...]]:
    """``latest_net_G.pth`` from spec §2.2's rules: pads/upsamples at index 0, BN with batch counters."""
    keys: dict[str, tuple[int, ...]] = {"first_layer.1.weight": (64, 3, 7, 7), "first_layer.1.bias": (64,)}
    keys |= _bn("first_layer.2", 64, True)
    for i, (cin, cout) in enumerate(((64, 128), (128, 256), (256, 512)), start=1):
        keys |= {f"down{i}.0.weight": (cout, cin, 3, 3), f"down{i}.0.bias": (cout,)}
        keys |= _bn(f"down{i}.1", cout, True)
    for b in range(9):
        for n in (1, 2):
            keys |= {
                f"BottleNeck.{b}.conv{n}.1.weight": (512, 512, 3, 3),
                f"BottleNeck.{b}.conv{n}.1.bias": (512,),
            }
            keys |= {
                f"BottleNeck.{b}.style{n}.linear.weight": (1024, 512),
                f"BottleNeck.{b}.style{n}.linear.bias": (1024,),
            }
    for i, (cin, cout) in zip((3, 2, 1), ((512, 256), (256, 128), (128, 64)), strict=True):
        keys |= {f"up{i}.1.weight": (cout, cin, 3, 3), f"up{i}.1.bias": (cout,)}
        keys |= _bn(f"up{i}.2", cout, True)
    keys |= {"last_layer.1.weight": (3, 64, 7, 7), "last_layer.1.bias": (3,)}
    return keys


def hopenet_keys() -> dict[str, tuple[int, ...]]:
    """torchvision ResNet-50 names (2017: no batch counters) + the three heads + ``fc_finetune``."""
    keys: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7)} | _bn("bn1", 64, False)
    inplanes = 64
    for stage, (planes, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3)), start=1):
        for b in range(blocks):
            p = f"layer{stage}.{b}"
            keys[f"{p}.conv1.weight"] = (planes, inplanes, 1, 1)
            keys |= _bn(f"{p}.bn1", planes, False)
            keys[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            keys |= _bn(f"{p}.bn2", planes, False)
            keys[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
            keys |= _bn(f"{p}.bn3", planes * 4, False)
            if b == 0:
                keys[f"{p}.downsample.0.weight"] = (planes * 4, inplanes, 1, 1)
                keys |= _bn(f"{p}.downsample.1", planes * 4, False)
            inplanes = planes * 4
    for head in ("yaw", "pitch", "roll"):
        keys |= {f"fc_{head}.weight": (66, 2048), f"fc_{head}.bias": (66,)}
    return keys | {"fc_finetune.weight": (3, 2051), "fc_finetune.bias": (3,)}


def cosface_keys() -> dict[str, tuple[int, ...]]:
    """MuggleWang ``sphere(type=20)``: the 46 keys of spec §7."""
    keys: dict[str, tuple[int, ...]] = {}
    cin = 3
    for stage, (c, blocks) in enumerate(((64, 1), (128, 2), (256, 4), (512, 1)), start=1):
        keys |= {
            f"layer{stage}.0.weight": (c, cin, 3, 3),
            f"layer{stage}.0.bias": (c,),
            f"layer{stage}.1.weight": (c,),
        }
        for b in range(2, 2 + blocks):
            for part, shape in (
                ("conv1", (c, c, 3, 3)),
                ("prelu1", (c,)),
                ("conv2", (c, c, 3, 3)),
                ("prelu2", (c,)),
            ):
                keys[f"layer{stage}.{b}.{part}.weight"] = shape
        cin = c
    return keys | {"fc.weight": (512, 21504), "fc.bias": (512,)}


def _random_state(keys: dict[str, tuple[int, ...]], seed: int = 0) -> OrderedDict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return OrderedDict(
        (
            k,
            torch.randint(0, 1000, s, generator=gen)
            if k.endswith("num_batches_tracked")
            else torch.randn(s, generator=gen),
        )
        for k, s in keys.items()
    )


def _shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _assert_loaded(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Every tensor of ``state`` sits, bit for bit, under the same name in ``module``."""
    ours = module.state_dict()
    for key, value in state.items():
        assert torch.equal(ours[key], value.to(ours[key].dtype)), key


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------ key layouts (meta, fast)


def test_our_modules_have_the_official_keys_and_shapes() -> None:
    with torch.device("meta"):
        generator, hopenet, cosface = SimSwapGenerator(), Hopenet(), SphereFace20()
    assert _shapes(generator) == simswap_g_keys()
    hop = {k: s for k, s in _shapes(hopenet).items() if not k.endswith("num_batches_tracked")}
    assert hop == hopenet_keys()
    assert _shapes(cosface) == cosface_keys() and len(cosface_keys()) == 46


def test_eval_net_parameter_counts_match_the_spec() -> None:
    with torch.device("meta"):
        hopenet, cosface = Hopenet(), SphereFace20()
    assert round(sum(p.numel() for p in hopenet.parameters()) / 1e6, 3) == 23.920
    assert round(sum(p.numel() for p in cosface.parameters()) / 1e6, 3) == 22.667


# ------------------------------------------------------------------------------------- pdparams


@pytest.mark.slow
def test_official_pdparams_load_strictly_and_write_back_byte_for_byte(tmp_path: Path) -> None:
    """The one full-size MobileFaceSwap: official → ours → official gives the identical file."""
    sections = _pdparams_keys()
    rng = np.random.default_rng(0)
    model = MobileFaceSwap()
    for name, loader, part in (
        ("MobileFaceSwap_224.pdparams", load_mobilefaceswap_pdparams, model.swap),
        ("arcface.pdparams", load_arcface_pdparams, model.id_net),
    ):
        arrays = OrderedDict((k, rng.standard_normal(s, dtype=np.float32)) for k, s in sections[name].items())
        source = tmp_path / name
        with source.open("wb") as handle:
            pickle.dump(arrays, handle, protocol=4)
        record = loader(model, source)
        assert record.keys == len(arrays) and record.sha256 == _sha(source)
        for key, array in arrays.items():
            expected = torch.from_numpy(array.T if array.ndim == 2 else array)
            assert torch.equal(part.state_dict()[paddle_key_to_torch(key)], expected), key
        back = write_official(model, tmp_path / f"back_{name}", formats.FORMATS[record.format].name)
        # Same arrays, dtype, layout, container and key order: the bytes are the official file's.
        assert back.read_bytes() == source.read_bytes()


def test_pdparams_round_trip_of_a_small_student_is_bit_identical(tmp_path: Path) -> None:
    source, target = build_tiny_student(), build_tiny_student()
    torch.manual_seed(1)
    for module in (source.swap, source.id_net):
        for tensor in module.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn_like(tensor))
    write_official(source, tmp_path / "s.pdparams", "mobilefaceswap_pdparams")
    write_official(source, tmp_path / "a.pdparams", "arcface_pdparams")
    raw = pickle.loads((tmp_path / "a.pdparams").read_bytes())
    assert type(raw) is OrderedDict and "prelu._weight" in raw and "bn1._variance" in raw
    assert raw["fc.weight"].shape == tuple(reversed(source.id_net.fc.weight.shape))
    load_mobilefaceswap_pdparams(target, tmp_path / "s.pdparams")
    load_arcface_pdparams(target.id_net, tmp_path / "a.pdparams")
    for ours, theirs in ((target.swap, source.swap), (target.id_net, source.id_net)):
        reference = {k: v for k, v in theirs.state_dict().items() if not k.endswith("num_batches_tracked")}
        _assert_loaded(ours, reference)


# ------------------------------------------------------------------------------------- torch files


@pytest.mark.slow
def test_simswap_generator_official_file_loads_and_round_trips(tmp_path: Path) -> None:
    state = _random_state(simswap_g_keys())
    torch.save(state, tmp_path / "latest_net_G.pth")
    generator = SimSwapGenerator()
    record = load_simswap_generator(generator, tmp_path / "latest_net_G.pth")
    assert record.keys == len(state) and record.format == "simswap_G"
    _assert_loaded(generator, state)
    write_official(generator, tmp_path / "back.pth", "simswap_G")
    back = torch.load(tmp_path / "back.pth", weights_only=True)
    assert list(back) == list(state) and all(torch.equal(back[k], state[k]) for k in state)


def test_small_simswap_generator_round_trip_through_the_wrapper(tmp_path: Path) -> None:
    source, target = SimSwapGenerator(n_blocks=1, base_width=4), SimSwapGenerator(n_blocks=1, base_width=4)
    write_official(source, tmp_path / "g.pth", "simswap_G")
    holder = nn.Module()
    holder.netG = target  # the loader picks ``.netG`` out of a SimSwap224-like wrapper
    load_simswap_generator(holder, tmp_path / "g.pth")
    _assert_loaded(target, source.state_dict())


def test_hopenet_2017_pickle_and_fsgan_wrapper_load(tmp_path: Path) -> None:
    state = _random_state(hopenet_keys())
    legacy = tmp_path / "hopenet_robust_alpha1.pkl"
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    # the old (non-zip) serialisation is within torch's weights-only loader: no fallback needed
    assert list(torch.load(legacy, weights_only=True)) == list(state)
    model = Hopenet()
    record = load_hopenet(model, legacy)
    assert record.keys == len(state)
    _assert_loaded(model, state)
    torch.save({"arch": "hopenet", "state_dict": state}, tmp_path / "hopenet_robust_alpha1.pth")
    load_hopenet(Hopenet(), tmp_path / "hopenet_robust_alpha1.pth")
    write_official(model, tmp_path / "back.pkl", "hopenet")
    back = load_torch_file(tmp_path / "back.pkl")
    assert list(back) == list(state) and all(torch.equal(back[k], state[k]) for k in state)


def test_cosface_file_loads_and_round_trips(tmp_path: Path) -> None:
    state = _random_state(cosface_keys())
    torch.save(state, tmp_path / "ACC99.28.pth")
    model = SphereFace20()
    assert load_cosface(model, tmp_path / "ACC99.28.pth").keys == 46
    _assert_loaded(model, state)
    write_official(model, tmp_path / "back.pth", "cosface")
    assert formats.read_official(tmp_path / "back.pth", "cosface").keys() == state.keys()
    assert model(torch.rand(2, 3, 112, 96)).shape == (2, 512)


def test_wrong_checkpoint_lists_missing_and_unexpected_keys(tmp_path: Path) -> None:
    torch.save(_random_state(cosface_keys()), tmp_path / "ACC99.28.pth")
    with pytest.raises(BadInputError) as info:
        load_hopenet(Hopenet(), tmp_path / "ACC99.28.pth")
    message = str(info.value)
    assert "ACC99.28.pth (hopenet) does not match Hopenet" in message
    assert "missing: bn1.bias" in message and "unexpected: fc.bias" in message
    state = _random_state(cosface_keys())
    state["fc.weight"] = torch.zeros(512, 21505)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(BadInputError, match=r"fc.weight \(512, 21505\) \(expected \(512, 21504\)\)"):
        load_cosface(SphereFace20(), tmp_path / "bad.pth")


# ----------------------------------------------------------------------------- arcface_checkpoint.tar


def _tiny_arcface() -> ArcFaceIRSE:
    return ArcFaceIRSE(layers=(1, 1, 1, 1), widths=(4, 8, 8, 16), embedding_dim=16)


class _Foreign:
    """foamliu's classes, faked under their pickled module names for the life of one test only."""

    def __init__(self, module_name: str) -> None:
        self.module_name = module_name
        self.module = types.ModuleType(module_name)
        self.classes: dict[type, type] = {}
        for name, base in (("ResNet", ArcFaceIRSE), ("IRBlock", IRBlock), ("SEBlock", SEBlock)):
            self.classes[base] = self._define(name, (base,))
        self.margin = self._define("ArcMarginModel", (nn.Module,))

    def _define(self, name: str, bases: tuple[type, ...]) -> type:
        cls = type(name, bases, {"__module__": self.module_name, "__qualname__": name})
        setattr(self.module, name, cls)
        return cls

    def adopt(self, network: nn.Module) -> nn.Module:
        for child in network.modules():
            if type(child) in self.classes:
                child.__class__ = self.classes[type(child)]
        return network

    @contextlib.contextmanager
    def registered(self) -> Iterator[None]:
        names = [self.module_name, "optimizer"]
        if "." in self.module_name:
            names.append(self.module_name.split(".")[0])
        saved = {n: sys.modules.get(n) for n in names}
        for n in names[1:]:
            sys.modules[n] = types.ModuleType(n)
        sys.modules[self.module_name] = self.module
        try:
            yield
        finally:
            for n, old in saved.items():
                if old is None:
                    sys.modules.pop(n, None)
                else:
                    sys.modules[n] = old


def _insightface_optimizer(optimizer: torch.optim.Optimizer) -> object:
    """foamliu's ``optimizer.InsightFaceOptimizer`` wrapper: a plain object under module ``optimizer``."""
    cls = type(
        "InsightFaceOptimizer", (), {"__module__": "optimizer", "__qualname__": "InsightFaceOptimizer"}
    )
    sys.modules["optimizer"].InsightFaceOptimizer = cls  # type: ignore[attr-defined]
    wrapper = cls()
    wrapper.optimizer, wrapper.step_num, wrapper.lr = optimizer, 7, 0.1
    return wrapper


# saving (not loading) foamliu's fake classes in the legacy format makes torch warn it has no source
@pytest.mark.filterwarnings("ignore:Couldn't retrieve source code")
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("layout", ["2021_dict", "2023_module"])
def test_arcface_tar_loads_without_its_classes(tmp_path: Path, layout: str, legacy: bool) -> None:
    foreign = _Foreign("models" if layout == "2021_dict" else "models.arcface_models")
    network = _tiny_arcface()
    path = tmp_path / "arcface_checkpoint.tar"
    with torch.no_grad():
        for tensor in network.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn_like(tensor))
    with foreign.registered():
        foreign.adopt(network)
        if layout == "2021_dict":
            margin = foreign.margin()
            margin.weight = nn.Parameter(torch.randn(10, 16))  # 93431×512 in the real file
            sgd = torch.optim.SGD(network.parameters(), lr=0.1, momentum=0.9)
            network(torch.rand(2, 3, 112, 112))[0].sum().backward()
            sgd.step()
            payload: object = {
                "epoch": 31,
                "epochs_since_improvement": 0,
                "acc": np.float64(99.5),
                "model": nn.DataParallel(network),
                "metric_fc": margin,
                "optimizer": _insightface_optimizer(sgd),
            }
        else:
            payload = network
        torch.save(payload, path, _use_new_zipfile_serialization=not legacy)
    # the classes are gone: the loader must rebuild the weights without them, importing nothing
    assert "models" not in sys.modules and "optimizer" not in sys.modules
    target = _tiny_arcface()
    record = load_arcface_tar(target, path)
    assert "models" not in sys.modules and "optimizer" not in sys.modules
    assert record.format == "arcface_tar" and record.keys == len(network.state_dict())
    _assert_loaded(target, {k: v.detach() for k, v in network.state_dict().items()})


def test_arcface_tar_writer_refuses_with_an_alternative(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="arcface_pdparams"):
        write_official(_tiny_arcface(), tmp_path / "x.tar", "arcface_tar")


# ------------------------------------------------------------------------------- malicious pickles


class _Evil:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def _write_raw(obj: object, path: Path) -> None:
    with path.open("wb") as handle:
        pickle.dump(obj, handle, protocol=4)


WRITERS = {
    "raw_pickle": _write_raw,
    "torch_zip": torch.save,
    "torch_legacy": lambda obj, path: torch.save(obj, path, _use_new_zipfile_serialization=False),
}
CASES = [
    ("mobilefaceswap_pdparams", "raw_pickle", "MobileFaceSwap_224.pdparams"),
    ("arcface_pdparams", "raw_pickle", "arcface.pdparams"),
    ("simswap_G", "torch_zip", "latest_net_G.pth"),
    ("cosface", "torch_zip", "ACC99.28.pth"),
    ("hopenet", "torch_legacy", "hopenet_robust_alpha1.pkl"),
    ("arcface_tar", "torch_legacy", "arcface_checkpoint.tar"),
    ("arcface_tar", "torch_zip", "arcface_checkpoint.tar"),
]


@pytest.mark.parametrize(("fmt", "writer", "name"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_code_in_a_checkpoint_is_refused_and_never_runs(
    tmp_path: Path, fmt: str, writer: str, name: str
) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / name
    payload = OrderedDict(weight=np.zeros(3, np.float32) if writer == "raw_pickle" else torch.zeros(3))
    payload["bias"] = _Evil(marker)  # type: ignore[assignment]
    WRITERS[writer](payload, path)
    with pytest.raises(BadInputError) as info:
        formats.read_official(path, fmt)
    message = str(info.value)
    assert str(path) in message and "system" in message and "\n" not in message
    assert not marker.exists()


def test_foreign_names_in_a_whole_model_pickle_are_inert(tmp_path: Path) -> None:
    """A ``models.*`` global that would run code becomes a stand-in: recorded, never called."""
    marker = tmp_path / "pwned"
    foreign = _Foreign("models")

    def run(command: str) -> int:  # what a hostile ``models`` package could ship
        return os.system(command)

    run.__module__, run.__qualname__ = "models", "run"
    foreign.module.run = run  # type: ignore[attr-defined]

    class Trap:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return run, (f"touch {marker}",)

    with foreign.registered():
        network = foreign.adopt(_tiny_arcface())
        torch.save({"model": network, "extra": Trap()}, tmp_path / "arcface_checkpoint.tar")
    load_arcface_tar(_tiny_arcface(), tmp_path / "arcface_checkpoint.tar")
    assert not marker.exists()


def test_unreadable_and_missing_files_are_one_line_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(BadInputError, match=r"junk\.pth is not a readable"):
        formats.read_official(junk, "cosface")
    with pytest.raises(BadInputError, match="not found"):
        formats.read_official(tmp_path / "absent.pdparams", "arcface_pdparams")
    with pytest.raises(BadInputError, match="unknown checkpoint format"):
        formats.read_official(junk, "onnx")


# ----------------------------------------------------------------------- IIN formulas, from the spec


def test_modulation_matches_the_spec_formula_including_eps() -> None:
    torch.manual_seed(0)
    mod = Mod2Weight(cin=6, cout=5, id_dim=8)
    embedding = F.normalize(torch.randn(1, 8), dim=1)
    for scale in (1.0, 1e-9):  # at 1e-9 the squared row norms are ~eps, so eps's place shows
        with torch.no_grad():
            mod.weight.mul_(scale)
            w = mod.weight.double()
            s = mod.style(embedding).double()
            w1 = w[None] * (1 + s)[:, None, :, None, None]
            w2 = w1 / torch.sqrt((w1**2).sum(dim=(2, 3, 4), keepdim=True) + DEMOD_EPS)
            expected = w2.reshape(-1, 6, 1, 1)
            torch.testing.assert_close(mod(embedding).double(), expected, rtol=1e-5, atol=1e-12)
    assert DEMOD_EPS == 1e-16


def test_weight_prediction_matches_a_direct_computation() -> None:
    torch.manual_seed(0)
    predictor = WeightPrediction(TINY_STUDENT).eval()
    id_map = torch.randn(1, TINY_STUDENT.id_map_channels, 7, 7)
    with torch.no_grad():
        encoder, decoder = predictor(id_map)
        z = F.leaky_relu(predictor.norm(predictor.first(id_map)), 0.1)
        maps, out = [], z
        for block in predictor.encoder:
            out = F.leaky_relu(block.norm(block.conv(out)), 0.1)
            maps.append(block.weight(out))
        expected_enc = [m[0].unsqueeze(1) for m in reversed(maps)]  # deepest (3-channel) map is E0's
        out = F.leaky_relu(predictor.decoder_norm(predictor.first_decoder(z)), 0.1)
        expected_dec = []
        for block in predictor.decoder:
            out = F.leaky_relu(block.norm(block.conv(out)), 0.1)
            expected_dec.append(block.weight(out)[0].unsqueeze(1))
    assert [tuple(k.shape) for k in encoder] == [(c, 1, 4, 4) for c in TINY_STUDENT.encoder_depthwise]
    assert [tuple(k.shape) for k in decoder] == [(c, 1, 3, 3) for c in TINY_STUDENT.decoder_depthwise]
    for got, want in zip(encoder + decoder, expected_enc + expected_dec, strict=True):
        assert torch.equal(got, want)


# ----------------------------------------------------------------------------------- eval nets


def test_hopenet_decodes_the_expected_bin_to_degrees() -> None:
    logits = torch.full((3, 66), -1e4)
    logits[0, 33], logits[1, 0], logits[2, 65] = 0, 0, 0
    torch.testing.assert_close(decode_degrees(logits), torch.tensor([0.0, -99.0, 96.0]))
    uniform = decode_degrees(torch.zeros(1, 66))
    torch.testing.assert_close(uniform, torch.tensor([32.5 * 3 - 99]))


@pytest.mark.slow  # one ResNet-50 forward at 224: seconds on a 2-thread CI machine
def test_hopenet_forward_gives_three_heads_in_degrees() -> None:
    model = Hopenet().eval()
    image = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        yaw, pitch, roll = model(image)
        degrees = model.degrees(image)
    assert yaw.shape == pitch.shape == roll.shape == (1, 66)
    assert degrees.shape == (1, 3) and bool(((degrees >= -99) & (degrees <= 96)).all())
    torch.testing.assert_close(degrees[:, 0], decode_degrees(yaw))


# ----------------------------------------------------------------------------------------- CLI


def _convert(*argv: str) -> int:
    """Run ``mfsbench convert`` in-process, letting its errors raise (main() would map them to exits)."""
    from mfsbench.cli.main import build_parser

    args = build_parser("convert").parse_args(["convert", *argv])
    return args.run(args)


def test_convert_writes_safetensors_and_weights_only_pt(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pytest.importorskip("safetensors")
    from safetensors.torch import load_file

    state = _random_state(cosface_keys())
    source = tmp_path / "ACC99.28.pth"
    torch.save(state, source)
    for out in (tmp_path / "cosface.safetensors", tmp_path / "cosface.pt"):
        assert _convert("--format", "cosface", "--checkpoint", str(source), "--out", str(out)) == 0
        printed = capsys.readouterr().out
        assert f"{_sha(source)}  {source}" in printed and f"{_sha(out)}  {out}" in printed
        written = load_file(out) if out.suffix == ".safetensors" else torch.load(out, weights_only=True)
        assert written.keys() == state.keys() and all(torch.equal(written[k], state[k]) for k in state)


def test_convert_errors_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "ACC99.28.pth"
    torch.save(_random_state(cosface_keys()), source)
    with pytest.raises(BadInputError, match=r"\.safetensors or \.pt"):
        _convert("--format", "cosface", "--checkpoint", str(source), "--out", str(tmp_path / "x.bin"))
    with pytest.raises(BadInputError, match="does not match Hopenet"):
        _convert("--format", "hopenet", "--checkpoint", str(source), "--out", str(tmp_path / "x.pt"))
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    with pytest.raises(MissingDependencyError, match="pip install safetensors"):
        _convert("--format", "cosface", "--checkpoint", str(source), "--out", str(tmp_path / "x.safetensors"))
