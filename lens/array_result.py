"""Saving and loading results made of numpy arrays plus JSON metadata (the logit lens's and
the patchscope's): ``arrays.npz`` (read without pickle) and ``result.json``."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

R = TypeVar("R", bound="ArrayResult")


class ArrayResult:
    """Mixin for a dataclass result: ``ARRAY_NAMES`` lists its numpy-array fields (None when
    absent), ``_meta()`` its JSON metadata, which holds ``token_strings`` with string keys."""

    ARRAY_NAMES: ClassVar[tuple[str, ...]] = ()

    def _meta(self) -> dict[str, Any]:
        raise NotImplementedError

    def save(self, directory: str | Path) -> Path:
        """Write ``result.json`` (metadata, dims, token strings) and ``arrays.npz``.

        Example:
            >>> import lens, tempfile
            >>> model = lens.load_model(lens.tiny_config("llama"))
            >>> res = lens.logit_lens(model, [[1, 2, 3]], top_k=3)
            >>> back = lens.LogitLensResult.load(res.save(tempfile.mkdtemp()))
            >>> bool((back.top_ids == res.top_ids).all())
            True
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        names = self.ARRAY_NAMES
        arrays = {n: getattr(self, n) for n in names if getattr(self, n) is not None}
        np.savez(directory / "arrays.npz", **arrays)
        (directory / "result.json").write_text(json.dumps(self._meta(), indent=1))
        return directory

    @classmethod
    def load(cls: type[R], directory: str | Path) -> R:
        """Read a result written by :meth:`save` (no pickle involved)."""
        directory = Path(directory)
        meta = json.loads((directory / "result.json").read_text())
        with np.load(directory / "arrays.npz", allow_pickle=False) as npz:
            arrays = {n: npz[n] for n in cls.ARRAY_NAMES if n in npz.files}
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        kwargs = {k: v for k, v in meta.items() if k in names}
        kwargs["token_strings"] = {int(k): v for k, v in meta["token_strings"].items()}
        return cls(**kwargs, **arrays)
