"""Media: the files themselves — decoding and encoding scans, the formats table, and the labels every output
carries.

* :mod:`~chromata.media.formats` — the one table of formats chromata reads and writes (add a format here);
* :mod:`~chromata.media.imageio` — decoding (EXIF orientation, 16-bit, ICC → sRGB, header-only probing) and
  encoding;
* :mod:`~chromata.media.labels` — the embedded XMP label and the source metadata carried over, per container;
  :mod:`~chromata.media.visible_label` — the optional "AI-colorized" mark; :mod:`~chromata.media.c2pa_label` —
  the signed C2PA manifest.

May import: :mod:`chromata.errors` only. Colorizing a scan too large for memory, or a film, is the engine's work
(:mod:`chromata.pipeline.tiled`, :mod:`chromata.pipeline.video`): it reads the input checks and the model.
"""
