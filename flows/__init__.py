"""Prefect adapters: flows that compose chromata's core (installed as ``chromata.flows``)."""
