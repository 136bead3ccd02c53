"""``python -m mfsbench.cli``: the same entry point as the ``mfsbench`` console script."""

from mfsbench.cli.main import console_entry

console_entry()
