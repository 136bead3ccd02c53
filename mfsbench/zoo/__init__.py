"""The model zoo as data: every :class:`~mfsbench.registry.ModelSpec`, registered on first lookup.

Spec modules hold no network code and never import torch (a test guards it): each spec points at
its network with a :class:`~mfsbench.registry.Builder` reference. Networks live in
:mod:`mfsbench.models` (the paper's own) and :mod:`baselines` (everyone else's).

``paper``      the Id network (ArcFace IR-SE-101) and the MobileFaceSwap students
``baselines``  DeepFakes, FSGAN, SimSwap, FaceShifter, and FaceController (cited only)
``ablations``  the five architecture ablations of Table 2
``tiny``       ``test_*`` networks at toy widths, hidden unless asked for
"""
