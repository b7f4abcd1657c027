"""Judgement: how far to trust a colorization, why, and what to do about it.

* :mod:`~chromata.judgement.inputchecks` — checks on the scan itself (blank, low contrast, already colour,
  a document page, …) that make any colorization of it unreliable;
* :mod:`~chromata.judgement.confidence` — the per-image score in [0, 1] with machine-readable reasons;
* :mod:`~chromata.judgement.assess` — the shipped confidence estimator (score version 2): P(better half) for any
  model family from grey + colour + the semantic reading (passed in: judgement imports no model), and the regions
  it blames, by kind;
* :mod:`~chromata.judgement.harm` — the learned, model-agnostic estimate of where colours are wrong (and the
  restraint it drives); :mod:`~chromata.judgement.calibration_map` and
  :mod:`~chromata.judgement.calibration` — raw score → probability of a good colorization;
* :mod:`~chromata.judgement.reasons` — every reason code in words a curator understands;
* :mod:`~chromata.judgement.routing_fit` — refitting the routing from curators' decisions.

May import: :mod:`chromata.errors`, :mod:`chromata.colormath`, :mod:`chromata.archive` and, to learn from
curators' decisions, the manifest's reading side (:mod:`chromata.record.manifest_index`) — never the code that
writes the record, the engine or a model. The studies that fit these estimators live in
:mod:`chromata.studies`.
"""
