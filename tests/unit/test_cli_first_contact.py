"""The CLI's first-contact contract: --out checked before any work, one-line errors with exit
2, lazy imports, and the ``lens lens`` / ``lens info --hooks`` / bench table formats."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import lens.cli.lens_cmd as lens_cmd
from lens.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    return subprocess.run(
        [sys.executable, "-m", "lens", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "taken"
    path.write_text("x")
    return path


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a command starts loading a model."""

    def boom(*_a, **_k):
        raise AssertionError("work started before --out was checked")

    monkeypatch.setattr(lens_cmd, "load_source", boom)
    import lens.organism

    monkeypatch.setattr(lens.organism, "load_organism", boom)


@pytest.mark.parametrize("where", ["file", "under_file"])
@pytest.mark.parametrize(
    "command",
    [
        ["study", "refusal"],
        ["lens", "organism", "the job of alice is"],
        ["demo", "--quick"],
        ["bench", "hooks", "--quick"],
        ["organism", "train", "--tiny", "--steps", "1"],
    ],
)
def test_bad_out_fails_before_any_work(command, where, a_file, no_work, capsys):
    out = a_file if where == "file" else a_file / "sub"
    assert main([*command, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lens: error: --out"), err
    assert "is a file" in err[0]


def test_bad_out_in_a_fresh_process_is_fast_and_has_no_traceback(a_file):
    start = time.perf_counter()
    done = _run("study", "refusal", "--out", str(a_file / "sub"))
    elapsed = time.perf_counter() - start
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[0].startswith("lens: error: --out")
    assert elapsed < 10  # the budget for "before any work" (a study alone takes >10 s)


def test_malformed_config_json_names_the_file(tmp_path, no_work, capsys):
    path = tmp_path / "cfg.json"
    path.write_text('{"seed": 0,')
    assert main(["study", "refusal", "--config", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lens: error: config ") and str(path) in err and "JSON" in err


def test_unknown_config_key_is_named(tmp_path, no_work, capsys):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"kl_treshold": 0.1}))
    assert main(["study", "refusal", "--config", str(path), "--out", str(tmp_path / "o")]) == 2
    err = [x for x in capsys.readouterr().err.strip().splitlines() if x.startswith("lens:")]
    assert len(err) == 1 and "kl_treshold" in err[0] and err[0].count(str(path)) == 1


def test_unknown_study_lists_the_valid_ones(capsys):
    assert main(["study", "refusl"]) == 2
    err = capsys.readouterr().err
    assert "refusl" in err and "refusal" in err and "concept_space" in err


def test_study_help_names_every_study(capsys):
    from lens.studies import STUDIES

    with pytest.raises(SystemExit):
        main(["study", "--help"])
    text = capsys.readouterr().out
    assert all(name in text for name in STUDIES)


@pytest.mark.parametrize("error", [TypeError, KeyError, FileNotFoundError, ValueError])
def test_user_errors_inside_a_command_are_one_line(error, monkeypatch, capsys):
    def fail(_source):
        raise error("bad value for x")

    monkeypatch.setattr(lens_cmd, "load_source", fail)
    assert main(["info", "organism"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("loading organism") and err[1:] == ["lens: error: bad value for x"]


def test_import_lens_is_lazy_and_every_public_name_resolves():
    code = (
        "import sys, lens\n"
        "assert 'torch' not in sys.modules and 'transformer_lens' not in sys.modules\n"
        "import lens.collect, lens.logit_lens\n"
        "assert callable(lens.collect) and callable(lens.logit_lens), 'functions, not modules'\n"
        "for name in lens.__all__: getattr(lens, name)\n"
        "import lens.tokens, lens.finders, lens.stats, lens.organism, lens.generate, lens.models\n"
        "assert lens.tokens.batch and lens.stats.MomentStats and lens.models.load_model\n"
        "print('ok')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.stdout.strip() == "ok", done.stderr


def test_help_does_not_import_torch():
    code = (
        "import sys\nfrom lens.cli import main\n"
        "for words in ([], ['study'], ['organism', 'eval'], ['bench']):\n"
        "    try:\n        main([*words, '--help'])\n    except SystemExit:\n        pass\n"
        "print('torch' in sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.stdout.strip().splitlines()[-1] == "False", done.stderr


def test_lens_table_labels_ranks_and_shortens_tokens(capsys):
    assert main(["lens", "random:gpt2", "hello", "--top-k", "10"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("random:gpt2: 3 layers")
    assert "rank 0" in out and "1:" in out and "9:" in out
    assert lens_cmd.short_token("a" * 40) == "'" + "a" * 10 + "\u2026"


def test_lens_rejects_empty_and_too_long_prompts(no_work, capsys, monkeypatch):
    assert main(["lens", "organism", "  "]) == 2
    assert "empty" in capsys.readouterr().err
    monkeypatch.undo()
    assert main(["lens", "random:gpt2", "x" * 200]) == 2  # n_ctx of the tiny model is 128
    err = capsys.readouterr().err
    assert "at most 128" in err and "random:gpt2" in err


def test_info_hooks_lists_hook_names(capsys):
    assert main(["info", "random:llama", "--hooks"]) == 0
    out = capsys.readouterr().out
    assert "blocks.{l}.hook_resid_post = blocks.{l}.hook_out" in out
    assert "blocks.{l}.mlp.hook_post" in out and "blocks.0." not in out


def test_bench_marks_rows_that_miss_their_target():
    from benchmarks.__main__ import suite_section
    from benchmarks.harness import target_missed

    assert target_missed({"target": "<= 1.05", "ratio_median": 1.2}) is True
    assert target_missed({"target": "<= 1.15x", "ratio_median": 1.1}) is False
    assert target_missed({"target": ">= 0.9x", "ratio_median": 0.5}) is True
    assert target_missed({"target": "<= 0.5 s", "seconds_median": 0.7}) is True
    assert target_missed({"target": "(reference, ~13x)", "ratio_median": 9}) is None
    rows = [
        {"case": "a", "ratio_median": 1.3, "target": "<= 1.05"},
        {"case": "b", "ratio_median": 1.0, "target": "<= 1.05"},
    ]
    text = "\n".join(suite_section("hooks", rows))
    assert text.count("MISS") == 1 and "1 row(s) miss their target" in text
