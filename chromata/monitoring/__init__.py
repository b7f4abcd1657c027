"""Watching a run: progress while it runs, Prometheus metrics, and what it did once it is over.

* :mod:`~chromata.monitoring.progress` — progress events from a run to whoever shows them (the CLI's bar);
* :mod:`~chromata.monitoring.metrics` — the Prometheus registry, fed from the workers' shard statistics
  (dashboards/ and its alert rules read exactly these metrics);
* :mod:`~chromata.monitoring.summary` — the numbers a person reads at the end of a run;
* :mod:`~chromata.monitoring.report` — the self-contained HTML run report written into the destination.

May import: the core below it (record, judgement, the engine's result types); nothing imports it but the
flows, the actors, the CLI and the review app.
"""
