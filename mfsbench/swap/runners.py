"""The swap pipeline's two stages behind one small interface: a torch zoo model or a card's ONNX graph.

Why a runner: :class:`~mfsbench.swap.pipeline.SwapPipeline` owns detection, tracking, selection and
timing; only four things differ between a zoo network and a user's ONNX swapper: how a face is
aligned (template, fit, size), how the identity is made once per source (the *identity stage*), how
an aligned crop runs through the per-frame network (the *frame stage*) and how its output is pasted
back. :class:`TorchRunner` is the zoo path as it always was (:mod:`mfsbench.swap.adapters`);
:class:`OnnxCardRunner` runs a model card with ONNX Runtime from the card's own facts
(``specs/plugin_models.md`` §1–3): target input name, size, colour order, scale, mean/std; the
identity from an encoder, an optional projection (inswapper's ``emap``: ``latent = normalize(emb) @
emap``, then normalised) and normalisation; output range, de-normalisation and colour; the card's
template (name or 5 points) and its fit (``target.warp``: the community swappers' similarity with a
replicated border by default, or the zoo student's 6-DoF least-squares affine and zero border), and its
paste mask (``run.paste``: FaceFusion's ``box``, or a graph output blended exactly as the zoo blends its
fusion mask, :func:`~mfsbench.faces.paste.paste_back`). A video runs the identity stage once and the
frame stage per frame, exactly as a zoo model does.

The identity encoder of a card (``identity.encoder``) is either a graph among the card's
``[files]`` (run with InsightFace's ArcFace convention: the ``arcface_112_v2`` crop, ``(x − 127.5) /
127.5`` RGB) or the suite's own ArcFace (:class:`~mfsbench.models.arcface.ArcFaceIRSE`, the zoo's
Id network) with the user's ``arcface_tar`` / ``arcface_pdparams`` weights, or seeded random
weights with ``--allow-random-weights``. The record says which ran and with what weights.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from mfsbench.errors import BadInputError
from mfsbench.faces.align import align_face, align_to_points
from mfsbench.optional import require

if TYPE_CHECKING:
    from mfsbench.cards.load import LoadedCard
    from mfsbench.models.base import SwapNet
    from mfsbench.registry import ModelSpec

#: Encoder weight formats the suite's ArcFace takes (:mod:`mfsbench.checkpoints.formats`).
ENCODER_FORMATS = ("arcface_tar", "arcface_pdparams")
#: Seed of the suite's ArcFace when it runs with random weights (``--allow-random-weights``).
RANDOM_ENCODER_SEED = 0


class StageRunner(Protocol):
    """What the pipeline needs from a model: align, identity stage, frame stage, paste-back."""

    runtime: str

    def align_source(self, image: np.ndarray, landmarks5: np.ndarray) -> np.ndarray:
        """The source face cropped the way the identity stage expects."""

    def inject(self, source_crop: np.ndarray) -> None:
        """Run the identity stage once for a source crop; the frame stage then uses it."""

    @property
    def ready(self) -> bool:
        """Whether a source was injected (the frame stage can run)."""

    def reset(self) -> None:
        """Forget the injected identity (the next source follows)."""

    def align_target(self, image: np.ndarray, landmarks5: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(crop, matrix)``: the target face as the frame stage expects it."""

    def run_frame(self, crop: np.ndarray) -> Any:
        """The frame stage on one aligned crop (raw output)."""

    def decode(self, result: Any) -> tuple[np.ndarray, np.ndarray]:
        """Raw output → (BGR uint8 crop, float mask in [0, 1] of the crop's size)."""

    def paste(self, frame: np.ndarray, crop: np.ndarray, matrix: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Composite the swapped crop into ``frame`` (a new uint8 array)."""

    def describe(self) -> dict[str, Any]:
        """What the record says about what ran."""


class TorchRunner:
    """A zoo network in torch: the family's adapter does the pre- and post-processing."""

    runtime = "torch"

    def __init__(self, spec: ModelSpec, model: SwapNet, size: int) -> None:
        from mfsbench.swap.adapters import adapter_for

        self.adapter = adapter_for(spec)
        self.model = model.eval()
        self.size = size
        self.frame_net: Any = None
        self.identity: Any = None
        self.batchnorms_folded = 0  # by inject(): what the record says about the frame stage that ran
        self.batch_ok: bool | None = None  # whether the frame stage took a batch (None: not tried yet)

    def align_source(self, image: np.ndarray, landmarks5: np.ndarray) -> np.ndarray:
        return align_face(image, landmarks5, self.adapter.align, self.adapter.source_size)[0]

    def inject(self, source_crop: np.ndarray) -> None:
        import torch

        from mfsbench.models.folding import fold_batchnorm

        with torch.no_grad():
            stage = self.model.identity_stage()
            assert stage is not None  # adapter_for guarantees an identity stage
            identity = self.identity = stage(self.adapter.source_tensor(source_crop))
            # channels-last lets oneDNN run the depthwise/pointwise convs without layout reorders:
            # measured 22 → 15 ms per 224 frame for the student on 2 cores, same outputs
            # batch norms folded into their convolutions: one pass less over each normalised map
            frame_net, self.batchnorms_folded = fold_batchnorm(self.model.frame_stage(identity).eval())
            if hasattr(frame_net, "inplace_activations"):  # inference only: no graph needs the inputs
                frame_net.inplace_activations = True
            self.frame_net = frame_net.to(memory_format=torch.channels_last)

    @property
    def ready(self) -> bool:
        return self.frame_net is not None

    def reset(self) -> None:
        self.frame_net = None

    def align_target(self, image: np.ndarray, landmarks5: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return align_face(image, landmarks5, self.adapter.align, self.size)

    def run_frame(self, crop: np.ndarray) -> Any:
        import torch

        with torch.no_grad():
            tensor = self.adapter.frame_tensor(crop).contiguous(memory_format=torch.channels_last)
            return self.frame_net(tensor)

    def run_frames(self, crops: list[np.ndarray]) -> list[Any]:
        """The frame stage on several crops of one frame as one batch: one source identity, so the
        injected kernels serve every row. Measured on 2 cores: four 224 crops of the student in one
        call take 0.45× the time of four calls. Each row's output is returned as its own batch-1
        result, as :meth:`run_frame` gives it."""
        import torch

        if len(crops) == 1 or self.batch_ok is False:
            return [self.run_frame(crop) for crop in crops]
        with torch.no_grad():
            batch = torch.cat([self.adapter.frame_tensor(crop) for crop in crops])
            try:
                result = self.frame_net(batch.contiguous(memory_format=torch.channels_last))
            except RuntimeError:  # a frame stage built for batch 1 only: one crop at a time from now on
                self.batch_ok = False
                return [self.run_frame(crop) for crop in crops]
        self.batch_ok = True
        if isinstance(result, tuple):
            return [tuple(part[i:i + 1] for part in result) for i in range(len(crops))]
        return [result[i:i + 1] for i in range(len(crops))]

    def decode(self, result: Any) -> tuple[np.ndarray, np.ndarray]:
        return self.adapter.output(result)

    def paste(self, frame: np.ndarray, crop: np.ndarray, matrix: np.ndarray, mask: np.ndarray) -> np.ndarray:
        from mfsbench.faces.paste import paste_back

        return paste_back(frame, crop, matrix, mask)

    def describe(self) -> dict[str, Any]:
        return {"runtime": self.runtime, "batchnorms_folded": self.batchnorms_folded}


class OnnxZooRunner(TorchRunner):
    """A zoo model whose frame stage runs in ONNX Runtime (``swap --runtime onnxruntime``).

    The identity stage stays in torch (it runs once per source); the frame network with that identity
    baked in is exported once to ONNX into the per-user cache (:func:`swap_cache_dir`), named by the
    sha256 of its weights and the identity, so the same model and source reuse the file. Why: the
    student's frame stage measured 14 ms in torch (channels-last) against 9.4 ms in ONNX Runtime per
    224 frame on 2 threads, parity 1.2e-7. The first frame is also run in torch and the largest
    difference recorded (``parity_max_abs``), so every record says how close the two runtimes were.
    """

    runtime = "onnxruntime"

    def __init__(self, spec: ModelSpec, model: SwapNet, size: int) -> None:
        super().__init__(spec, model, size)
        self.name = spec.name
        self.session: Any = None
        self.path: Path | None = None
        self.exported = 0  # exports this run (0: every identity was found in the cache)
        self.parity_max_abs: float | None = None

    def inject(self, source_crop: np.ndarray) -> None:
        super().inject(source_crop)
        import hashlib

        import torch

        from mfsbench.export.stages import FlatOutputs, _flatten

        digest = hashlib.sha256(f"{self.name}:{self.size}:{torch.__version__}".encode())
        for key, tensor in sorted(self.frame_net.state_dict().items()):
            digest.update(key.encode())
            digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
        for tensor in _flatten(self.identity):
            digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
        path = swap_cache_dir() / f"{self.name}-{self.size}-{digest.hexdigest()[:24]}.onnx"
        if not path.is_file():
            from mfsbench.export.onnx import export_onnx

            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.partial.onnx")
            frame = self.frame_net.to(memory_format=torch.contiguous_format)
            if hasattr(frame, "inplace_activations"):  # the graph as written goes to ONNX
                frame.inplace_activations = False
            example = torch.rand(1, 3, self.size, self.size, generator=torch.Generator().manual_seed(0))
            names = [f"out{i}" for i in range(len(_flatten(frame(example))))]
            _quiet_torch_export()
            export_onnx(FlatOutputs(frame), [example], partial, ["target"], names, optimize=False)
            os.replace(partial, path)  # atomic: a concurrent run never reads a half-written file
            self.exported += 1
            if hasattr(frame, "inplace_activations"):
                frame.inplace_activations = True
            self.frame_net = frame.to(memory_format=torch.channels_last)
        self.path = path
        self.session = _session(path)

    def reset(self) -> None:
        super().reset()
        self.session = None

    def run_frame(self, crop: np.ndarray) -> Any:
        import torch

        tensor = self.adapter.frame_tensor(crop)
        outputs = tuple(torch.from_numpy(o) for o in self.session.run(None, {"target": tensor.numpy()}))
        if self.parity_max_abs is None:  # once: how far ONNX Runtime is from torch on a real crop
            with torch.no_grad():
                reference = self.frame_net(tensor.contiguous(memory_format=torch.channels_last))
            from mfsbench.export.stages import _flatten

            self.parity_max_abs = max(float((a - b).abs().max()) for a, b in
                                      zip(_flatten(reference), outputs, strict=True))
        return outputs if len(outputs) > 1 else outputs[0]

    def run_frames(self, crops: list[np.ndarray]) -> list[Any]:
        """One crop at a time, in ONNX Runtime (the exported graph's batch is 1): never the torch
        batch of :meth:`TorchRunner.run_frames`, which would time another runtime than the record says."""
        return [self.run_frame(crop) for crop in crops]

    def describe(self) -> dict[str, Any]:
        return {"runtime": self.runtime, "frame_stage_onnx": str(self.path) if self.path else None,
                "onnx_exports": self.exported, "parity_max_abs": self.parity_max_abs,
                "batchnorms_folded": self.batchnorms_folded,
                "identity_stage_runtime": "torch"}


def swap_cache_dir() -> Path:
    """Where ``--runtime onnxruntime`` keeps exported frame stages: ``$MFSBENCH_SWAP_CACHE``, else
    ``$XDG_CACHE_HOME/mfsbench/swap``, else ``~/.cache/mfsbench/swap`` (per user, never the repo)."""
    explicit = os.environ.get("MFSBENCH_SWAP_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mfsbench" / "swap"


def _quiet_torch_export() -> None:
    """torch's exporter logs a warning per torchvision op it cannot register; they are not ours."""
    import logging

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)


# ------------------------------------------------------------------------------------ identity encoders


@dataclass
class IdentityEncoder(ABC):
    """A face → raw embedding network with its own crop; ``info`` goes into the record."""

    name: str
    info: dict[str, Any] = field(default_factory=dict)

    @abstractmethod
    def align(self, image: np.ndarray, landmarks5: np.ndarray) -> np.ndarray:
        """The face cropped as this encoder expects it."""

    @abstractmethod
    def embed(self, crop: np.ndarray) -> np.ndarray:
        """The raw (not normalised) embedding of an aligned crop."""


class SuiteArcFace(IdentityEncoder):
    """The zoo's Id network (ArcFace IR-SE-101): 224 ``arcface`` crop → 112 linear → ImageNet RGB."""

    def __init__(self, model: Any, info: dict[str, Any]) -> None:
        super().__init__("arcface_irse101", info)
        from mfsbench.swap.adapters import ADAPTERS

        self.model = model.eval()
        self.adapter = ADAPTERS["mobilefaceswap"]  # the same source crop and normalisation

    def align(self, image: np.ndarray, landmarks5: np.ndarray) -> np.ndarray:
        return align_face(image, landmarks5, self.adapter.align, self.adapter.source_size)[0]

    def embed(self, crop: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            embedding, _ = self.model(self.adapter.source_tensor(crop))
        return embedding[0].numpy().astype(np.float32)


class OnnxArcFace(IdentityEncoder):
    """A card's own encoder graph, InsightFace's ArcFace convention (``arcface_112_v2``, ±1 RGB)."""

    def __init__(self, name: str, path: Path, info: dict[str, Any]) -> None:
        super().__init__(name, info)
        from mfsbench.cards.templates import template_points

        self.session = _session(path)
        self.input = self.session.get_inputs()[0].name
        self.points = template_points("arcface_112_v2", 112)

    def align(self, image: np.ndarray, landmarks5: np.ndarray) -> np.ndarray:
        return align_to_points(image, landmarks5, self.points, 112)[0]

    def embed(self, crop: np.ndarray) -> np.ndarray:
        rgb = crop[:, :, ::-1].astype(np.float32)
        tensor = ((rgb - 127.5) / 127.5).transpose(2, 0, 1)[None]
        output = self.session.run(None, {self.input: np.ascontiguousarray(tensor)})[0]
        return np.asarray(output[0], np.float32)


def build_encoder(loaded: LoadedCard, checkpoints: list[str], *, allow_random: bool,
                  seed: int = RANDOM_ENCODER_SEED) -> IdentityEncoder:
    """The identity encoder a card's ``identity.encoder`` resolves to (see the module docstring).

    Raises:
        BadInputError: no encoder weights and no ``--allow-random-weights``, or weights that do not load.
    """
    card = loaded.card
    named = card.identity.encoder
    if named is not None and named in loaded.paths:
        if checkpoints:
            raise BadInputError(f"{card.path}: the identity encoder is the card's file `files.{named}`; "
                                "drop --checkpoint (it is for the suite's ArcFace)")
        path = loaded.paths[named]
        return OnnxArcFace(named, path, {"encoder": named, "card_encoder": named, "runtime": "onnxruntime",
                                         "weights": {"path": str(path), "sha256": loaded.sha256[named]},
                                         "random_weights": False})
    import torch

    from mfsbench.models.arcface import ArcFaceIRSE

    if not checkpoints and not allow_random:
        raise BadInputError(
            f"{card.id}: its identity comes from an ArcFace encoder ({named or 'unnamed'}); pass the suite's "
            f"ArcFace weights (--checkpoint {'|'.join(ENCODER_FORMATS)}=PATH) or --allow-random-weights "
            "to check the pipeline with an untrained encoder")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = ArcFaceIRSE().eval()
    loaded_ckpts = [vars(_load_encoder(model, flag)) for flag in checkpoints]
    weights: Any = loaded_ckpts or f"random-weights:{seed}"
    info = {"encoder": "arcface_irse101", "card_encoder": named, "runtime": "torch", "weights": weights,
            "random_weights": not loaded_ckpts}
    return SuiteArcFace(model, info)


def _load_encoder(model: Any, flag: str) -> Any:
    from mfsbench.checkpoints.formats import load_official

    name, sep, rest = flag.partition("=")
    path = Path(rest if sep and name in ENCODER_FORMATS else flag)
    if not path.is_file():
        raise BadInputError(f"checkpoint not found: {path}; check the path")
    if sep and name in ENCODER_FORMATS:
        fmt = name
    elif path.suffix == ".tar":
        fmt = "arcface_tar"
    elif path.suffix == ".pdparams":
        fmt = "arcface_pdparams"
    else:
        raise BadInputError(f"cannot tell which ArcFace checkpoint {path} is; pass it as FORMAT=PATH with "
                            f"FORMAT one of {', '.join(ENCODER_FORMATS)}")
    return load_official(model, path, fmt)


# ------------------------------------------------------------------------------------------- cards


def _session(path: Path) -> Any:
    """An ONNX Runtime CPU session, or one line naming the file and why it cannot run."""
    ort = require("onnxruntime", "onnxruntime", "running model cards")
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: an unused initializer (inswapper's emap) is expected
        # the swap's other stages (paste-back, tracking, encoding) run between frames: ORT's threads
        # must not spin-wait through them (measured: paste-back took 35-43 % of the time with spinning)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.intra_op_num_threads = _torch_threads()
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInputError(f"ONNX Runtime cannot load {path}: {first}") from None


def _torch_threads() -> int:
    """The intra-op threads torch uses here (``torch.set_num_threads``), so both runtimes get the same."""
    try:
        import torch
    except ImportError:  # a card needs no torch
        return 0  # ONNX Runtime's own default
    return torch.get_num_threads()


def _l2(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    if norm == 0.0 or not np.isfinite(norm):
        raise BadInputError("the identity embedding has no direction (norm 0 or not finite); "
                            "check the encoder weights and the source photo")
    return vector / norm


class OnnxCardRunner:
    """A model card's swapper graph in ONNX Runtime (see the module docstring)."""

    runtime = "onnxruntime"

    def __init__(self, loaded: LoadedCard, encoder: IdentityEncoder | None) -> None:
        from mfsbench.cards.templates import template_points
        from mfsbench.faces.paste import box_mask

        self.loaded = loaded
        card = self.card = loaded.card
        if card.identity.kind == "embedding" and encoder is None:
            raise BadInputError(f"{card.path}: an embedding identity needs an identity encoder")
        self.encoder = encoder
        self.session = _session(loaded.swapper_path)
        inputs = {i.name: i for i in self.session.get_inputs()}
        if card.target_io.name not in inputs:
            raise BadInputError(f"{card.path}: field `io.target.name` {card.target_io.name!r} is not an "
                                f"input of {loaded.swapper_path.name} (inputs: {', '.join(inputs)}); "
                                "use the graph's name")
        self.source_name = card.source_io.name if card.source_io.name in inputs else None
        self.dtype = np.float16 if card.target_io.dtype == "float16" else np.float32
        self.points = template_points(card.template, card.size)
        self.size = card.size
        pixel = card.pixel
        self._mean = np.asarray(pixel.mean, np.float32)
        self._std = np.asarray(pixel.std, np.float32)
        # the paste mask: the card's box, or (``run.paste.mask = ["output"]``) the named graph output
        outputs = [o.name for o in self.session.get_outputs()]
        if card.paste_output is not None and card.paste_output not in outputs:
            raise BadInputError(f"{card.path}: field `run.paste.output` {card.paste_output!r} is not an "
                                f"output of {loaded.swapper_path.name} (outputs: {', '.join(outputs)}); "
                                "use the graph's name")
        self.mask_index = outputs.index(card.paste_output) if card.paste_output is not None else None
        self.mask = box_mask(card.size, card.paste_blur) if self.mask_index is None else None
        self.projection = self._projection()
        self.source: np.ndarray | None = None

    def _projection(self) -> Any:
        """The projection's matrix (an initializer), its converter session, or None."""
        projection = self.card.identity.projection
        if projection.kind == "initializer":
            onnx = require("onnx", "onnx", "reading a card's projection initializer")
            from onnx import numpy_helper

            initializers = list(onnx.load(str(self.loaded.swapper_path)).graph.initializer)
            chosen = (initializers[projection.index] if projection.index is not None
                      else next(i for i in initializers if i.name == projection.name))
            matrix = numpy_helper.to_array(chosen).astype(np.float32)
            if matrix.ndim != 2:
                raise BadInputError(f"{self.card.path}: field `identity.projection` names initializer "
                                    f"{chosen.name!r} of shape {list(matrix.shape)}; it must be a 2-D matrix")
            return matrix
        if projection.kind == "onnx":
            return _session(self.loaded.paths[projection.file or ""])
        return None

    # ------------------------------------------------------------------------- identity stage

    def align_source(self, image: np.ndarray, landmarks5: np.ndarray) -> np.ndarray:
        if self.card.identity.kind == "image":
            return self._align(image, landmarks5)[0]
        assert self.encoder is not None
        return self.encoder.align(image, landmarks5)

    def inject(self, source_crop: np.ndarray) -> None:
        identity = self.card.identity
        if identity.kind == "image":  # the source image itself is the graph's source input, every frame
            self.source = self._pixels(source_crop)
            return
        assert self.encoder is not None
        vector = self.encoder.embed(source_crop).astype(np.float64)
        if identity.input_norm == "l2":
            vector = _l2(vector)
        projection = self.projection
        if isinstance(projection, np.ndarray):
            if projection.shape[0] != vector.shape[0]:
                raise BadInputError(f"{self.card.path}: the projection is {list(projection.shape)} but the "
                                    f"encoder {self.encoder.name} gives {vector.shape[0]} values")
            vector = vector @ projection.astype(np.float64)
        elif projection is not None:
            spec = self.card.identity.projection
            name = spec.input or projection.get_inputs()[0].name
            vector = np.asarray(projection.run(None, {name: vector[None].astype(np.float32)})[spec.output],
                                np.float64).reshape(-1)
        if identity.post_norm == "l2":
            vector = _l2(vector)
        width = self.card.source_io.shape[-1]
        if width > 0 and vector.shape[0] != width:
            raise BadInputError(f"{self.card.path}: the identity has {vector.shape[0]} values but "
                                f"`io.source.shape` wants {width}; check `identity.projection`")
        self.source = vector[None].astype(self.dtype)

    @property
    def ready(self) -> bool:
        return self.source is not None

    def reset(self) -> None:
        self.source = None

    # ---------------------------------------------------------------------------- frame stage

    def align_target(self, image: np.ndarray, landmarks5: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._align(image, landmarks5)

    def _align(self, image: np.ndarray, landmarks5: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The card's crop: its template, fitted and bordered as ``target.warp`` says.

        The default (similarity, replicated border) is what every card before ``target.warp`` existed
        ran. ``fit = "affine"`` is the zoo's own 6-DoF least-squares fit
        (:func:`~mfsbench.faces.align.estimate_affine_lstsq`, what ``align_face`` runs for the student)
        and ``border = "zero"`` its zero border, so a card for the student's export crops as the zoo does.
        """
        return align_to_points(image, landmarks5, self.points, self.size, fit=self.card.fit,
                               border=self.card.border)

    def _pixels(self, crop_bgr: np.ndarray) -> np.ndarray:
        """Crop → 1×3×S×S tensor: the card's colour order, ``(x / scale − mean) / std``."""
        pixel = self.card.pixel
        image = crop_bgr[:, :, ::-1] if pixel.color == "RGB" else crop_bgr
        values = (image.astype(np.float32) / pixel.scale - self._mean) / self._std
        return np.ascontiguousarray(values.transpose(2, 0, 1)[None], dtype=self.dtype)

    def run_frame(self, crop: np.ndarray) -> Any:
        feeds = {self.card.target_io.name: self._pixels(crop)}
        if self.source_name is not None:
            feeds[self.source_name] = self.source
        return self.session.run(None, feeds)

    def decode_float(self, result: Any) -> np.ndarray:
        """The graph's output → S×S×3 BGR float in [0, 1]: the card's de-normalisation, range and colour
        order, before the rounding to uint8 (what the distillation teacher trains on).

        Raises:
            BadInputError: non-finite values, or a crop of another size than the card's.
        """
        out = self.card.output
        image = np.asarray(result[out.index][0], np.float32).transpose(1, 2, 0)
        if not np.isfinite(image).all():
            raise BadInputError(f"{self.loaded.swapper_path.name} returned NaN or infinite values "
                                "(an fp16 graph on this runtime?); use the fp32 export")
        if image.shape[:2] != (self.size, self.size):
            raise BadInputError(f"{self.loaded.swapper_path.name} returned a {image.shape[1]}×"
                                f"{image.shape[0]} crop; the card's `target.size` is {self.size}")
        if out.denorm:
            image = image * self._std + self._mean
        low, high = out.range
        image = np.clip((image - low) / (high - low), 0.0, 1.0)
        return image[:, :, ::-1] if out.color == "RGB" else image

    def decode(self, result: Any) -> tuple[np.ndarray, np.ndarray]:
        crop = np.ascontiguousarray(np.round(self.decode_float(result) * 255.0).astype(np.uint8))
        if self.mask is not None:
            return crop, self.mask
        # the graph's mask output, as the zoo adapter reads its fusion mask: channel 0, clamped to [0, 1]
        assert self.mask_index is not None
        mask = np.asarray(result[self.mask_index], np.float32)
        if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[2:] != crop.shape[:2] or not np.isfinite(
                mask).all():
            raise BadInputError(f"{self.loaded.swapper_path.name}'s output {self.card.paste_output!r} "
                                f"({list(mask.shape)}) is not a finite 1×1×{self.size}×{self.size} mask; "
                                "check `run.paste.output`")
        return crop, np.clip(mask[0, 0], 0.0, 1.0)

    def paste(self, frame: np.ndarray, crop: np.ndarray, matrix: np.ndarray, mask: np.ndarray) -> np.ndarray:
        from mfsbench.faces.paste import paste_back, paste_linear

        if self.mask_index is not None:  # a graph's own mask: blended exactly as the zoo blends its own
            return paste_back(frame, crop, matrix, mask)
        return paste_linear(frame, crop, matrix, mask)

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"runtime": self.runtime, **self.loaded.record_info(),
                                "identity_kind": self.card.identity.kind, "fit": self.card.fit,
                                "border": self.card.border,
                                "paste_mask": (f"output:{self.card.paste_output}" if self.card.paste_output
                                               else "+".join(self.card.paste_mask))}
        if self.encoder is not None:
            info["identity_encoder"] = self.encoder.info
        return info


def card_runner(spec: ModelSpec, checkpoints: list[str], *, allow_random: bool,
                seed: int = RANDOM_ENCODER_SEED) -> OnnxCardRunner:
    """The runner of a card spec, with its identity encoder (see :func:`build_encoder`; ``seed``
    seeds the suite ArcFace's random weights, as ``quality --seed`` labels its rows)."""
    loaded = spec.card
    assert loaded is not None
    encoder = (build_encoder(loaded, checkpoints, allow_random=allow_random, seed=seed)
               if loaded.card.identity.kind == "embedding" else None)
    if encoder is None and checkpoints:
        raise BadInputError(f"{spec.name}: the card's identity is the source image; drop --checkpoint")
    return OnnxCardRunner(loaded, encoder)
