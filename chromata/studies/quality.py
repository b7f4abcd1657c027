"""`chromata eval`: a quality report on colour photographs with their colour removed.

For every photo and every method — each model asked for, and two baselines that need no model: the
grey image itself, and a constant mean chroma (the average a*, b* of all evaluated photos added to
every pixel) — the output is compared with the true colours: PSNR and SSIM on 8-bit RGB, mean
CIEDE2000, and Hasler–Süsstrunk colourfulness with its ratio to the truth. Written as a Parquet table
(one row per photo and method), a Markdown summary and a self-contained HTML contact sheet.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from chromata.colormath import color
from chromata.models.base import Colorizer, model_input

GRAY, MEAN_CHROMA = "baseline: grey", "baseline: mean chroma"


@dataclass(frozen=True)
class Row:
    image: str
    method: str
    ciede2000: float
    psnr: float
    ssim: float
    colourfulness: float
    colourfulness_truth: float
    uncertainty: float | None


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two 8-bit images."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004: 11-tap Gaussian window, σ = 1.5, K1 = 0.01, K2 = 0.03) over channels."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    x, y = a.astype(np.float64), b.astype(np.float64)

    def blur(z: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(z, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    num = (2 * mx * my + c1) * (2 * sxy + c2)
    den = (mx * mx + my * my + c1) * (sxx + syy + c2)
    return float(np.mean(num / den))


def _row(
    name: str, method: str, truth_u8: np.ndarray, lab_truth: np.ndarray, out: np.ndarray, unc: float | None
) -> Row:
    out_u8 = color.from_unit_float(out, np.uint8)
    return Row(
        image=name,
        method=method,
        ciede2000=float(color.ciede2000(lab_truth, color.bgr_to_lab(out)).mean()),
        psnr=psnr(truth_u8, out_u8),
        ssim=ssim(truth_u8, out_u8),
        colourfulness=color.colourfulness(out),
        colourfulness_truth=color.colourfulness(color.to_unit_float(truth_u8)),
        uncertainty=unc,
    )


@dataclass
class Report:
    rows: list[Row]
    methods: list[str]
    mean_ab: tuple[float, float]
    thumbnails: dict[tuple[str, str], bytes]  # (image, "input"|"truth"|method) -> JPEG

    def summary(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        gray = [r for r in self.rows if r.method == GRAY]
        gray_de = float(np.mean([r.ciede2000 for r in gray]))
        gray_psnr = float(np.mean([r.psnr for r in gray]))
        for m in self.methods:
            rows = [r for r in self.rows if r.method == m]
            de = float(np.mean([r.ciede2000 for r in rows]))
            mean_psnr = float(np.mean([r.psnr for r in rows]))
            out.append(
                {
                    "method": m,
                    "images": len(rows),
                    "mean_ciede2000": round(de, 3),
                    "ciede2000_vs_gray": round(de / gray_de, 4),
                    "psnr_db": round(mean_psnr, 2),
                    "psnr_vs_gray_db": round(mean_psnr - gray_psnr, 2),
                    "ssim": round(float(np.mean([r.ssim for r in rows])), 4),
                    "colourfulness_ratio": round(
                        sum(r.colourfulness for r in rows) / max(1e-6, sum(r.colourfulness_truth for r in rows)), 4
                    ),
                }
            )
        return out

    def markdown(self, title: str = "Colorization quality") -> str:
        lines = [
            f"# {title}",
            "",
            f"{len({r.image for r in self.rows})} colour photos, colour removed, each photo's own L* kept. "
            f"Mean-chroma baseline: a* = {self.mean_ab[0]:.2f}, b* = {self.mean_ab[1]:.2f} on every pixel.",
            "",
            "| method | images | mean CIEDE2000 ↓ | vs grey | PSNR dB ↑ | vs grey | SSIM ↑ | colourfulness ratio |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for s in self.summary():
            lines.append(
                f"| {s['method']} | {s['images']} | {s['mean_ciede2000']} | {s['ciede2000_vs_gray']} | "
                f"{s['psnr_db']} | {s['psnr_vs_gray_db']:+} | {s['ssim']} | {s['colourfulness_ratio']} |"
            )
        return "\n".join(lines) + "\n"

    def contact_sheet(self) -> str:
        images = list(dict.fromkeys(r.image for r in self.rows))
        by = {(r.image, r.method): r for r in self.rows}
        cols = ["input", "truth", *[m for m in self.methods if m != GRAY]]
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = []
        for name in images:
            cells = []
            for c in cols:
                jpeg = self.thumbnails.get((name, c))
                img = f'<img src="data:image/jpeg;base64,{base64.b64encode(jpeg).decode()}" alt="">' if jpeg else ""
                r = by.get((name, c))
                caption = f"<br>ΔE {r.ciede2000:.2f} · {r.psnr:.1f} dB · SSIM {r.ssim:.3f}" if r else ""
                cells.append(f"<td>{img}{caption}</td>")
            body.append(f"<tr><th scope=row>{html.escape(name)}</th>{''.join(cells)}</tr>")
        return (
            "<!doctype html><html lang=en><meta charset=utf-8><title>chromata eval — contact sheet</title>"
            "<style>body{font:14px system-ui;margin:1em}td,th{padding:4px;vertical-align:top;font-weight:normal}"
            "th[scope=row]{text-align:left;max-width:12em;word-break:break-all}img{max-width:220px;display:block}"
            "</style><h1>chromata eval — contact sheet</h1>"
            "<p>Colours below are machine estimates, not historical record.</p>"
            f"<table><tr><th>photo</th>{head}</tr>{''.join(body)}</table></html>"
        )

    def contact_sheet_jpeg(self, max_images: int = 8, cell: int = 220) -> bytes:
        """The first photos' thumbnails as one JPEG grid (input, truth, each model), for docs and e-mail."""
        images = list(dict.fromkeys(r.image for r in self.rows))[:max_images]
        cols = ["input", "truth", *[m for m in self.methods if m not in (GRAY, MEAN_CHROMA)]]
        label_h = 24
        sheet = np.full((label_h + len(images) * (cell + 4), len(cols) * (cell + 4), 3), 255, np.uint8)
        for c, name in enumerate(cols):
            cv2.putText(sheet, name[:28], (c * (cell + 4) + 4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
        for r, image in enumerate(images):
            for c, name in enumerate(cols):
                jpeg = self.thumbnails.get((image, name))
                if not jpeg:
                    continue
                thumb = np.asarray(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), np.uint8)
                y, x = label_h + r * (cell + 4), c * (cell + 4)
                sheet[y : y + thumb.shape[0], x : x + thumb.shape[1]] = thumb
        ok, buf = cv2.imencode(".jpg", sheet, [cv2.IMWRITE_JPEG_QUALITY, 85])
        return buf.tobytes() if ok else b""

    def write(self, out: Path) -> dict[str, Path]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "parquet": out / "eval.parquet",
            "markdown": out / "eval.md",
            "html": out / "contact-sheet.html",
            "json": out / "summary.json",
            "jpeg": out / "contact-sheet.jpg",
        }
        pq.write_table(pa.Table.from_pylist([asdict(r) for r in self.rows]), paths["parquet"])
        paths["markdown"].write_text(self.markdown(), encoding="utf-8")
        paths["html"].write_text(self.contact_sheet(), encoding="utf-8")
        paths["json"].write_text(json.dumps({"mean_ab": self.mean_ab, "summary": self.summary()}, indent=2))
        if self.thumbnails:
            paths["jpeg"].write_bytes(self.contact_sheet_jpeg())
        return paths


def _thumb(bgr_unit: np.ndarray, size: int = 220) -> bytes:
    h, w = bgr_unit.shape[:2]
    s = size / max(h, w)
    small = np.asarray(
        cv2.resize(bgr_unit, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA), np.float32
    )
    ok, buf = cv2.imencode(".jpg", color.from_unit_float(small, np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return buf.tobytes() if ok else b""


def evaluate_models(
    images: Sequence[tuple[str, np.ndarray]], models: Sequence[tuple[str, Colorizer]], thumbnails: bool = True
) -> Report:
    """Score every model and both baselines on every photo (BGR uint8 colour photos)."""
    if not images:
        raise ValueError("no images to evaluate")
    labs = {name: color.bgr_to_lab(color.to_unit_float(bgr)) for name, bgr in images}
    mean_ab = tuple(float(np.mean([lab[..., i].mean() for lab in labs.values()])) for i in (1, 2))
    rows: list[Row] = []
    thumbs: dict[tuple[str, str], bytes] = {}
    for name, bgr in images:
        lab = labs[name]
        lightness = np.ascontiguousarray(lab[..., 0])
        outputs: list[tuple[str, np.ndarray, float | None]] = []
        for label, model in models:
            pred = model.predict_ab(model_input(model, lightness)[None])
            outputs.append((label, color.merge_chroma(lightness, pred.ab[0]), float(pred.uncertainty.mean())))
        zeros = np.zeros((*lightness.shape, 2), np.float32)
        gray = color.lab_to_bgr(np.dstack([lightness, zeros]))
        const = color.lab_to_bgr(np.dstack([lightness, zeros + np.asarray(mean_ab, np.float32)]))
        outputs += [(GRAY, gray, None), (MEAN_CHROMA, const, None)]
        for label, out, unc in outputs:
            rows.append(_row(name, label, bgr, lab, out, unc))
            if thumbnails:
                thumbs[(name, label)] = _thumb(out)
        if thumbnails:
            thumbs[(name, "input")] = _thumb(gray)
            thumbs[(name, "truth")] = _thumb(color.to_unit_float(bgr))
    methods = [label for label, _ in models] + [GRAY, MEAN_CHROMA]
    return Report(rows=rows, methods=methods, mean_ab=(mean_ab[0], mean_ab[1]), thumbnails=thumbs)


def tradeoff_png(points: Sequence[dict[str, object]], title: str, shipped: str | None = None) -> bytes:
    """CIEDE2000 (× grey) against colourfulness (× truth), one labelled point per decoding; the ``label`` of the
    shipped one is drawn in red. Each point: ``{"label", "ciede2000_vs_grey", "colourfulness_ratio"}``."""
    w, h, m = 640, 460, 70
    img = np.full((h, w, 3), 255, np.uint8)
    xs = [float(str(p["colourfulness_ratio"])) for p in points]
    ys = [float(str(p["ciede2000_vs_grey"])) for p in points]
    x0, x1 = 0.0, max(1.05, max(xs) + 0.05)
    y0, y1 = min(0.85, min(ys) - 0.01), max(1.02, max(ys) + 0.01)

    def pt(x: float, y: float) -> tuple[int, int]:
        return int(m + (x - x0) / (x1 - x0) * (w - 2 * m)), int(h - m - (y - y0) / (y1 - y0) * (h - 2 * m))

    black, grey = (0, 0, 0), (170, 170, 170)
    cv2.rectangle(img, pt(x0, y0), pt(x1, y1), black, 1)
    for gx in np.arange(0.0, x1 + 1e-9, 0.2):
        cv2.putText(img, f"{gx:.1f}", (pt(gx, y0)[0] - 10, h - m + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.4, black, 1)
    for gy in np.arange(np.ceil(y0 * 20) / 20, y1 + 1e-9, 0.05):
        cv2.putText(img, f"{gy:.2f}", (m - 42, pt(x0, gy)[1] + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, black, 1)
    # the goal: at most 0.90 x grey at colourfulness >= 0.8; and grey itself (1.0)
    cv2.line(img, pt(x0, 1.0), pt(x1, 1.0), grey, 1, cv2.LINE_AA)
    cv2.rectangle(img, pt(0.8, y0), pt(x1, min(0.90, y1)), (200, 235, 200), 1)
    cv2.putText(img, "goal", (pt(0.8, 0.90)[0] + 4, pt(0.8, 0.90)[1] + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                (60, 140, 60), 1)  # fmt: skip
    for p, x, y in zip(points, xs, ys, strict=True):
        is_shipped = shipped is not None and p["label"] == shipped
        colour = (30, 30, 220) if is_shipped else (200, 90, 30)
        cv2.circle(img, pt(x, y), 6 if is_shipped else 4, colour, -1, cv2.LINE_AA)
        label = str(p["label"]) + (" (shipped)" if is_shipped else "")
        cv2.putText(img, label, (pt(x, y)[0] + 7, pt(x, y)[1] - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.33, colour, 1)
    cv2.putText(img, title, (m, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.5, black, 1)
    cv2.putText(img, "colourfulness / truth", (w // 2 - 70, h - 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45, black, 1)
    cv2.putText(img, "CIEDE2000 / grey", (6, m - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.45, black, 1)
    ok, buf = cv2.imencode(".png", img)
    return buf.tobytes() if ok else b""
