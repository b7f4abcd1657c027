"""Progress events from a run to whoever shows them (the CLI's Rich bar), engine-independent.

A flow or executor calls ``planned`` / ``advance``; listeners registered in the same process receive
them. With no listener registered these calls do nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class ProgressListener(Protocol):
    def planned(self, images: int) -> None: ...

    def advance(self, images: int) -> None: ...


_listeners: list[ProgressListener] = []


@contextmanager
def listening(listener: ProgressListener) -> Iterator[None]:
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


def planned(images: int) -> None:
    for listener in list(_listeners):
        listener.planned(images)


def advance(images: int) -> None:
    for listener in list(_listeners):
        listener.advance(images)
