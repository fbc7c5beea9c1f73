"""The offline real-text corpus: extraction, deduplication, stable disjoint splits."""

from __future__ import annotations

import pytest

from lens.data.corpus import documents, in_heldout

MODULE = '''"""A module docstring that is long enough to be kept as a document here."""

# A comment block that explains something
# over two lines, long enough to keep.
def f(x):
    """Return x plus one, a function docstring long enough to count."""
    return x + 1  # short


class C:
    """A class docstring that is also long enough to be kept as well."""
'''


@pytest.fixture
def root(tmp_path):
    (tmp_path / "a.py").write_text(MODULE)
    (tmp_path / "b.py").write_text(MODULE)  # an exact duplicate: every document once
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "t.py").write_text('"""A test module that must be skipped entirely."""')
    (tmp_path / "bad.py").write_text("def (:\n")  # not Python: skipped
    return tmp_path


def test_extracts_dedups_and_skips(root):
    docs = list(documents(split="all", sources=["stdlib"], root=root))
    kinds = sorted(d.kind for d in docs)
    assert kinds == ["code", "code", "comment", "docstring", "docstring", "docstring"]
    assert {d.source for d in docs} == {"a.py"}
    comment = next(d for d in docs if d.kind == "comment")
    assert (
        comment.text
        == "A comment block that explains something over two lines, long enough to keep."
    )
    assert any(d.text.startswith("def f(x):") for d in docs)


def test_splits_are_stable_and_disjoint(root):
    train = [
        d.text
        for d in documents(
            split="train", sources=["stdlib", "builtin"], root=root, heldout_fraction=0.3
        )
    ]
    held = [
        d.text
        for d in documents(
            split="heldout", sources=["stdlib", "builtin"], root=root, heldout_fraction=0.3
        )
    ]
    every = [d.text for d in documents(split="all", sources=["stdlib", "builtin"], root=root)]
    assert not set(train) & set(held) and held and train
    assert sorted(train + held) == sorted(every)
    assert all(in_heldout(t, 0.3) for t in held) and not any(in_heldout(t, 0.3) for t in train)
    assert 0.15 < len(held) / len(every) < 0.45  # about the fraction asked for
    again = [
        d.text
        for d in documents(
            split="heldout", sources=["stdlib", "builtin"], root=root, heldout_fraction=0.3
        )
    ]
    assert again == held


def test_bad_arguments(root):
    with pytest.raises(ValueError, match="split"):
        next(documents(split="test"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sources"):
        next(documents(sources=["web"]))  # type: ignore[list-item]
    with pytest.raises(FileNotFoundError):
        next(documents(sources=["stdlib"], root=root / "missing"))
