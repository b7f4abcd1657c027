"""Ray adapters: thin actor wrappers over chromata's core (installed as ``chromata.actors``)."""
