"""Checkpoints in each family's published layout, with weights by the family's deterministic recipe: what the
benchmarks and the end-to-end tests load where the published files cannot be downloaded (speed, memory and the
pipeline do not depend on the weights' values)."""

from __future__ import annotations

from pathlib import Path


def recipe_checkpoint(family: str, variant: str, folder: Path) -> Path:
    """Write ``folder/FAMILY-VARIANT.pth`` as the family's authors publish theirs: DDColor's BasicSR
    ``{'params': …}``, DeOldify's fastai ``{'model': …}``, Zhang et al.'s plain state dict."""
    import torch

    path = folder / f"{family}-{variant or 'net'}.pth"
    if family == "ddcolor":
        from chromata.models import ddcolor

        ddcolor.save_official_format(ddcolor.synthetic_state_dict(ddcolor.key_shapes(variant)), path)
    elif family == "deoldify":
        from chromata.models import deoldify

        deoldify.save_fastai_format(deoldify.recipe_weights(variant), path)
    elif family in ("eccv16", "siggraph17"):
        from chromata.models.zhang import ARCHITECTURES, save_reference_format

        torch.manual_seed(0)
        save_reference_format(ARCHITECTURES[family](), path)
    else:
        raise ValueError(f"no recipe checkpoint for {family!r}")
    return path
