"""``mfsbench convert``: an official checkpoint → a plain ``.safetensors`` (or weights-only ``.pt``) file.

The official files are pickles (Paddle ``.pdparams``, torch ``.pth``/``.pkl``/``.tar``); reading one
is safe only through mfsbench's restricted loader. Converting once gives a file any tool can read
without unpickling, under mfsbench's (torch) key names, checked strictly against the network it
belongs to. Both sha256 digests are printed so a converted file can be traced to its source.

The other way, ``--checkpoint FILE.safetensors --out FILE.pdparams`` writes the official Paddle layout
(``mobilefaceswap_pdparams`` or ``arcface_pdparams``), e.g. for the student ``mfsbench distill``
trained. Its tensors are checked against the architecture first: the zoo student the file's metadata
names (so an ablation keeps its own shapes), else the format's official network.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

from mfsbench.checkpoints.digest import sha256_file
from mfsbench.checkpoints.formats import FORMATS, convert_official
from mfsbench.cli.outputs import check_output_file, refuse_overwriting_inputs
from mfsbench.errors import BadInputError
from mfsbench.optional import require

SUFFIXES = (".safetensors", ".pt")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        required=True,
        choices=tuple(FORMATS),
        help="; ".join(f"{f.name}: {f.filename} → {f.target}" for f in FORMATS.values()),
    )
    parser.add_argument("--checkpoint", required=True,
                        help="the official file to read, or a .safetensors file to write as "
                             "--out FILE.pdparams")
    parser.add_argument("--out", required=True, help="FILE.safetensors, or FILE.pt for a torch state dict; "
                                                     "FILE.pdparams (official layout) from a .safetensors")
    parser.set_defaults(run=run)


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def _structure(format: str, metadata: dict[str, str]) -> Any:
    """The module (on the meta device: shapes only) that a .safetensors file's tensors must fit."""
    import torch

    from mfsbench.checkpoints.formats import _target, get_format
    from mfsbench.registry import create_model, get_spec

    fmt = get_format(format)
    student = metadata.get("student")
    with torch.device("meta"):
        if student is None:
            return fmt.build()
        get_spec(student)  # an unknown name is one error naming the zoo
        return _target(create_model(student), fmt)


def _to_official(args: argparse.Namespace, source: Path, out: Path) -> int:
    """``.safetensors`` → the official ``.pdparams`` layout, checked against its architecture."""
    from mfsbench.checkpoints.formats import read_safetensors, write_official_state

    official = Path(FORMATS[args.format].filename).suffix
    if out.suffix != official:
        raise BadInputError(f"--out {out}: a {args.format} file ends in {official}; name it like "
                            f"{FORMATS[args.format].filename}")
    if not source.is_file():
        raise BadInputError(f"--checkpoint {source} not found; check the path")
    if not out.parent.is_dir():
        raise BadInputError(f"--out directory {out.parent} does not exist; create it first")
    refuse_overwriting_inputs(out, {"--checkpoint": source})
    check_output_file(out, example=FORMATS[args.format].filename)
    state, metadata = read_safetensors(source)
    if metadata.get("format") not in (None, args.format):
        raise BadInputError(f"{source} was converted from a {metadata['format']} file; "
                            f"pass --format {metadata['format']}")
    structure = _structure(args.format, metadata)
    try:
        write_official_state(state, structure, out, args.format)
    except OSError as exc:
        raise BadInputError(f"cannot write --out {out} ({exc.strerror or type(exc).__name__}); pass a "
                            "writable path with free space; nothing was written") from None
    print(f"{sha256_file(source)}  {source}  (safetensors, {len(state)} tensors)")
    print(f"{sha256_file(out)}  {out}  ({args.format})")
    return 0


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.is_dir():
        raise BadInputError(f"--out {out} is a directory; pass a file such as {out / 'weights.safetensors'}")
    source = Path(args.checkpoint)
    if source.suffix == ".safetensors":
        return _to_official(args, source, out)
    if out.suffix not in SUFFIXES:
        raise BadInputError(f"--out {out} must end in .safetensors or .pt; pick one of those")
    if out.suffix == ".safetensors":
        writer = require("safetensors.torch", "safetensors", "writing .safetensors (or pass --out FILE.pt)")
        save_file = writer.save_file
    if not out.parent.is_dir():
        raise BadInputError(f"--out directory {out.parent} does not exist; create it first")
    refuse_overwriting_inputs(out, {"--checkpoint": Path(args.checkpoint)})
    check_output_file(out, example="weights.safetensors")
    record, state = convert_official(args.checkpoint, args.format)
    tensors = {k: v.detach().contiguous().clone() for k, v in state.items()}
    # written beside --out and renamed onto it when complete: a failed write (disk full) leaves nothing
    handle, name = tempfile.mkstemp(prefix=f".{out.stem}-", suffix=out.suffix, dir=out.parent)
    os.close(handle)
    temp = Path(name)
    try:
        if out.suffix == ".safetensors":
            save_file(tensors, str(temp), metadata={"format": record.format, "source_sha256": record.sha256})
        else:
            import torch

            torch.save(tensors, temp)
        temp.chmod(0o666 & ~_umask())  # mkstemp's 0600 would make the file private, unlike a plain write
        os.replace(temp, out)
    except (OSError, RuntimeError) as exc:  # torch reports a failed write as RuntimeError
        reason = getattr(exc, "strerror", None) or (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        raise BadInputError(f"cannot write --out {out} ({reason}); pass a writable path with free space; "
                            "nothing was written") from None
    finally:
        temp.unlink(missing_ok=True)
    print(f"{record.sha256}  {record.path}  ({record.format}, {record.keys} tensors)")
    print(f"{sha256_file(out)}  {out}")
    return 0
