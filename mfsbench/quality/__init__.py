"""FF++ face-swap quality evaluation (``mfsbench quality``): pinned protocol, cached runs, Table 2.

The pieces: a versioned protocol (:mod:`.protocol`) checked against the evaluators that run
(:mod:`.card`), the FF++ tree and frame sampling (:mod:`.ffpp`, :mod:`.frames`), evaluators
(:mod:`.evaluators`, :mod:`.offline`, :mod:`.fid`), the SQLite cache that makes runs resumable and
shardable (:mod:`.store`), and the runner that ties them together (:mod:`.runner`), built from
its stages: rows and shards (:mod:`.plan`), video preparation (:mod:`.prepare`), the gallery and
retrieval (:mod:`.gallery`), per-pair execution (:mod:`.execute`) and aggregation
(:mod:`.aggregate`). Heavy dependencies are imported by the modules that need them, not here.
"""
