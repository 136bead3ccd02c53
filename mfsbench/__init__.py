"""mfsbench: how small, how good and how fast a face-swap network really is.

The public surface is deliberately small: look models up in the registry and build them.
Everything else (counting, reports, the CLI) consumes these three functions.
"""

from __future__ import annotations

__version__ = "0.1.0"

from mfsbench.registry import create_model as create_model
from mfsbench.registry import get_spec as get_spec
from mfsbench.registry import list_models as list_models
