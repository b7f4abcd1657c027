"""Studies: measurements that produce the figures in docs/ and the fitted files shipped with the models.

None of this runs in a nightly colorization: the engine, the flows and the actors never import it
(``tests/test_layers.py`` checks). Each study is a command:

* :mod:`~chromata.studies.quality` — ``chromata eval``: the quality report, models against baselines;
* :mod:`~chromata.studies.calibration` — ``chromata calibrate``: fitting raw score → P(good) on held-out photos;
* :mod:`~chromata.studies.harm` — ``python -m chromata.studies.harm``: fitting and measuring the harm estimator;
* :mod:`~chromata.studies.crossfit` — ``python -m chromata.studies.crossfit``: the built-in recipe cross-fitted on
  folds of the photos, so judgement is measured on real mistakes of models that never saw them.

May import anything in the core below the CLI (models, judgement, colour maths, media) and, to cross-fit the
recipe, training.
"""
