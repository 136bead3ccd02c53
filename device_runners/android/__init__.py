"""Android runner for ``mfsbench device --adb``: the real adb client, device facts, tool-output parsers."""
