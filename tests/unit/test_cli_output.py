"""Result folders (lens.output): --out checked for real, written all at once, only lens's own
entries replaced, interrupted runs leave old results intact or a folder marked INCOMPLETE."""

import json
from pathlib import Path

import pytest

from lens.output import INCOMPLETE, MARKER, OutputFolder, check_out_dir, is_complete
from lens.studies.base import Finding, StudyResult

PROC = Path("/proc")


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_check_out_dir_creates_nothing_it_leaves_behind(tmp_path):
    target = tmp_path / "a" / "b" / "results"
    assert check_out_dir(target) == target
    assert _listing(tmp_path) == []  # the probe folders were removed again


@pytest.mark.skipif(not PROC.is_dir(), reason="needs Linux /proc")
def test_check_out_dir_refuses_a_path_no_one_can_write_even_as_root():
    with pytest.raises(ValueError, match=r"--out /proc/x: cannot write there"):
        check_out_dir("/proc/x")


def test_check_out_dir_names_a_file_in_the_way(tmp_path):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        check_out_dir(tmp_path / "taken" / "sub")


def test_new_folder_appears_only_when_complete(tmp_path):
    out = tmp_path / "new" / "run"
    with OutputFolder(out) as folder:
        (folder.path / "a.txt").write_text("1")
        assert not out.exists()  # nothing at --out while the command works
    assert _listing(out) == ["a.txt", MARKER] and is_complete(out)
    record = json.loads((out / MARKER).read_text())
    assert record["entries"] == ["a.txt"] and record["complete"] is True
    assert _listing(tmp_path / "new") == ["run"]  # no temporary folder left


def test_error_leaves_old_results_untouched_and_no_temporary_folder(tmp_path):
    out = tmp_path / "run"
    with OutputFolder(out) as folder:
        (folder.path / "report.md").write_text("old")
    with pytest.raises(RuntimeError), OutputFolder(out) as folder:
        (folder.path / "report.md").write_text("new, half written")
        raise RuntimeError("the study failed")
    assert (out / "report.md").read_text() == "old" and is_complete(out)
    assert _listing(tmp_path) == ["run"]


def test_error_removes_the_parent_folders_it_created(tmp_path):
    with pytest.raises(KeyboardInterrupt), OutputFolder(tmp_path / "x" / "y" / "out"):
        raise KeyboardInterrupt
    assert _listing(tmp_path) == []


def test_rerun_replaces_lens_entries_keeps_user_files(tmp_path):
    out = tmp_path / "run"
    with OutputFolder(out) as folder:
        (folder.path / "stale.png").write_text("old plot")
        (folder.path / "sub").mkdir()
        (folder.path / "sub" / "x.json").write_text("old")
    (out / "notes.txt").write_text("mine")
    with OutputFolder(out) as folder:
        (folder.path / "sub").mkdir()
        (folder.path / "sub" / "x.json").write_text("new")
    assert _listing(out) == [MARKER, "notes.txt", "sub"]  # stale.png was lens's: gone
    assert (out / "sub" / "x.json").read_text() == "new"
    assert (out / "notes.txt").read_text() == "mine"


def test_interrupted_move_is_marked_and_refused_by_load(tmp_path):
    result = StudyResult(config={}, model="m", data={}, findings=[Finding("c", True, "e")])
    out = result.save(tmp_path / "study")
    assert StudyResult.load(out).findings == result.findings and is_complete(out)
    (out / INCOMPLETE).write_text("interrupted")  # what a run killed mid-move leaves
    assert not is_complete(out)
    with pytest.raises(ValueError, match="INCOMPLETE"):
        StudyResult.load(out)


def test_study_save_writes_results_report_and_marker(tmp_path):
    result = StudyResult(config={"seed": 1}, model="m", data={"x": 1.5}, findings=[])
    out = result.save(tmp_path / "s")
    assert _listing(out) == [MARKER, "report.html", "report.md", "results.json"]
    assert json.loads((out / "results.json").read_text())["data"] == {"x": 1.5}
    bare = result.save(tmp_path / "t", html=False)
    assert _listing(bare) == [MARKER, "report.md", "results.json"]


def test_out_whose_parent_is_not_writable_works_inside_out(tmp_path, monkeypatch):
    """``--out .`` in a folder whose parent belongs to someone else: the temporary folder goes
    inside ``out`` (simulated: root may write everywhere)."""
    import tempfile

    import lens.output

    out = tmp_path / "mine"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    real = tempfile.mkdtemp

    def parent_refused(prefix: str, dir: Path) -> str:  # noqa: A002 - tempfile's own name
        if Path(dir) == tmp_path:
            raise PermissionError(13, "Permission denied")
        return real(prefix=prefix, dir=dir)

    monkeypatch.setattr(lens.output.tempfile, "mkdtemp", parent_refused)
    with OutputFolder(out) as folder:
        assert folder.path.parent == out
        (folder.path / "r.json").write_text("{}")
    assert _listing(out) == ["keep.txt", MARKER, "r.json"]


def test_interrupted_organism_training_leaves_no_half_model(tmp_path, monkeypatch):
    """``lens organism train`` writes into a temporary folder: a run stopped after its first
    files leaves nothing at ``--out`` that could be loaded as a model."""
    import lens.organism.train
    from lens.cli import main

    def stopped(cfg, out, *, progress=False):
        (Path(out) / "world.json").write_text("{}")
        (Path(out) / "train_log.jsonl").write_text("{}\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(lens.organism.train, "train", stopped)
    out = tmp_path / "org"
    assert main(["organism", "train", "--out", str(out), "--tiny", "--quiet"]) == 130
    assert _listing(tmp_path) == []


def test_interrupted_bench_keeps_the_previous_results(tmp_path, monkeypatch):
    import benchmarks.__main__ as bench

    out = tmp_path / "bench"
    out.mkdir()
    (out / "results.json").write_text("old")

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bench, "run_suites", stopped)
    with pytest.raises(KeyboardInterrupt):
        bench.main(["hooks", "--quick", "--out", str(out)])
    assert _listing(out) == ["results.json"] and (out / "results.json").read_text() == "old"
    assert _listing(tmp_path) == ["bench"]
