"""The human review queue: images whose colorization a curator should look at.

``store.ReviewQueue`` is the database side (its parts: ``schema``, ``database``, ``items``, ``claims``,
``decision_log``, ``accounts``, ``statistics``); ``app.create_app`` is the web app (``settings``,
``security``, ``deps``, ``images`` and the routers in ``routes``); ``export`` writes curators' decisions
beside the manifest. The core (``chromata.*`` outside this package and the CLI) never imports it.

May import: the core below the engine — the record, judgement, the archive, colour maths and the run
metrics; never the engine, the models, the CLI or the flows (which import it to fill the queue).
"""
