"""Regression tests for the CLI cases of issues #24 and #25: first output before the heavy
imports, --out checked for real, honest labels, named metrics, quiet broken pipes, help text
for every option, dataset errors that name file, line and column."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import lens.cli.lens_cmd as lens_cmd
from lens.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
PROC_X = "/proc/x"  # exists on no Linux machine, and cannot be created, even by root


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=120
    )


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a command starts loading a model."""

    def boom(*_a, **_k):
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr(lens_cmd, "load_source", boom)
    import lens.organism

    monkeypatch.setattr(lens.organism, "load_organism", boom)


def test_nonexistent_model_is_refused_before_torch_is_imported():
    done = _python(
        "import sys\nfrom lens.cli import main\n"
        "code = main(['info', '/nonexistent'])\n"
        "print(code, 'torch' in sys.modules, 'transformer_lens' in sys.modules)\n"
    )
    assert done.stdout.split() == ["2", "False", "False"], done.stderr
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lens: error: '/nonexistent' does not exist")


def test_loading_is_announced_before_torch_is_imported():
    """The first line reaches stderr before any module of torch is even looked for."""
    done = _python(
        "import io, sys\n"
        "seen = []\n"
        "class Spy:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' and not seen:\n"
        "            seen.append(sys.stderr.getvalue())\n"
        "sys.meta_path.insert(0, Spy())\n"
        "sys.stderr = io.StringIO()\n"
        "from lens.cli import main\n"
        "main(['info', 'random:llama'])\n"
        "sys.__stdout__.write(repr(seen[0]))\n"
    )
    assert done.returncode == 0, done.stderr
    assert "loading random:llama (a random llama model)" in done.stdout


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux /proc")
@pytest.mark.parametrize(
    "command",
    [
        ["study", "refusal"],
        ["tuned-lens", "eval", "organism", "organism"],
        ["bench", "hooks", "--quick"],
        ["patch", "organism", "--clean", "a", "--corrupt", "b", "--answer", "c"],
        ["lens", "organism", "the job of alice is"],
    ],
)
def test_unwritable_out_fails_before_any_work(command, no_work, capsys):
    assert main([*command, "--out", PROC_X]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.startswith("lens:")]
    assert err == [f"lens: error: --out {PROC_X}: cannot write there "
                   "(No such file or directory): choose another folder"]  # fmt: skip


def test_demo_with_missing_model_leaves_no_folder(tmp_path, capsys):
    out = tmp_path / "dm"
    assert main(["demo", "--model", str(tmp_path / "nonexistent"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_demo_error_after_start_keeps_old_results(tmp_path):
    from lens.studies.demo import run_all

    out = tmp_path / "results"
    out.mkdir()
    (out / "report.md").write_text("old index")
    with pytest.raises(ValueError):
        run_all(out, model_source=str(tmp_path / "missing"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]
    assert (out / "report.md").read_text() == "old index"


def test_tuned_lens_is_named_in_table_json_and_plot_title(tmp_path, capsys, monkeypatch):
    import lens.plots.logit_lens as plots

    titles = []
    real_save = plots.save_figure

    def keep_title(fig, path):
        titles.append(fig.axes[0].get_title())
        return real_save(fig, path)

    monkeypatch.setattr(plots, "save_figure", keep_title)
    args = ["lens", "organism", "the job of alice is", "--target", "lawyer", "--top-k", "2"]
    for tuned, method in ((["--tuned", "organism"], "tuned lens"), ([], "logit lens")):
        out = tmp_path / method.replace(" ", "_")
        assert main([*args, *tuned, "--out", str(out)]) == 0
        text = capsys.readouterr().out
        assert f"{method}, resid_post:" in text
        assert json.loads((out / "result.json").read_text())["method"] == method
        assert titles[-2].startswith(f"{method}: top-1 token")
        assert titles[-1].startswith(f"{method}: probability mass")
    assert "tuned lens" not in text  # the plain logit lens does not claim to be tuned


def test_patch_names_its_metric_with_the_right_values(tmp_path, capsys):
    import lens
    from lens.tokens import batch

    out = tmp_path / "p"
    args = ["--clean", "abc", "--corrupt", "abd", "--answer", "id:5", "--wrong", "id:6"]
    code = main(["patch", "random:llama", *args, "--sites", "resid_pre", "--out", str(out)])
    assert code == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith("metric: logit difference logit('id:5') - logit('id:6')")
    model = lens_cmd.load_source("random:llama")  # seeded: the same weights as the CLI's
    with torch.no_grad():
        values = []
        for prompt in ("abc", "abd"):
            b = batch(model, [prompt])
            last = model(b.tokens, attention_mask=b.attention_mask)[0, -1]
            values.append(float(last[5] - last[6]))
    assert f"clean {values[0]:.4f}, corrupt {values[1]:.4f}" in line
    assert abs(values[0] - values[1]) > 1e-3  # the pair differs, so the check can fail
    assert (out / "resid_pre.png").is_file() and (out / "lens-complete.json").is_file()
    del lens


def test_strongest_reports_a_band_of_near_equal_cells():
    from lens.cli.patch import strongest

    values = torch.tensor([[0.0, 0.10], [0.0, 0.97], [0.0, 1.00], [0.0, 0.40]])
    text = strongest(values, ("layer", "position"), ["a", "b"])
    assert text.startswith("2 cells within 5 % of the strongest (+1.000)")
    assert "layer 1 at 'b'" in text and "layer 2 at 'b'" in text and "layer 3" not in text
    alone = strongest(values[[0, 2, 3]], ("layer", "position"), ["a", "b"])
    assert alone == "strongest cell layer 1, position 1 ('b') = +1.000"


def test_patch_heatmap_has_labelled_axes_colour_bar_and_a_title_inside_the_figure():
    from lens.patching.result import PatchingResult
    from lens.plots.patching import plot_patching

    raw = {"resid_pre": torch.tensor([[[0.0, 1.0, 0.5], [0.2, 0.9, 0.1]]])}
    labels = ["0:<s>", "1:the job of", "2:alice/bob"]
    res = PatchingResult(raw, torch.tensor([1.0]), torch.tensor([0.0]), [0, 1], labels)
    fig = plot_patching(res, "resid_pre")
    ax, bar = fig.axes
    assert ax.get_xlabel() and ax.get_ylabel() == "layer"
    assert bar.get_ylabel().startswith("normalised metric")
    fig.canvas.draw()
    box, page = ax.title.get_window_extent(), fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1  # not clipped on either side


def test_causal_tracing_heatmaps_have_axis_titles_and_colour_bar_labels(tmp_path, monkeypatch):
    import lens.studies.causal_tracing.plots as ct_plots

    figures = []
    monkeypatch.setattr(ct_plots, "save_figure", lambda fig, path: figures.append(fig) or path)
    grid = [[0.1] * 6, [0.3] * 6]
    ct_plots.plot_trace({"resid": grid, "mlp": grid, "attn": grid}, "en", tmp_path / "t.png")
    axes = figures[0].axes
    heatmaps, bars = axes[:3], axes[3:]
    assert all(ax.get_xlabel() == "token role" and ax.get_ylabel() == "layer" for ax in heatmaps)
    assert len(bars) == 3 and all("indirect effect" in b.get_ylabel() for b in bars)


def test_broken_pipe_exits_quietly_with_0():
    proc = subprocess.Popen(
        [sys.executable, "-m", "lens", "organism", "examples", "-n", "200"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
        cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()  # like `| head -1`
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and err == ""


def _options():
    parser = build_parser()
    stack = [("lens", parser)]
    while stack:
        name, p = stack.pop()
        for action in p._actions:
            if action.choices and isinstance(action.choices, dict):  # subcommands
                stack += [(f"{name} {k}", sub) for k, sub in action.choices.items()]
            elif action.option_strings and action.dest != "help":
                yield name, action


def test_every_option_has_help_and_states_its_default():
    missing = []
    for command, action in _options():
        text = action.help or ""
        has_default = action.default not in (None, False) and not action.required
        if not text or (has_default and "default" not in text):
            missing.append(f"{command} {action.option_strings[0]}")
    assert missing == []


def test_binary_dataset_file_names_file_and_line(tmp_path, capsys):
    path = tmp_path / "blob.jsonl"
    path.write_bytes(b'{"format": "lens-texts", "version": 1}\n\x00\xff\xfe binary')
    assert main(["data", "check", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"lens: error: {path}:2: not UTF-8 text (byte 0xff at column 2)")


def test_bad_json_column_is_counted_on_the_whole_line(tmp_path, capsys):
    """A stray carriage return inside a line used to cut it in two: the error then named the
    next line and column 1."""
    head = '{"format": "lens-texts", "version": 1}\n'
    record = '{"language": "en", "text": "has a carriage return here:"}'
    path = tmp_path / "cr.jsonl"
    path.write_bytes((head + record + '\r, "x": 1}\n').encode())
    assert main(["data", "check", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"lens: error: {path}:2: bad JSON (Extra data at column {len(record) + 2})"
