"""The ``mfsbench`` command line: one module per command, errors mapped to one line at the boundary."""
