"""Networks of the zoo: the MobileFaceSwap student, its Id network, its ablations and tiny test nets.

The third-party baselines live in the top-level ``baselines`` package; both sides implement
:class:`mfsbench.models.base.SwapNet`.
"""
