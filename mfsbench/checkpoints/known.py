"""The official releases' files, by sha256: how a record can say "official weights, verified".

Digests from ``specs/mobilefaceswap.md`` §6: the Git LFS pointers of a public repository that
vendors the MobileFaceSwap release (upstream commit ``29552474``), agreeing with the byte sizes of the
release archive. A file whose digest is here *is* that file, whatever its name; a file with an
official name but another digest is a re-save, a fine-tune or a corruption, and is recorded as
"not the official release" so a reader does not take its numbers for the paper's weights.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KnownFile:
    """One file of an official release."""

    release: str
    name: str
    sha256: str
    size_bytes: int


KNOWN_FILES: tuple[KnownFile, ...] = (
    KnownFile("MobileFaceSwap (AAAI 2022) release", "MobileFaceSwap_224.pdparams",
              "ee51a18684d2862363deefde14220d7e7eb33b78b5b1840e1a76566a7f3508fb", 82_834_948),
    KnownFile("MobileFaceSwap (AAAI 2022) release", "arcface.pdparams",
              "adc5d94075fc2f8ad93ba1040310b97f604843d03c82ecf3a4bdb86af658ca3b", 209_017_341),
    KnownFile("MobileFaceSwap (AAAI 2022) release", "scrfd_10g_bnkps.onnx",
              "5838f7fe053675b1c7a08b633df49e7af5495cee0493c7dcf6697200b85b5b91", 16_923_827),
)
BY_SHA256 = {known.sha256: known for known in KNOWN_FILES}
BY_NAME = {known.name: known for known in KNOWN_FILES}


def provenance(name: str, sha256: str) -> str | None:
    """What a loaded file is, for its record: the verified official file, a file bearing an official
    name with another digest, or None when the suite knows nothing about it."""
    known = BY_SHA256.get(sha256)
    if known is not None:
        return f"official: {known.release}, {known.name}, sha256 verified"
    named = BY_NAME.get(name)
    if named is not None:
        return (f"not the official release: named {named.name} but sha256 {sha256[:12]}… is not "
                f"{named.sha256[:12]}… (a re-save, fine-tune or damaged copy)")
    return None
