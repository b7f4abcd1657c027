"""Decisions teach the routing: a refit from the curators' decisions, per collection when there are enough,
with a cross-validated report; a run that uses it records its SHA-256 and scores by it."""

import hashlib
import json
from dataclasses import replace

import cv2
import numpy as np
import pytest

from chromata.archive.local import LocalStorage
from chromata.judgement import confidence, routing_fit
from chromata.judgement.routing_fit import Example, RoutingFitError, apply, certainty_of, fit_routing
from chromata.record.decisions import write_decisions
from chromata.record.manifest import write_fragment
from tests.test_manifest import rec

U_RANGE = confidence.U_UNSURE - confidence.U_CERTAIN


def mean_u_for(certainty: float) -> float:
    return confidence.U_UNSURE - certainty * U_RANGE


def decided_destination(tmp_path, letters_doc_decision: str = "approved"):  # type: ignore[no-untyped-def]
    """60 decided scans of "prints" (12 text pages, all rejected; the others approved unless the model was
    very unsure) and 12 of "letters"; rows scored by the fixed penalty, half of them with a heatmap."""
    storage = LocalStorage(tmp_path / "out")
    rng = np.random.default_rng(7)
    records, decisions, truth = [], [], {}
    for i in range(72):
        collection = "prints" if i < 60 else "letters"
        doc = (i % 5 == 0) if i < 60 else (i % 4 == 0)
        c = float(rng.uniform(0.75, 0.95)) if doc else float(rng.uniform(0.05, 0.95))
        reasons = ["document_text"] if doc else []
        mean_u = mean_u_for(c)
        if mean_u > confidence.HIGH_UNCERTAINTY:
            reasons.append("high_chroma_uncertainty")
        score = round(c * confidence.INPUT_PENALTY ** (1 if doc else 0), 4)
        key = f"{collection}/{i:03d}.tif"
        hkey = f"_chromata/heatmaps/{key}.png"
        with_heatmap = i % 2 == 0
        if with_heatmap:
            u = np.clip(rng.normal(mean_u, 0.03, (40, 48)), 0, 1).astype(np.float32)
            u += np.float32(mean_u - u.mean())
            storage.write_atomic(hkey, confidence.heatmap_png(u, 48, 40))
        r = rec(key, confidence=score, confidence_reasons=reasons, output_sha256=f"{i:064x}",
                heatmap_key=hkey if with_heatmap else None, params_json='{"calibration_sha256":null}')  # fmt: skip
        records.append(r)
        truth[r.image_id] = c
        if doc:
            decision = "rejected" if collection == "prints" else letters_doc_decision
        else:
            decision = "needs_recolour" if c < 0.15 else "approved"
        decisions.append(
            dict(image_id=r.image_id, output_sha256=r.output_sha256, collection=collection, decision=decision,
                 curator="ana", decided_at=1_800_000_000.0 + i, in_manifest=True)
        )  # fmt: skip
    # a decided row whose score went through a calibration map and has no heatmap cannot be read back
    lost = rec("prints/lost.tif", output_sha256="ee" * 32, heatmap_key=None, params_json='{"calibration_sha256":"x"}')
    records.append(lost)
    decisions.append(dict(image_id=lost.image_id, output_sha256=lost.output_sha256, collection="prints",
                          decision="approved", curator="ana", decided_at=1.0))  # fmt: skip
    write_fragment(storage, "s1", records)
    write_decisions(storage, decisions)
    return storage, truth


def test_a_heatmap_gives_back_the_mean_uncertainty_the_score_was_made_from():
    u = np.random.default_rng(1).uniform(0.3, 0.9, (120, 90)).astype(np.float32)
    png = confidence.heatmap_png(u, 90, 120)
    assert routing_fit.mean_uncertainty_of_heatmap(png) == pytest.approx(float(u.mean()), abs=0.004)
    with pytest.raises(ValueError):
        routing_fit.mean_uncertainty_of_heatmap(b"not a png")


def test_decisions_that_reject_every_text_page_make_text_pages_rank_first_after_the_refit(tmp_path):
    storage, truth = decided_destination(tmp_path)
    examples, skipped = routing_fit.examples_from(storage)
    assert skipped == 1 and len(examples) == 72
    for e in examples:  # from the heatmap or, without one, from the fixed score: the certainty it was made from
        assert e.certainty == pytest.approx(truth[e.image_id], abs=0.02)
    prints = [e for e in examples if e.collection == "prints"]
    text = {e.image_id for e in prints if "document_text" in e.reasons}
    approved = {e.image_id for e in prints if e.good}

    def first_is_text(scores: dict[str, float]) -> bool:
        ranked = sorted(prints, key=lambda e: scores[e.image_id])
        positions = {e.image_id: i for i, e in enumerate(ranked)}
        return max(positions[t] for t in text) < min(positions[a] for a in approved)

    assert not first_is_text({e.image_id: e.current for e in prints})  # the fixed penalty: not first
    fit, key, skipped = routing_fit.from_decisions(storage)
    refit = {e.image_id: apply(fit, e.certainty, e.reasons, e.collection) for e in prints}
    assert first_is_text(refit)
    # per collection when there are enough: prints has its own fit, letters (12) uses the global one
    assert sorted(fit.collections) == ["prints"] and fit.collections["prints"].decisions == 60
    assert fit.overall.decisions == 72
    assert apply(fit, 0.9, ["document_text"], "letters") == apply(fit, 0.9, ["document_text"], None)
    assert apply(fit, 0.9, ["document_text"], "prints") < apply(fit, 0.9, [], "prints")
    # the report: cross-validated AUROC beside the current score's, queues, reasons that gained weight
    rep = fit.report
    assert rep["decisions"] == 72 and rep["rejected_or_recolour"] == 12 + sum(1 for e in examples if e.certainty < 0.15)
    assert 0.5 < rep["current_auroc"] < rep["cv_auroc"] <= 1.0
    assert rep["queue_at_budget"] == 11 and rep["bad_in_budget_queue_refit"] > rep["bad_in_budget_queue_current"]
    doc = next(r for r in rep["reasons"] if r["reason"] == "document_text")
    assert doc["change"] == "gained" and doc["learned_odds_factor"] < confidence.INPUT_PENALTY
    # saved under the destination with what it was fitted on; the file's SHA-256 is the fit's
    data = (tmp_path / "out" / key).read_bytes()
    assert key.startswith("_chromata/routing/fit-") and hashlib.sha256(data).hexdigest() == fit.sha256
    saved = json.loads(data)
    assert saved["decisions"] == 72 and saved["latest_decided_at"] == 1_800_000_000.0 + 71
    latest = routing_fit.load_latest(storage)
    assert latest is not None and latest.sha256 == fit.sha256
    assert routing_fit.for_run("latest", storage) == latest
    assert routing_fit.resolved("latest", storage) == fit.to_json()


def test_too_few_decisions_is_one_line_and_a_small_collection_uses_the_global_fit(tmp_path):
    few = [Example(f"i{i}", "c", 0.5, (), i % 2 == 0, 0.5, 0.0) for i in range(6)]
    with pytest.raises(RoutingFitError, match="too few decisions to refit the routing: 6") as err:
        fit_routing(few)
    assert "\n" not in str(err.value)
    with pytest.raises(RoutingFitError, match="both kinds"):
        fit_routing([replace(e, good=True) for e in few * 3])
    empty = LocalStorage(tmp_path)
    assert routing_fit.load_latest(empty) is None and routing_fit.resolved("latest", empty) is None
    some = [Example(f"i{i}", "c", (i % 10) / 10, (), i % 10 > 2, 0.5, 0.0) for i in range(20)]
    fit = fit_routing(some)
    assert fit.collections == {} and apply(fit, 0.8, (), "c") > apply(fit, 0.1, (), "c")
    with pytest.raises(RoutingFitError):
        routing_fit.RoutingFit.from_json('{"format": "something else"}')


@pytest.fixture(scope="module")
def model():
    from chromata.models import load_colorizer

    return load_colorizer("builtin")


def test_a_run_with_the_fit_scores_by_it_and_records_its_sha256(tmp_path, model):
    from chromata.config import build_config
    from chromata.pipeline import ShardProcessor, make_shards

    src = tmp_path / "src"
    src.mkdir()
    grad = np.tile(np.linspace(30, 220, 96, dtype=np.uint8), (80, 1))
    cv2.imwrite(str(src / "gradient.png"), grad)
    cv2.imwrite(str(src / "flat.png"), np.full((80, 96), 120, np.uint8))
    examples = [Example(f"i{i}", "src", (i % 10) / 10, ("low_contrast",) if i % 3 == 0 else (), i % 3 != 0, 0.5, 0.0)
                for i in range(40)]  # fmt: skip
    fit = fit_routing(examples)

    def run(**kw):  # type: ignore[no-untyped-def]
        cfg = build_config(source=str(src), destination=str(tmp_path / "out"), **kw)
        (shard,) = make_shards(sorted(LocalStorage(src).list(""), key=lambda o: o.key), 10)
        return {r.source_key: r for r in ShardProcessor(cfg, model=model).process(shard, "run-1").records}

    plain, refit = run(), run(routing_fit=fit.to_json())
    out = LocalStorage(tmp_path / "out")
    for key, row in refit.items():
        assert row.status == "ok", row.error
        assert json.loads(row.params_json)["routing_fit_sha256"] == fit.sha256
        params = json.loads(plain[key].params_json)
        assert "routing_fit_sha256" not in params
        if params["score_version"] == "1":  # the certainty the fit rescores is the one the plain score was made of
            certainty = certainty_of(routing_fit.mean_uncertainty_of_heatmap(out.read(row.heatmap_key or "")))
        else:  # version 2: the estimator's, under the input penalties
            factor = np.prod([routing_fit.fixed_factor(c) for c in set(plain[key].confidence_reasons)])
            certainty = (plain[key].confidence or 0.0) / factor
        expected = apply(fit, certainty, row.confidence_reasons, "src")
        assert row.confidence == pytest.approx(expected, abs=0.02)
    # the fit learned that low contrast is rejected: the flat scan falls far below its fixed score
    assert "low_contrast" in refit["flat.png"].confidence_reasons
    assert refit["flat.png"].confidence < refit["gradient.png"].confidence


def test_the_config_carries_a_fit_canonically_and_refuses_what_is_not_one(tmp_path):
    from chromata.config import build_config
    from chromata.errors import ConfigError

    fit = fit_routing([Example(f"i{i}", "c", (i % 10) / 10, (), i % 10 > 2, 0.5, 0.0) for i in range(20)])
    spaced = json.dumps(json.loads(fit.to_json()))  # the same fit, other whitespace
    cfg = build_config(source=str(tmp_path / "a"), destination=str(tmp_path / "b"), routing_fit=spaced)
    assert cfg.routing_fit == fit.to_json() and cfg.processing_params()["routing_fit_sha256"] == fit.sha256
    with pytest.raises(ConfigError, match="invalid routing_fit: not a routing fit") as err:
        build_config(source=str(tmp_path / "a"), destination=str(tmp_path / "b"), routing_fit='{"x": 1}')
    assert "\n" not in str(err.value)


def test_nightly_deployments_route_by_the_latest_fit(tmp_path):
    from chromata.flows.nightly import build_deployments

    path = tmp_path / "chromata.toml"
    path.write_text(f'[[collections]]\nname = "plates"\nsource = "{tmp_path}/in"\ndestination = "{tmp_path}/out"\n')
    (deployment,) = build_deployments(path)
    assert deployment.parameters["cfg"]["routing_fit"] == "latest"


def test_cli_writes_the_fit_and_prints_the_report_and_too_few_decisions_is_one_line(tmp_path):
    from tests.test_cli import _one_line_error, chromata

    decided_destination(tmp_path)
    proc = chromata("calibrate", "--from-decisions", "--destination", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert "AUROC (5-fold CV, out of sample)" in proc.stdout and "reason document_text" in proc.stdout
    assert "gained" in proc.stdout and "adopted" in proc.stdout and "beats the current score" in proc.stdout
    (written,) = (tmp_path / "out" / "_chromata" / "routing").glob("fit-*.json")
    latest = routing_fit.load_latest(LocalStorage(tmp_path / "out"))
    assert latest == routing_fit.RoutingFit.from_json(written.read_text())
    (tmp_path / "empty").mkdir()
    _one_line_error(
        chromata("calibrate", "--from-decisions", "--destination", str(tmp_path / "empty")), "too few decisions"
    )
    _one_line_error(chromata("calibrate", "--from-decisions"), "--from-decisions needs --destination DEST")


def test_a_trial_prints_the_report_and_adopts_nothing(tmp_path):
    from tests.test_cli import chromata

    decided_destination(tmp_path)
    proc = chromata("calibrate", "--from-decisions", "--destination", str(tmp_path / "out"), "--try")
    assert proc.returncode == 0, proc.stderr
    assert "AUROC (5-fold CV, out of sample)" in proc.stdout and "would be adopted" in proc.stdout
    assert "nothing written" in proc.stdout
    assert not (tmp_path / "out" / "_chromata" / "routing").exists()
    assert routing_fit.load_latest(LocalStorage(tmp_path / "out")) is None


def _examples_the_current_score_ranks_perfectly(n: int = 80) -> list[Example]:
    """Decisions that the score they were routed by sorts exactly (every bad one below every good one) while
    the certainty and reasons a refit sees say nothing about them."""
    rng = np.random.default_rng(11)
    out = []
    for i in range(n):
        good = i % 3 != 0
        current = float(rng.uniform(0.5, 1.0) if good else rng.uniform(0.0, 0.5))
        reasons = ("low_contrast",) if rng.random() < 0.3 else ()
        out.append(Example(f"p{i}", "c", float(rng.uniform(0, 1)), reasons, good, current, 1_800_000_000.0 + i))
    return out


def test_a_fit_that_does_not_beat_the_current_score_out_of_sample_is_not_adopted(tmp_path):
    storage = LocalStorage(tmp_path / "out")
    worse = fit_routing(_examples_the_current_score_ranks_perfectly())
    rep = worse.report
    assert rep["cv_auroc"] < rep["current_auroc"] == 1.0
    key = routing_fit.save(storage, worse)  # kept for the record, where ``latest`` does not look
    assert routing_fit.load_latest(storage) is None and routing_fit.resolved("latest", storage) is None
    assert key.startswith("_chromata/routing/not-adopted/fit-")
    assert not worse.adopted and "does not beat the current score out of sample" in rep["adoption"]["why"]
    # a fit that beats the current score is adopted; a worse one made later does not replace it
    better_storage, _ = decided_destination(tmp_path / "b")
    better, better_key, _ = routing_fit.from_decisions(better_storage)
    assert better.adopted and better_key is not None and "/not-adopted/" not in better_key
    later = replace(worse, created_at="2999-01-01T00:00:00Z")
    assert "/not-adopted/" in routing_fit.save(better_storage, later)
    assert routing_fit.load_latest(better_storage) == better
    # a fit from before the rule (no verdict in its report) is not adopted either
    legacy = replace(better, created_at="2998-01-01T00:00:00Z", report={k: v for k, v in better.report.items()
                                                                        if k != "adoption"})  # fmt: skip
    legacy_key = routing_fit.save(better_storage, legacy)
    assert "/not-adopted/" in legacy_key and not legacy.adopted
    storage.create_once("_chromata/routing/fit-29980101T000000Z-legacy.json", legacy.to_json().encode())
    assert routing_fit.load_latest(storage) is None


def test_a_fit_that_beats_the_current_score_on_too_few_decisions_is_not_adopted():
    few = [Example(f"i{i}", "c", (i % 10) / 10, (), i % 10 > 2, 0.5, 0.0) for i in range(20)]
    fit = fit_routing(few)
    assert fit.report["cv_auroc"] > fit.report["current_auroc"]
    assert not fit.adopted and "too few decisions to judge it: 20 weighted" in fit.report["adoption"]["why"]


def test_the_report_s_queue_figures_are_out_of_sample():
    """The refit's queue at the threshold and the bad decisions it catches in the budget's queue come from
    each decision scored by the fit of the folds it is not in — not from the fit of all of them."""
    rng = np.random.default_rng(3)
    codes = ["low_contrast", "heavy_noise", "tiny_image", "underexposed", "overexposed", "document_text"]
    examples = [
        Example(f"i{i}", "c", float(rng.uniform(0, 1)), tuple(c for c in codes if rng.random() < 0.3),
                bool(rng.random() < 0.6), float(rng.uniform(0, 1)), 0.0)
        for i in range(60)
    ]  # fmt: skip
    fit = fit_routing(examples)
    oof = {}
    for k in range(routing_fit.FOLDS):
        train = [e for e in examples if routing_fit._fold_of(e.image_id, routing_fit.FOLDS) != k]
        held = fit_routing(train)
        for e in examples:
            if routing_fit._fold_of(e.image_id, routing_fit.FOLDS) == k:
                oof[e.image_id] = held.overall.score(e.certainty, e.reasons)
    quota = fit.report["queue_at_budget"]
    first = sorted(examples, key=lambda e: (oof[e.image_id], e.image_id))[:quota]
    assert fit.report["bad_in_budget_queue_refit"] == sum(not e.good for e in first)
    assert fit.report["queue_at_threshold_refit"] == sum(v < fit.report["threshold"] for v in oof.values())
    # (the fit of all of them, scoring the decisions it was fitted on, catches more: what the report said before)
    in_sample = sorted(examples, key=lambda e: (apply(fit, e.certainty, e.reasons, "c"), e.image_id))[:quota]
    assert sum(not e.good for e in in_sample) > fit.report["bad_in_budget_queue_refit"]


def test_an_unseen_high_chroma_uncertainty_keeps_the_fixed_factor_of_1():
    """The fixed score never penalises high_chroma_uncertainty (the certainty holds it); a fit whose
    decisions never saw it must not either, and its report says factor 1 for it when it is seen."""
    examples = [Example(f"i{i}", "c", (i % 10) / 10, ("low_contrast",) if i % 4 == 0 else (), i % 10 > 2, 0.5, 0.0)
                for i in range(40)]  # fmt: skip
    fit = fit_routing(examples)
    assert "high_chroma_uncertainty" not in fit.overall.reasons
    assert apply(fit, 0.2, ["high_chroma_uncertainty"], "c") == apply(fit, 0.2, [], "c")
    assert apply(fit, 0.2, ["sepia_toned"], "c") == apply(fit, 0.2, [], "c")
    # an unseen input risk keeps the fixed penalty: its odds times INPUT_PENALTY
    p, q = fit.overall.score(0.2, []), fit.overall.score(0.2, ["heavy_noise"])
    assert (q / (1 - q)) / (p / (1 - p)) == pytest.approx(confidence.INPUT_PENALTY)
    assert routing_fit.fixed_factor("high_chroma_uncertainty") == 1.0
    assert routing_fit.fixed_factor("low_contrast") == confidence.INPUT_PENALTY


def test_bulk_approvals_weigh_less_than_reviewed_ones():
    """Text pages half approved, half rejected at the same certainty: when the approvals were made in bulk
    from the grid (cards never opened), they count for less and the fit penalises text pages more."""

    def examples(mode: str) -> list[Example]:
        out = []
        for i in range(80):
            doc = i % 4 == 0
            good = (i % 8 == 0) if doc else i % 10 > 1
            out.append(Example(f"i{i}", "c", 0.3 + (i % 7) / 10, ("document_text",) if doc else (), good, 0.5, 0.0,
                               mode if doc and good else "item"))  # fmt: skip
        return out

    reviewed, bulk = fit_routing(examples("item")), fit_routing(examples("bulk"))
    assert bulk.overall.reasons["document_text"] < reviewed.overall.reasons["document_text"]
    assert bulk.report["decisions_by_mode"] == {"item": 70, "bulk": 10, "unknown": 0}
    assert bulk.report["effective_decisions"] == 70 + 10 * routing_fit.BULK_WEIGHT
    same = fit_routing(examples("bulk"), bulk_weight=1.0)
    assert same.overall == reviewed.overall
    with pytest.raises(RoutingFitError, match="bulk weight"):
        fit_routing(examples("bulk"), bulk_weight=0.0)


def test_a_version_2_rows_certainty_is_read_from_its_score_not_from_the_uncertainty_heatmap(tmp_path):
    storage = LocalStorage(tmp_path / "out")
    sure = confidence.heatmap_png(np.full((40, 48), 0.3, np.float32), 48, 40)  # version 1 would read 1.0
    rows = []
    for i, version in enumerate(("1", "2")):
        hkey = f"_chromata/heatmaps/{i}.png"
        storage.write_atomic(hkey, sure)
        rows.append(rec(f"s/{i}.tif", confidence=round(0.7 * confidence.INPUT_PENALTY, 4), output_sha256=f"{i:064x}",
                        confidence_reasons=["low_contrast", "doubtful_colour_building"], heatmap_key=hkey,
                        params_json=json.dumps({"score_version": version})))  # fmt: skip
    write_fragment(storage, "s1", rows)
    write_decisions(storage, [dict(image_id=r.image_id, output_sha256=r.output_sha256, collection="s", curator="ana",
                                   decision="approved", decided_at=1.0 + i, in_manifest=True)
                              for i, r in enumerate(rows)])  # fmt: skip
    examples, skipped = routing_fit.examples_from(storage)
    by_id = {e.image_id: e.certainty for e in examples}
    assert skipped == 0 and by_id[rows[0].image_id] == pytest.approx(1.0, abs=0.01)
    # the region reason is in the score already: only the input risk's penalty is undone
    assert by_id[rows[1].image_id] == pytest.approx(0.7, abs=1e-3)
