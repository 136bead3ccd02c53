"""The desktop device axis in one place: runtimes × precisions, the sweep and its cells, timing, peaks.

* :mod:`mfsbench.device.runtimes` — torch eager, ONNX Runtime, OpenVINO, LiteRT behind one protocol;
* :mod:`mfsbench.device.timing` — the latency harness and its statistics;
* :mod:`mfsbench.device.roofline` — peak MAC/s measured on this machine and efficiency against it;
* :mod:`mfsbench.device.sweep` — model × runtime × precision → export, parity, timing, one record each.

Importing this package imports nothing heavy; each submodule imports its backend where it uses it.
"""
