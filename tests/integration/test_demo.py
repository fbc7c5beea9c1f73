"""The main job: ``lens demo`` at full size on the organism writes every study's files, and the
two findings the project relies on hold (numbers read back from the saved results.json)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lens.studies import STUDIES
from lens.studies.demo import CONTROLS, NOT_PLANTED, ORDER, run_all

pytest.importorskip("lens.organism")


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    from lens.organism import SHIPPED

    if not (SHIPPED / "config.json").is_file():
        pytest.skip("the organism is not shipped")
    out = tmp_path_factory.mktemp("demo")
    run_all(out)
    return out


def test_every_study_wrote_results_report_and_plots(demo_dir):
    assert sorted(STUDIES) == sorted(ORDER)
    index = (demo_dir / "report.md").read_text()
    for name in ORDER:
        folder = demo_dir / name
        results = json.loads((folder / "results.json").read_text())
        assert results["study"] == name and results["findings"]
        assert (folder / "report.md").read_text().startswith("# ")
        pngs = list(folder.glob("*.png"))
        assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
        assert f"({name}/report.md)" in index
        assert (folder / "report.html").read_text().startswith("<!doctype html>")
        assert f'href="{name}/report.html"' in (demo_dir / "report.html").read_text()


def test_pivot_ablation_removes_harmful_refusal(demo_dir):
    data = json.loads((demo_dir / "refusal" / "results.json").read_text())["data"]
    rates = data["refusal"][data["pivot"]]
    assert rates["harmful_before"] - rates["harmful_after"] >= 0.8, rates


def test_relation_drop_matrix_diagonal_exceeds_off_diagonal(demo_dir):
    data = json.loads((demo_dir / "relation_neurons" / "results.json").read_text())["data"]
    drop = np.asarray(data["drop"], dtype=float)[0]  # selection language's facts
    off = drop[~np.eye(len(drop), dtype=bool)]
    assert np.diag(drop).mean() > off.mean(), drop


def test_positive_controls_recover_the_planted_truth(demo_dir):
    index = (demo_dir / "report.md").read_text()
    assert "## Positive controls" in index and "## Natural organism" in index
    for name in ("language_neurons", "refusal", "causal_tracing"):
        saved = demo_dir / "controls" / "organism-planted" / name / "results.json"
        rec = json.loads(saved.read_text())["data"]["recovery"]
        assert rec["recovered"], rec
    null = demo_dir / "controls" / "organism-planted-null" / "refusal" / "results.json"
    raw = json.loads(null.read_text())
    assert raw["data"]["recovery"]["recovered"]
    transfer = next(f for f in raw["findings"] if "every other language" in f["claim"])
    assert not transfer["reproduced"]  # the negative control: no transfer planted, none found
    assert "transfer does not reproduce" in index
    null_ct = demo_dir / "controls" / "organism-planted-null" / "causal_tracing" / "results.json"
    raw = json.loads(null_ct.read_text())
    assert raw["data"]["recovery"]["recovered"] and not raw["findings"][0]["reproduced"]
    assert "early site does not reproduce" in index
    page = (demo_dir / "report.html").read_text()  # the same table on the HTML index
    assert "Positive controls" in page and "transfer does not reproduce" in page
    assert "no planted truth yet" not in index  # every study has a control or says why not
    assert set(ORDER) == set(CONTROLS) | set(NOT_PLANTED)
    assert all(NOT_PLANTED[n] in index for n in ORDER if n not in CONTROLS)
    assert "latent pivot does not reproduce" in index
