import cv2
import numpy as np
import pytest

from chromata.colormath import color, kernels
from tests.conftest import gradient_gray


def test_lab_round_trip_8bit():
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    back = color.from_unit_float(color.lab_to_bgr(color.bgr_to_lab(color.to_unit_float(bgr))), np.uint8)
    assert np.abs(back.astype(int) - bgr.astype(int)).max() <= 1


def test_merge_keeps_full_resolution_lightness():
    gray = gradient_gray(120, 160)
    lightness = color.gray_to_lightness(color.to_unit_float(gray))
    ab_low = np.zeros((16, 16, 2), np.float32)
    ab_low[..., 0] = 8.0  # reddish
    ab_low[..., 1] = 12.0  # yellowish
    out = color.merge_chroma(lightness, ab_low)
    assert out.shape == (120, 160, 3)
    lab_out = color.bgr_to_lab(out)
    # L is the original, to float precision, except where a colour fell out of the sRGB gamut
    inside = (out > 0.001).all(axis=2) & (out < 0.999).all(axis=2)
    assert inside.mean() > 0.8
    assert np.abs(lab_out[..., 0] - lightness)[inside].max() < 0.05
    assert np.abs(lab_out[..., 1][inside] - 8).max() < 0.05


def test_16bit_precision_survives_merge():
    gray16 = gradient_gray(16, 1200, np.uint16)
    lightness = color.gray_to_lightness(color.to_unit_float(gray16))
    out = color.from_unit_float(color.merge_chroma(lightness, np.zeros((4, 4, 2), np.float32)), np.uint16)
    assert out.dtype == np.uint16
    # zero chroma: every channel equals the original 16-bit grey (float32 rounding: ±2 of 65535)
    assert np.abs(out.astype(int) - gray16[..., None].astype(int)).max() <= 2
    assert len(np.unique(out[..., 1])) > 256  # more levels than 8 bits could hold


@pytest.mark.parametrize("fused", [True, False], ids=["numba kernel", "opencv passes"])
def test_8bit_merge_by_table_equals_exact_companding(fused, monkeypatch):
    """The 8-bit output path (linear light -> sRGB by look-up table) is the exact path to within one level,
    grey stays grey, and 16-bit outputs take the exact path unchanged — fused into one pass by numba
    (chromata.colormath.kernels, what runs) and as OpenCV passes (where numba is missing)."""
    assert kernels.available()  # numba is a dependency: the fused kernel must be what runs here
    if not fused:
        monkeypatch.setattr(kernels, "available", lambda: False)
    rng = np.random.default_rng(3)
    lightness = rng.uniform(0, 100, (90, 130)).astype(np.float32)
    for spread in (0.0, 10.0, 60.0):  # none, moderate and out-of-gamut chroma
        ab = rng.normal(0, spread, (8, 8, 2)).astype(np.float32)
        exact = color.from_unit_float(color.merge_chroma(lightness, ab), np.uint8)
        table = color.merge_chroma_to(lightness, ab, np.uint8)
        assert table.dtype == np.uint8 and np.abs(table.astype(int) - exact.astype(int)).max() <= 1
    grey = color.merge_chroma_to(lightness, np.zeros((4, 4, 2), np.float32), np.uint8)
    assert np.abs(grey.astype(int) - grey[..., :1].astype(int)).max() <= 1
    ab = rng.normal(0, 20, (8, 8, 2)).astype(np.float32)
    exact16 = color.from_unit_float(color.merge_chroma(lightness, ab), np.uint16)
    banded16 = color.merge_chroma_to(lightness, ab, np.uint16)  # the exact path, in bands: float rounding only
    assert banded16.dtype == np.uint16 and np.abs(banded16.astype(int) - exact16.astype(int)).max() <= 1


def test_fast_paths_equal_the_plain_ones():
    """The speed-ups of issue #17 change no value: the 16-bit table look-up by ``cv2.remap`` (also on rows
    wider than remap takes), the branch-free f⁻¹ (its linear part, the breakpoint and the cube), L* of 8-bit
    grey by ``cv2.LUT``, and the block reduction by ``cv2.resize`` against numpy's block means."""
    rng = np.random.default_rng(5)
    table = color._srgb8_lut()
    for shape in ((64, 5760), (3, 40000), (1, 1)):
        index = rng.integers(0, 65536, shape, dtype=np.uint16)
        assert np.array_equal(color.lookup16(table, index), table[index])
    t = np.linspace(-0.3, 1.4, 100_000, dtype=np.float32).reshape(100, -1)
    assert np.abs(color._f_inv_inplace(t.copy()) - color._f_inv(t)).max() < 2e-6
    grey = rng.integers(0, 256, (37, 53), dtype=np.uint8)
    assert np.array_equal(color.grey_pixels_to_lightness(grey), color._lightness_lut(256)[grey])
    light = rng.uniform(0, 100, (2 * 1024 + 7, 1500)).astype(np.float32)  # factor 3, a partial last block
    factor = color.reduction_factor(1500, light.shape[0])
    n = light.shape[0] // factor * factor
    rows = light[:n].reshape(n // factor, factor, -1).mean(axis=1)
    expected = cv2.resize(rows, (round(1500 / factor), n // factor), interpolation=cv2.INTER_AREA)
    assert np.abs(color.reduce_lightness(light)[: n // factor] - expected).max() < 1e-3


@pytest.mark.parametrize(
    ("lab1", "lab2", "expected"),
    [  # Sharma, Wu & Dalal (2005), Table 1, pairs 1-3
        ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
        ((50.0, 3.1571, -77.2803), (50.0, 0.0, -82.7485), 2.8615),
        ((50.0, 2.8361, -74.0200), (50.0, 0.0, -82.7485), 3.4412),
    ],
)
def test_ciede2000_reference_pairs(lab1, lab2, expected):
    a = np.array([[lab1]], np.float32)
    b = np.array([[lab2]], np.float32)
    assert color.ciede2000(a, b)[0, 0] == pytest.approx(expected, abs=1e-3)


def test_colourfulness_orders_images():
    gray = np.full((16, 16, 3), 0.5, np.float32)
    vivid = np.zeros((16, 16, 3), np.float32)
    vivid[:8, :, 2] = 1.0
    vivid[8:, :, 1] = 1.0
    assert color.colourfulness(gray) == pytest.approx(0.0)
    assert color.colourfulness(vivid) > 50


def test_fused_and_opencv_merges_agree_on_a_scan(monkeypatch):
    """The two 8-bit merges on a photograph-like scan (smooth chroma, every grey level): within one level of
    each other everywhere, and identical almost everywhere (they round at different points)."""
    rng = np.random.default_rng(11)
    grey = cv2.GaussianBlur(rng.integers(0, 256, (300, 451), dtype=np.uint8), (0, 0), 2)
    grey[:4] = np.arange(451, dtype=np.int64)[None, :] % 256  # every level, black to white
    lightness = color.lightness_of(grey)
    ab = cv2.GaussianBlur(rng.normal(0, 40, (32, 32, 2)).astype(np.float32), (0, 0), 2) * 3
    fused = color.merge_chroma_to(lightness, ab, np.uint8)
    monkeypatch.setattr(kernels, "available", lambda: False)
    passes = color.merge_chroma_to(lightness, ab, np.uint8)
    diff = np.abs(fused.astype(int) - passes.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def _photo_like(seed: int, dtype=np.uint8):
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    grey = cv2.GaussianBlur(rng.uniform(0, top, (130, 171)).astype(np.float32), (0, 0), 2)
    grey[:3] = np.linspace(0, top, 171)[None, :]  # black to white
    lightness = color.lightness_of(np.clip(grey, 0, top).astype(dtype))
    ab = cv2.GaussianBlur(rng.normal(0, 40, (16, 16, 2)).astype(np.float32), (0, 0), 1.5) * 3
    return lightness, ab


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_torch_merge_equals_the_cpu_path(dtype):
    """The per-pixel work a GPU node does in torch (chromata.colormath.torchcolor.merge_chroma_to), run here on the CPU
    through the same torch code: within one level of the CPU path, for 8- and 16-bit outputs, in-gamut and
    clipped colours alike."""
    from chromata.colormath import torchcolor

    lightness, ab = _photo_like(7, dtype)
    on_torch = torchcolor.merge_chroma_to(lightness, ab, dtype, "cpu")
    on_cpu = color.merge_chroma_to(lightness, ab, dtype)
    assert on_torch.dtype == np.dtype(dtype) and on_torch.shape == on_cpu.shape == (130, 171, 3)
    assert np.abs(on_torch.astype(int) - on_cpu.astype(int)).max() <= 1
    assert len(np.unique(on_cpu.reshape(-1, 3), axis=0)) > 1000  # real colour, not a flat image


def test_the_merge_runs_where_the_model_runs():
    import torch

    from chromata.colormath import torchcolor
    from chromata.pipeline.still import merge_on

    assert merge_on("cpu") is color.merge_chroma_to
    if torch.cuda.is_available():
        gpu = merge_on("cuda:0")
        assert gpu.func is torchcolor.merge_chroma_to and gpu.keywords == {"device": "cuda:0"}
    else:  # an ONNX model on ONNX Runtime's GPU while torch has none: the merge stays on the CPU
        assert merge_on("cuda:0") is color.merge_chroma_to


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_torch_merge_on_the_gpu_equals_the_cpu_path(dtype):
    import torch

    from chromata.colormath import torchcolor

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    lightness, ab = _photo_like(8, dtype)
    on_gpu = torchcolor.merge_chroma_to(lightness, ab, dtype, "cuda")
    assert np.abs(on_gpu.astype(int) - color.merge_chroma_to(lightness, ab, dtype).astype(int)).max() <= 1
