"""The record: what every run did to every image, kept beside the outputs in Parquet.

* :mod:`~chromata.record.manifest_schema` — the manifest row (``ImageRecord``) and its Parquet schema, defined once;
* :mod:`~chromata.record.manifest` — writing one fragment per shard and reading the manifest back;
* :mod:`~chromata.record.compaction` — many fragments read as a few files, history kept;
* :mod:`~chromata.record.manifest_index` — one index over a destination: every row, the latest per image,
  curators' decisions joined;
* :mod:`~chromata.record.decisions` — curators' exported decisions beside the manifest;
* :mod:`~chromata.record.runs` — run history and time estimates;
* :mod:`~chromata.record.provenance` — ``chromata provenance FILE``: from an output back to source, model, run
  and review;
* :mod:`~chromata.record.iiif` — the IIIF Presentation manifest a museum publishes the derivatives with.

May import: :mod:`chromata.errors`, :mod:`chromata.archive` and :mod:`chromata.media` (to read a file's
embedded label) — never judgement, models or the engine: the record stores what they decided.
"""
