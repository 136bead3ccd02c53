"""The names of the FLOP-counting conventions, apart from the counter so the CLI can list them.

What each means and why they differ is in :mod:`mfsbench.counting`, which implements them; this
module is only their names and one-line descriptions, importable without torch (``--help`` uses it).
"""

from __future__ import annotations

from typing import Literal

Convention = Literal["paper", "fvcore", "macs"]
CONVENTIONS: tuple[Convention, ...] = ("paper", "fvcore", "macs")

CONVENTION_DESCRIPTIONS: dict[str, str] = {
    "paper": "fvcore MACs with the spring-2021 rules (batch norm 5/element, 2021 transposed-conv formula); "
    "reproduces Table 1",
    "fvcore": "fvcore 0.1.5.post20221221 MACs as installed (eval batch norm 2/element)",
    "macs": "multiply-accumulates of conv, linear and matmul only",
}
