"""The harm estimator (chromata.judgement.harm): features, the shipped estimator's judgement, restraint at decoding for
every family, and the estimated uncertainty an ONNX graph without an uncertainty output gets."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from chromata.judgement import confidence, harm
from chromata.models import load_colorizer
from tests.conftest import DATA, PHOTOS, data_problem, needs_data

DATA_WHAT = DATA["photos"][1]


def _scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic photo at working resolution: a flat grey wall (top) over textured foliage (bottom); and its
    plausible chroma at 64 x 64 (neutral wall, green foliage)."""
    rng = np.random.default_rng(seed)
    L = np.full((256, 256), 62.0, np.float32)
    L += cv2.GaussianBlur(rng.normal(0, 1.0, (256, 256)).astype(np.float32), (0, 0), 1.0)
    leaves = cv2.GaussianBlur(rng.normal(0, 14, (256, 256)).astype(np.float32), (0, 0), 1.2)
    L[128:] = 40 + leaves[128:]
    ab = np.zeros((64, 64, 2), np.float32)
    ab[32:] = (-18.0, 22.0)
    return np.clip(L, 0, 100), ab


def test_region_features_are_finite_and_handle_any_model_resolution():
    L, ab = _scene()
    f = harm.region_features(L, ab)
    assert f.shape == (harm.GRID**2, len(harm.FEATURE_NAMES)) and np.isfinite(f).all()
    # SIGGRAPH17 gives ab at the working resolution, ONNX graphs at any size: same feature layout
    g = harm.region_features(cv2.resize(L, (320, 192)), cv2.resize(ab, (96, 64)))
    assert g.shape == f.shape and np.isfinite(g).all()
    assert np.array_equal(f, harm.region_features(L, ab))  # deterministic


def test_shipped_estimator_sees_strong_wrong_colour_on_a_neutral_wall():
    est = harm.shipped()
    assert est is not None, "the package ships harm-v1.json"
    L, plausible = _scene()
    orange = plausible.copy()
    orange[:32] = (22.0, 38.0)  # the grey wall painted orange
    good, bad = est.judge(L, plausible), est.judge(L, orange)
    assert bad.p_good < good.p_good
    wall = slice(0, harm.GRID // 2)
    assert bad.excess[wall].mean() > good.excess[wall].mean() + 0.5  # the harm is found where it is
    assert bad.harm[wall].mean() > bad.harm[harm.GRID // 2 :].mean()
    assert bad.harm_map(300, 400).shape == (300, 400)


def test_restraint_damps_where_harm_is_predicted_and_keeps_where_colour_helps():
    ab = np.full((64, 64, 2), 20.0, np.float32)
    excess = np.zeros((harm.GRID, harm.GRID), np.float32)
    excess[:, : harm.GRID // 2] = -6.0  # colour helps on the left
    excess[:, harm.GRID // 2 :] = 9.0  # harms on the right
    out = harm.apply_restraint(ab, excess, strength=2.0, gain=1.0, scale=3.0)
    assert np.allclose(out[:, :20], 20.0, atol=0.05)  # kept
    assert out[:, 44:].max() < 20.0 * 0.1  # damped
    boosted = harm.apply_restraint(ab, excess, strength=2.0, gain=1.2, scale=3.0)
    assert np.allclose(boosted[:, :20], 24.0, atol=0.1)
    assert np.array_equal(harm.apply_restraint(ab, excess, 0.0, 1.0, 3.0), ab)  # off


@pytest.fixture(scope="module")
def onnx_pair(tmp_path_factory):
    from chromata.models.onnx import export_builtin

    torch_model = load_colorizer("builtin", device="cpu")
    path = export_builtin(torch_model, tmp_path_factory.mktemp("onnx") / "no-unc.onnx", uncertainty=False)
    return torch_model, load_colorizer(f"onnx:{path}", device="cpu"), path


def _photo_like(seed: int) -> np.ndarray:
    """Varied synthetic scenes at working resolution (smooth skies, textured ground, flat walls, objects)."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.uniform(10, 95, (4, 4)).astype(np.float32), (256, 256), interpolation=cv2.INTER_CUBIC)
    texture = cv2.GaussianBlur(rng.normal(0, rng.uniform(0, 15), (256, 256)).astype(np.float32), (0, 0), 1.0)
    mask = cv2.resize(rng.uniform(0, 1, (6, 6)).astype(np.float32), (256, 256)) > 0.5
    return np.clip(base + texture * mask, 0, 100).astype(np.float32)


def test_onnx_without_uncertainty_gets_real_confidences_that_rank_like_the_builtin(onnx_pair):
    """The built-in model exported without its uncertainty output: the estimated uncertainty gives each image its
    own confidence, ranked like the built-in model's own (entropy) confidences."""
    torch_model, onnx_model, _ = onnx_pair
    assert onnx_model.unc_name is None and "estimated" in str(onnx_model.describe()["uncertainty"])
    scenes = np.stack([_photo_like(s) for s in range(16)])
    a, b = torch_model.predict_ab(scenes), onnx_model.predict_ab(scenes)
    assert b.uncertainty.shape == a.uncertainty.shape
    ca = [confidence.score(u).score for u in a.uncertainty]
    cb = [confidence.score(u).score for u in b.uncertainty]
    assert np.ptp(cb) > 0.05  # not one constant for every image
    rank_a, rank_b = np.argsort(np.argsort(ca)), np.argsort(np.argsort(cb))
    assert np.corrcoef(rank_a, rank_b)[0, 1] > 0.6


def test_engine_scores_an_onnx_model_without_uncertainty_per_image(collection, tmp_path, onnx_pair):
    from chromata.archive.local import LocalStorage
    from chromata.config import build_config
    from chromata.media.imageio import is_image_key
    from chromata.pipeline import ShardProcessor, make_shards

    cfg = build_config(source=str(collection), destination=str(tmp_path / "out"), model=f"onnx:{onnx_pair[2]}")
    proc = ShardProcessor(cfg)
    objs = [o for o in LocalStorage(collection).list() if is_image_key(o.key)]
    result = proc.process(next(make_shards(objs, 100)), "run-onnx")
    ok = [r for r in result.records if r.status == "ok"]
    assert len(ok) >= 2
    assert len({r.confidence for r in ok}) > 1  # not one constant for every image
    heats = [cv2.imread(str(tmp_path / "out" / r.heatmap_key)) for r in ok if r.heatmap_key]
    assert heats and all(h is not None for h in heats)
    assert max(float(h.std()) for h in heats) > 0  # a per-region estimate, not a flat map


@needs_data("photos")  # skipped without the photos, failed with CI set
def test_onnx_without_uncertainty_ranks_the_held_out_photos_like_the_builtin(onnx_pair):
    """On the model card's 35 validation photos (never used to fit the proxy), whole."""
    from chromata.colormath import color
    from chromata.models.evaluation import load_images, select_photos

    torch_model, onnx_model, _ = onnx_pair
    works = np.stack(
        [
            color.working_lightness(color.bgr_to_lab(color.to_unit_float(bgr))[..., 0], torch_model.input_size)
            for _, bgr in load_images(select_photos(PHOTOS, "val"))
        ]
    )
    ca = [confidence.score(u).score for u in torch_model.predict_ab(works).uncertainty]
    cb = [confidence.score(u).score for u in onnx_model.predict_ab(works).uncertainty]
    rank_a, rank_b = np.argsort(np.argsort(ca)), np.argsort(np.argsort(cb))
    assert len(ca) == 35 and np.corrcoef(rank_a, rank_b)[0, 1] > 0.8


def test_missing_photos_skip_here_and_fail_in_ci(tmp_path):
    """The held-out photos test above is marked ``needs_data("photos")``: without the photos it is skipped on a
    developer's machine and fails where CI is set (a check CI skipped proves nothing)."""
    empty = tmp_path / "photos"
    assert data_problem("photos", ci=False, root=empty) == ("skip", f"{DATA_WHAT} is not at {empty}")
    outcome, reason = data_problem("photos", ci=True, root=empty) or ("", "")
    assert outcome == "fail" and "CI is set" in reason
    marks = [m.args for m in test_onnx_without_uncertainty_ranks_the_held_out_photos_like_the_builtin.pytestmark]
    assert ("photos",) in marks


def test_the_harm_study_restores_torch_threads_and_the_restraint_when_a_step_fails():
    """``fit_mlp`` trains on one torch thread and the study turns the colorizer's restraint off to see its raw
    output: both come back however the step ends (a failure used to leave torch on one thread)."""
    import types

    import torch

    from chromata.studies import harm as harm_study

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        X, Y = np.zeros((10, 3), np.float32), np.zeros((10, 2), np.float32)
        with pytest.raises(IndexError):
            harm_study.fit_mlp(X, Y, np.ones(3, np.float32), (4,), epochs=1)  # weights for 3 of 10 samples
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)

    def broken(_: np.ndarray) -> None:
        raise MemoryError("out of memory in the network")

    model = types.SimpleNamespace(restrain=True, chroma_gamma=0.5, input_size=64, predict_ab=broken)
    photo = np.full((80, 80, 3), 128, np.uint8)
    with pytest.raises(MemoryError):
        harm_study.proxy_samples([("p", photo)], model)
    assert model.restrain is True
    views = {("p", 0): harm_study.photo_views("p", photo, 0, np.random.default_rng(0), 64)[0]}
    with pytest.raises(MemoryError):
        harm_study.real_outputs(views, model, [0.3])
    assert model.restrain is True and model.chroma_gamma == 0.5
    with pytest.raises(MemoryError), harm_study.unrestrained(model):
        assert model.restrain is False
        broken(photo)
    assert model.restrain is True
