"""Bring your own model: TOML model cards that make any ONNX face swapper a zoo model.

A card (:mod:`mfsbench.cards.schema`) says where the user's files are and how to feed the graph;
:mod:`mfsbench.cards.load` checks it against those files before anything runs;
:mod:`mfsbench.cards.graph` counts the graph without loading its weights;
:mod:`mfsbench.cards.spec` turns it into a :class:`~mfsbench.registry.ModelSpec`, so every command
that takes a model name takes a card path too. The suite never downloads or stores anyone's weights.
"""
