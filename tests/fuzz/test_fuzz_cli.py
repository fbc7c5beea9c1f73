"""A few hostile inputs through the `lens` command (subprocesses are slow: all of them start
at once and are awaited together). Property: exit status 2, exactly one ``lens: error:``
line on stderr, no traceback, and no output folder left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD_PAIR = ["--clean", "the job of alice is", "--corrupt", "the job of bob is"]


def _cases(tmp: Path) -> dict[str, list[str]]:
    binary = tmp / "binary.jsonl"
    binary.write_bytes(b'{"format": "lens-texts", "version": 1}\n' + bytes(range(128, 256)))
    config = tmp / "bad_config.json"
    config.write_text(json.dumps({"noise": -1, "batch_size": 0}))
    return {
        "lens: 10^5-character prompt": [
            "lens",
            "organism",
            "the " * 25_000,
            "--out",
            str(tmp / "out_lens"),
        ],
        "data check: binary file": ["data", "check", str(binary)],
        "study: out-of-range config": [
            "study",
            "causal_tracing",
            "--config",
            str(config),
            "--out",
            str(tmp / "out_study"),
        ],
        "patch: identical prompts": [
            "patch",
            "organism",
            "--clean",
            "the job of alice is",
            "--corrupt",
            "the job of alice is",
            "--answer",
            "lawyer",
            "--wrong",
            "pilot",
            "--out",
            str(tmp / "out_same"),
        ],
        "patch: unknown answer": [
            "patch",
            "organism",
            *GOOD_PAIR,
            "--answer",
            "zzyzx",
            "--wrong",
            "pilot",
            "--out",
            str(tmp / "out_unknown"),
        ],
    }


KNOWN: dict[str, str] = {}  # CLI cases that still break the property (none today)
NAMES = [
    "lens: 10^5-character prompt",
    "data check: binary file",
    "study: out-of-range config",
    "patch: identical prompts",
    "patch: unknown answer",
]


_argv: dict[str, list[str]] = {}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("LENS_DEBUG", None)
    _argv.update(_cases(tmp))
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "lens", *argv],
            cwd=tmp,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, argv in _argv.items()
    }
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=600)
        out[name] = (proc.returncode, stdout, stderr)
    return tmp, out


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            n, marks=[pytest.mark.xfail(strict=True, reason=KNOWN[n])] if n in KNOWN else []
        )
        for n in NAMES
    ],
)
def test_cli_gives_one_error_line(runs, name):
    tmp, results = runs
    code, _, stderr = results[name]
    skip = ("lens: warning", "loading ")  # warnings and the one "loading SOURCE …" announcement
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith(skip)]
    assert "Traceback" not in stderr, stderr[-1500:]
    assert code == 2, (code, stderr[-500:])
    assert len(lines) == 1 and lines[0].startswith("lens: error: "), lines
    argv = _argv[name]
    if "--out" in argv:
        assert not Path(argv[argv.index("--out") + 1]).exists(), "an output folder was left"
    if name.startswith("data check"):
        assert "binary.jsonl:2:" in lines[0] and "not UTF-8" in lines[0]
