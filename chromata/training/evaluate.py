"""Choosing how a trained network decodes ab (temperature, chroma gamma) on the validation photos."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from chromata.models.builtin import BuiltinColorizer
from chromata.models.evaluation import evaluate

log = logging.getLogger(__name__)


def select_decoding(
    net: Any,
    config: dict[str, Any],
    val_imgs: list[tuple[str, np.ndarray]],
    temperatures: tuple[float, ...],
    gammas: tuple[float, ...],
    device: str = "cpu",
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Evaluate every (temperature, chroma gamma) decoding on the validation photos and pick one.

    Rule: the most colourful decoding whose mean CIEDE2000 is no worse than returning the grey image
    (ratio ≤ 1.0) — on average our colour is never further from the truth than no colour at all. If
    none qualifies, the one with the lowest error.
    """
    table: list[dict[str, Any]] = []
    for t in temperatures:
        for g in gammas:
            model = BuiltinColorizer(net, config, "unsaved", device=device, temperature=t, chroma_gamma=g)
            row = {"temperature": t, "chroma_gamma": g, **evaluate(val_imgs, model).as_dict()}
            log.info("validation %s", row)
            table.append(row)
    ok = [r for r in table if float(r["ciede2000_vs_gray"]) <= 1.0]
    best = (
        max(ok, key=lambda r: float(r["colourfulness_ratio"]))
        if ok
        else min(table, key=lambda r: float(r["mean_ciede2000"]))
    )
    return {"temperature": best["temperature"], "chroma_gamma": best["chroma_gamma"]}, table
