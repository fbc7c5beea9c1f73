"""What every study shares: a JSON-loadable config, and a Result that saves results.json,
report.md and PNG plots, and loads back.

A study module defines ``Config`` (a dataclass subclassing :class:`StudyConfig`), ``Result``
(subclassing :class:`StudyResult`, implementing ``report_body()`` and ``plots(dir)``) and
``run(model, config) -> Result``, then registers itself with :func:`register_study`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

import numpy as np

from lens.config_file import read_json_object
from lens.studies.config_types import (
    Range,
    StudyConfigError,
    check_fields,
    check_layers,
    owner,
)

__all__ = [
    "STUDIES",
    "Finding",
    "StudyConfig",
    "StudyConfigError",
    "StudyData",
    "StudyResult",
    "fmt_number",
    "jsonable",
    "off_diagonal",
    "register_study",
]

STUDIES: dict[str, Any] = {}  # name -> module with Config, Result, run


def register_study(name: str, module: Any) -> None:
    STUDIES[name] = module


def jsonable(value: Any) -> Any:
    """numpy/torch scalars and arrays -> plain Python; NaN/inf -> None (strict JSON)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, StudyData):
        return value.to_dict()
    return value


def fmt_number(x: Any, digits: int = 2) -> str:
    """A number for a report: fixed digits, "n/a" for None or NaN."""
    return "n/a" if x is None or x != x else f"{x:.{digits}f}"


def off_diagonal(matrix: Any) -> np.ndarray:
    """The off-diagonal entries of a square matrix (nested lists or array), flattened."""
    m = np.asarray(matrix, dtype=float)
    return m[~np.eye(m.shape[0], dtype=bool)]


C = TypeVar("C", bound="StudyConfig")


@dataclass
class StudyConfig:
    """Base for study configs: defaults that work on the organism; loads from JSON.

    Every value is checked against its field's declared type and range when the config is
    built (directly, from a dict or from a JSON file): a wrong one raises
    :class:`StudyConfigError` (a ``ValueError``) naming the key, the value and what is allowed
    (:mod:`lens.studies.config_types`). Fields that name layers are checked against the model
    by :meth:`for_model` when the study runs.

    Attributes:
        seed: seed of every random choice the study makes.
        data: the study's dataset: a JSONL file (``lens.data`` formats) or a built-in dataset
            name (``lens.data.builtin_names()``). None: the study's default, the organism's
            own data on the organism and lens's built-in real data on any other model
            (:func:`lens.studies.datasets.study_dataset`).
        progress: tqdm bars while it runs (off by default, like every lens API; ``lens study``
            turns it on unless the config file sets it).

    A study that reads a dataset names its kind in the class attribute ``data_kind``
    (``"facts"``, ``"translations"``, ``"requests"`` or ``"texts"``; None: no dataset).
    """

    data_kind: ClassVar[str | None] = None
    seed: Annotated[int, Range(0, 2**32 - 1)] = 0
    data: str | None = None
    progress: bool = False

    def __post_init__(self) -> None:
        check_fields(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> StudyConfig:
        """Build from a dict; unknown keys and wrongly typed values are errors.

        Example:
            >>> StudyConfig.from_dict({"seed": "zero"})
            Traceback (most recent call last):
            ...
            lens.studies.config_types.StudyConfigError: StudyConfig: config key 'seed' must be int, got 'zero' (str)
        """  # noqa: E501
        if not isinstance(values, dict):
            raise StudyConfigError(
                f"{owner(cls)}: a config is built from a dict (JSON object), got "
                f"{type(values).__name__}"
            )
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted((k for k in values if k not in valid), key=repr)
        if unknown:
            raise StudyConfigError(
                f"{owner(cls)}: unknown config keys {unknown}; valid keys: {sorted(valid)}"
            )
        return cls(**values)

    @classmethod
    def from_json(cls, path: str | Path) -> StudyConfig:
        """Build from a JSON file holding an object of overrides; errors name the file."""
        try:
            values = read_json_object(path)
        except ValueError as err:
            raise StudyConfigError(str(err)) from None
        try:
            return cls.from_dict(values)
        except StudyConfigError as err:
            raise StudyConfigError(f"{path}: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        return jsonable(dataclasses.asdict(self))

    def for_model(self: C, model: Any) -> C:
        """This config checked again (it may have been changed since it was built) and its
        layer fields checked against ``model``: a copy with negative layers counted from the end.

        Example:
            >>> import lens
            >>> from lens.studies.refusal import Config
            >>> model = lens.load_model(lens.tiny_config("llama"))
            >>> Config(layers=[0, -1]).for_model(model).layers
            [0, 2]
            >>> Config(layers=[7]).for_model(model)
            Traceback (most recent call last):
            ...
            lens.studies.config_types.StudyConfigError: refusal config: config key 'layers' names layer 7, but this model has layers 0..2 (or -3..-1 from the end)
        """  # noqa: E501
        check_fields(self)
        return dataclasses.replace(self, **check_layers(self, int(model.cfg.n_layers)))


_D = TypeVar("_D", bound="StudyData")


@dataclass
class StudyData:
    """Base of a study's typed numbers (``StudyResult.data``; results.json's ``"data"``).

    Subclasses declare their top-level entries as dataclass fields, nested parts as
    TypedDicts (JSON-safe dicts and lists, so results.json round-trips as it is); read them
    as attributes (``data.final``), never as ``data["final"]``.
    """

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe dict saved as results.json's ``"data"``."""
        return {f.name: jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[_D], raw: dict[str, Any]) -> _D:
        """Rebuild from results.json's ``"data"`` (keys this class does not know are dropped)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})


@dataclass
class Finding:
    """One qualitative claim of the paper, checked on this model with its numbers."""

    claim: str
    reproduced: bool
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class StudyResult:
    """Numbers of one study run; subclasses add plots and prose.

    ``data`` is the study's :class:`StudyData` subclass (named by the class attribute
    ``Data``), or a JSON-safe dict for a study without one.
    """

    study: ClassVar[str] = "study"
    title: ClassVar[str] = "Study"
    Data: ClassVar[type[StudyData] | None] = None
    config: dict[str, Any]
    model: str
    data: Any
    findings: list[Finding] = field(default_factory=list)

    def report_body(self) -> str:
        """Plain-words explanation of the numbers (markdown)."""
        return ""

    def plots(self, out: Path) -> list[Path]:
        """Write PNG plots into ``out``; return their paths."""
        return []

    def html_views(self) -> list[Any]:
        """Interactive views of report.html beyond the generic ones (:mod:`lens.html`); a
        result loaded from results.json may have none."""
        return []

    def headline(self) -> str:
        """One line for the index report."""
        done = sum(f.reproduced for f in self.findings)
        return f"{done}/{len(self.findings)} findings reproduce"

    def recovery(self) -> str:
        """ "recovered planted X (...)" / "missed planted X (...)" when the model had planted
        truth for this study (``data.recovery``, :mod:`lens.studies.recovery`), else ""."""
        from lens.studies.recovery import recovery_line

        return recovery_line(getattr(self.data, "recovery", None))

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "model": self.model,
            "config": self.config,
            "data": jsonable(self.data),
            "findings": [f.to_dict() for f in self.findings],
        }

    def write(self, out: str | Path, *, html: bool = True) -> list[Path]:
        """Write results.json, the PNG plots, report.md and (unless ``html=False``) the
        self-contained report.html into the folder ``out`` (created) as they come; return the
        files written. :meth:`save` is the atomic form."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(self.to_dict(), indent=1))
        plots = self.plots(out)
        (out / "report.md").write_text(self.report(plots))
        written = [out / "results.json", *plots, out / "report.md"]
        if html:
            from lens.html.study import write_study_html

            written.append(write_study_html(self, folder=out, plots=plots))
        return written

    def save(self, out: str | Path, *, html: bool = True) -> Path:
        """Write results.json, the PNG plots, report.md and report.html into ``out`` all at
        once (through :class:`lens.output.OutputFolder`: a temporary folder beside it, moved in
        when complete, so an error leaves older results untouched); return ``out``."""
        from lens.output import OutputFolder

        with OutputFolder(out, option="out") as folder:
            self.write(folder.path, html=html)
        return Path(out)

    def report(self, plots: list[Path]) -> str:
        lines = [f"# {self.title}", "", f"Model: `{self.model}`", ""]
        if self.recovery():
            lines += [f"Positive control: **{self.recovery()}**", ""]
        lines += ["## Findings", ""]
        for f in self.findings:
            mark = "reproduces" if f.reproduced else "does NOT reproduce"
            lines.append(f"- **{mark}** — {f.claim} {f.evidence}")
        body = self.report_body()
        if body:
            lines += ["", "## Details", "", body]
        if plots:
            lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
        lines += ["", "## Config", "", "```json", json.dumps(self.config, indent=1), "```", ""]
        return "\n".join(lines)

    @staticmethod
    def load(path: str | Path) -> StudyResult:
        """Read a saved result back (as its study's Result class); a folder whose writing was
        interrupted (it holds ``INCOMPLETE``) is refused."""
        from lens.output import INCOMPLETE

        if (Path(path) / INCOMPLETE).exists():
            raise ValueError(f"{path} is marked {INCOMPLETE} (its run was interrupted): rerun it")
        raw = json.loads((Path(path) / "results.json").read_text())
        cls = STUDIES[raw["study"]].Result if raw["study"] in STUDIES else StudyResult
        findings = [Finding(**f) for f in raw["findings"]]
        data = cls.Data.from_dict(raw["data"]) if cls.Data is not None else raw["data"]
        return cls(config=raw["config"], model=raw["model"], data=data, findings=findings)
