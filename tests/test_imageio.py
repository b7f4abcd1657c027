import cv2
import numpy as np
import pytest

from chromata.errors import ImageError
from chromata.media.imageio import EncodeOptions, decode, encode, is_image_key
from tests.conftest import colour_patches, gradient_gray

LIMIT = 10_000_000


def _bytes(img: np.ndarray, ext: str) -> bytes:
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("key", ["a.jpg", "b.JPEG", "c/d.Tif", "e.tiff", "f.png", "g.webp", "h.BMP"])
def test_image_keys_case_insensitive(key):
    assert is_image_key(key)


@pytest.mark.parametrize("key", ["notes.txt", "scan.jpg.bak", "archive.zip", "noext"])
def test_non_image_keys(key):
    assert not is_image_key(key)


def test_decode_grey_jpeg():
    img = decode(_bytes(gradient_gray(), ".jpg"), LIMIT)
    assert (img.width, img.height, img.bit_depth, img.is_colour) == (128, 96, 8, False)
    assert img.grey().ndim == 2


def test_decode_keeps_16bit_tiff():
    src = gradient_gray(40, 50, np.uint16)
    img = decode(_bytes(src, ".tif"), LIMIT)
    assert img.bit_depth == 16
    np.testing.assert_array_equal(img.grey(), src)


def test_grey_stored_as_rgb_is_not_colour():
    grey3 = cv2.cvtColor(gradient_gray(), cv2.COLOR_GRAY2BGR)
    assert decode(_bytes(grey3, ".jpg"), LIMIT).is_colour is False


def test_colour_image_detected():
    assert decode(_bytes(colour_patches(), ".png"), LIMIT).is_colour is True


@pytest.mark.parametrize(("data", "code"), [(b"", "empty_file"), (b"GIF89a not really", "decode_error")])
def test_bad_bytes_raise_image_error(data, code):
    with pytest.raises(ImageError) as exc:
        decode(data, LIMIT)
    assert exc.value.code == code


def test_truncated_jpeg_is_an_error_or_decodes_partially():
    data = _bytes(gradient_gray(), ".jpg")[:200]
    with pytest.raises(ImageError):
        decode(data, LIMIT)


def test_pixel_limit():
    with pytest.raises(ImageError) as exc:
        decode(_bytes(gradient_gray(), ".png"), max_pixels=1000)
    assert exc.value.code == "too_large"


@pytest.mark.parametrize("ext", [".jpg", ".png", ".tif", ".webp", ".bmp"])
def test_encode_round_trips_size(ext):
    bgr = colour_patches()
    out = cv2.imdecode(np.frombuffer(encode(bgr, ext, EncodeOptions()), np.uint8), cv2.IMREAD_UNCHANGED)
    assert out.shape == bgr.shape


def test_encode_tiff_keeps_16bit():
    bgr16 = colour_patches().astype(np.uint16) * 257
    out = cv2.imdecode(np.frombuffer(encode(bgr16, ".tif", EncodeOptions()), np.uint8), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, bgr16)
