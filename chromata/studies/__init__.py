"""Studies: measurements that produce the figures in docs/ and the fitted files shipped with the models.

None of this runs in a nightly colorization: the engine, the flows and the actors never import it
(``tests/test_layers.py`` checks). Each study is a command:

* :mod:`~chromata.studies.evaluation` — scoring colorizations of colour photos with their colour removed (also
  what training's validation uses);
* :mod:`~chromata.studies.quality` — ``chromata eval``: the quality report, models against baselines;
* :mod:`~chromata.studies.calibration` — ``chromata calibrate``: fitting raw score → P(good) on held-out photos;
* :mod:`~chromata.studies.harm` — ``python -m chromata.studies.harm``: fitting and measuring the harm estimator.

May import anything in the core below the CLI (models, judgement, colour maths, media).
"""
