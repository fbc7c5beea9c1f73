"""``lens.collect``: stream a corpus through a model into accumulators, resumably and sharded.

Only the hook sites the accumulators need are hooked; each hook reduces its activation into
the accumulators at once and keeps nothing, so memory does not grow with the corpus.

Checkpoints: with ``checkpoint=path`` the accumulators' states, the number of examples and
batches done and a fingerprint of the arguments are written atomically every
``checkpoint_every`` steps and at the end. A rerun with the same arguments loads the state,
skips the examples already counted (checking that they hash to the same corpus prefix) and
continues; the result is identical to an uninterrupted run. Different arguments (model
weights, accumulators, batch size, positions, padding, interventions) raise instead of
mixing runs.

torch.distributed (e.g. under ``torchrun``): every process iterates the corpus; step s takes
``world * batch_size`` examples and rank r forwards the r-th slice of them. At the end the
accumulators are all-reduced (every rank holds the total) and rank 0 writes the checkpoint.
Intermediate checkpoints hold the reduced state too; on resume rank 0 loads it and the other
ranks start empty, so the sum is unchanged.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from interventions.base import Positions
from interventions.sites import site_of
from lens.hooks import apply, resolve_hook
from lens.stats.accumulators import Accumulator, PositionMeans
from lens.stats.checkpoint import digest, load_states, model_fingerprint, read_meta
from lens.stats.checkpoint import save_checkpoint as _write
from lens.stats.corpus import check_item, new_hash, update_hash
from lens.stats.distributed import all_reduce_sum, broadcast_json, rank, world_size
from lens.stats.select import Selection, SlotSpec, normalize_positions, plan
from lens.tokens import PaddingSide
from lens.tokens import batch as make_batch


@dataclass
class CollectResult:
    """What ``collect`` did. Counts are over all processes and include resumed work.

    Attributes:
        accumulators: the accumulators, updated in place.
        n_examples, n_batches, n_tokens: what was forwarded (all processes, resumed included).
        resumed_examples: examples counted by the checkpoint this run resumed from.
        hooks: every hook read, in order (one per distinct accumulator site).
        sites: ``(site, layer)`` of each of ``hooks`` (:mod:`interventions.sites`), or None
            for a hook outside that vocabulary.
        positions: what was read: ``"all"`` (pooled real tokens), ``"last"``, a tuple of
            padded-batch columns, or with ``position_kind == "from_end"`` offsets from each
            prompt's last real token.
        position_kind: ``"all"``, ``"columns"`` or ``"from_end"``.
    """

    accumulators: list[Accumulator]
    n_examples: int
    n_batches: int
    n_tokens: int
    resumed_examples: int = 0
    hooks: list[str] = field(default_factory=list)
    sites: list[tuple[str, int] | None] = field(default_factory=list)
    positions: str | tuple[int, ...] = "all"
    position_kind: str = "all"


class _Taps:
    """Read-only hooks feeding the accumulators; one hook per distinct site."""

    def __init__(self, accumulators: Sequence[Accumulator]) -> None:
        self.consumers: dict[str, list[tuple[Accumulator, int]]] = {}
        for acc in accumulators:
            for i, site in enumerate(acc.sites):
                self.consumers.setdefault(site, []).append((acc, i))
        self.selection: Selection | None = None

    def hooks(self, model: Any) -> list[tuple[str, Any]]:
        return [(site, self._tap(users)) for site, users in self.consumers.items()]

    def _tap(self, users: list[tuple[Accumulator, int]]) -> Any:
        def tap(act: torch.Tensor, hook: Any) -> None:
            sel = self.selection
            if sel is None:
                raise RuntimeError("collect taps fired outside a collect batch")
            act = act.detach()
            if act.ndim > 3:  # e.g. hook_z [batch, pos, heads, d_head]: one row of heads*d_head
                act = act.flatten(2)
            values = sel.take(act)
            for acc, i in users:
                acc.update(i, values, sel.valid, sel.pooled)

        return tap


def _intervention_id(item: Any) -> Any:
    if hasattr(item, "to_dict"):
        return item.to_dict()
    return f"{type(item).__module__}.{type(item).__qualname__}"


def _validate(
    model: Any,
    accumulators: Sequence[Accumulator],
    positions: SlotSpec,
    batch_size: int,
    checkpoint_every: int,
) -> list[Accumulator]:
    accs = list(accumulators)
    if not accs or not all(isinstance(a, Accumulator) for a in accs):
        raise ValueError("accumulators must be a non-empty list of lens.stats accumulators")
    if len({id(a) for a in accs}) != len(accs):
        raise ValueError("the same accumulator is listed twice")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not isinstance(checkpoint_every, int) or checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be a positive int, got {checkpoint_every!r}")
    n_slots = positions.n_slots
    for acc in accs:
        if isinstance(acc, PositionMeans) and acc.n_positions != n_slots:
            raise ValueError(
                f"{positions} selects {n_slots} slot(s) but a PositionMeans was built "
                f"with n_positions={acc.n_positions}"
            )
        for site in acc.sites:
            try:
                resolve_hook(model, site)
            except KeyError as exc:
                raise ValueError(
                    f"{acc.kind} needs site {site!r}, which this model lacks: {exc.args[0]}"
                ) from None
    return accs


def _check_sequence(corpus: Sequence[Any], accs: Sequence[Accumulator]) -> None:
    """Validate a corpus that has a length up front, so bad labels fail before any forward."""
    if len(corpus) == 0:
        raise ValueError("corpus is empty: give at least one (text or tokens, label) pair")
    labels = [check_item(item, i)[1] for i, item in enumerate(corpus)]
    for acc in accs:
        acc.group_indices(labels)


@torch.no_grad()
def collect(
    model: Any,
    corpus: Iterable[Any],
    *,
    accumulators: Sequence[Accumulator],
    batch_size: int = 8,
    positions: Positions = "all",
    from_end: Sequence[int] | None = None,
    interventions: Sequence[Any] = (),
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 100,
    progress: bool = False,
    padding_side: PaddingSide = "left",
    prepend_bos: bool | None = None,
    process_group: Any = None,
) -> CollectResult:
    """Run ``corpus`` through ``model`` and feed the activations to ``accumulators``.

    Args:
        model: a TransformerBridge.
        corpus: iterable of ``(text or token ids, group label)`` pairs (a generator is fine;
            :func:`lens.stats.labelled` pairs texts with labels).
        accumulators: ``lens.stats`` accumulators; their sites are hooked, nothing else.
        batch_size: examples per forward (per process).
        positions: ``"all"`` real tokens (pooled), ``"last"`` real token, or integer columns
            of the padded batch (see ``interventions.base.Positions``; columns on padding are
            skipped).
        from_end: instead of ``positions``, offsets from each prompt's last real token, e.g.
            ``[-2, -1]`` for the last two real tokens under any padding (mask-aware; see
            :mod:`lens.stats.select`).
        interventions: installed for the whole run (statistics see their effect: the taps run
            after them on a shared hook point).
        checkpoint: path of a checkpoint file to write and resume from.
        checkpoint_every: write it every N steps (one step = one batch per process).
        progress: show a tqdm bar (rank 0 only).
        padding_side, prepend_bos: passed to :func:`lens.tokens.batch`.
        process_group: torch.distributed group (default: the world when initialised).

    Returns:
        A :class:`CollectResult`; the accumulators are updated in place. Without a
        checkpoint to resume from they are added to as they are; when one is loaded its
        state replaces theirs.

    Example:
        >>> import lens
        >>> model = lens.load_model(lens.tiny_config("llama"))
        >>> acc = lens.stats.ActivationProbability.for_model(model, ["a", "b"])
        >>> res = lens.collect(model, [([1, 2, 3], "a"), ([4, 5], "b")], accumulators=[acc])
        >>> res.n_tokens, acc.count[:, 0].tolist()
        (5, [3, 2])
    """
    pos = normalize_positions(positions, from_end)
    accs = _validate(model, accumulators, pos, batch_size, checkpoint_every)
    interventions = list(interventions)
    if not isinstance(corpus, Iterable):
        raise TypeError(
            f"corpus must be an iterable of (text or token ids, label) pairs, got {corpus!r}"
        )
    if isinstance(corpus, Sequence):
        _check_sequence(corpus, accs)
    device = next(model.parameters()).device
    for acc in accs:
        acc.to(device)
    me, world = rank(process_group), world_size(process_group)

    fingerprint = {
        "model": model_fingerprint(model) if checkpoint is not None else "",
        "accumulators": digest([a.config() for a in accs]),
        "batch_size": digest(batch_size),
        "positions": digest(pos.key()),
        "tokenization": digest([padding_side, prepend_bos]),
        "interventions": digest([_intervention_id(i) for i in interventions]),
    }
    meta = None
    checkpoint_path: str | os.PathLike = checkpoint if checkpoint is not None else ""
    if checkpoint is not None:
        meta = broadcast_json(read_meta(checkpoint) if me == 0 else None, process_group)
    base = {"examples_done": 0, "batches_done": 0, "tokens_done": 0}
    if meta is not None:
        changed = [k for k, v in fingerprint.items() if meta["fingerprint"].get(k) != v]
        if changed:
            raise ValueError(
                f"checkpoint {checkpoint} was written by a run with different {changed}; "
                "delete it or pass another checkpoint path"
            )
        base = {k: int(meta[k]) for k in base}
        if me == 0:
            load_states(checkpoint_path, accs)
        else:
            for acc in accs:
                acc.reset()

    hasher = new_hash()
    items = iter(corpus)
    index = 0
    for _ in range(base["examples_done"]):
        try:
            x, label = check_item(next(items), index)
        except StopIteration:
            raise ValueError(
                f"the corpus has {index} examples, fewer than the {base['examples_done']} "
                f"already counted in checkpoint {checkpoint}"
            ) from None
        update_hash(hasher, x, label)
        index += 1
    if meta is not None and hasher.hexdigest() != meta["corpus_sha256"]:
        raise ValueError(
            f"the first {index} corpus examples differ from those counted in checkpoint "
            f"{checkpoint}; delete it or pass another checkpoint path"
        )

    taps = _Taps(accs)
    step_size = world * batch_size
    total = math.ceil(len(corpus) / step_size) if isinstance(corpus, Sequence) else None
    bar = tqdm(
        total=total,
        initial=index // step_size,
        desc="collect",
        unit="step",
        disable=not progress or me != 0,
    )
    local = torch.zeros(2, dtype=torch.long)  # batches, tokens forwarded by this process
    steps = 0

    def save(done: bool) -> None:
        counts = all_reduce_sum(local.clone(), process_group)
        state = accs if done or world == 1 else [a.copy().all_reduce(process_group) for a in accs]
        if me == 0:
            record = {
                "fingerprint": fingerprint,
                "examples_done": index,
                "batches_done": base["batches_done"] + int(counts[0]),
                "tokens_done": base["tokens_done"] + int(counts[1]),
                "corpus_sha256": hasher.hexdigest(),
                "done": done,
            }
            _write(checkpoint_path, state, record)

    try:
        with apply(model, *interventions, taps):
            while True:
                chunk: list[tuple[Any, Any]] = []
                for item in items:
                    chunk.append(check_item(item, index + len(chunk)))
                    if len(chunk) == step_size:
                        break
                if not chunk:
                    break
                mine = chunk[me * batch_size : (me + 1) * batch_size]
                if mine:
                    first = index + me * batch_size
                    local[1] += _forward(
                        model, accs, taps, mine, first, pos, padding_side, prepend_bos
                    )
                    local[0] += 1
                for x, label in chunk:
                    update_hash(hasher, x, label)
                index += len(chunk)
                steps += 1
                bar.update(1)
                if checkpoint is not None and steps % checkpoint_every == 0:
                    save(done=False)
    finally:
        bar.close()
    if index == 0:
        raise ValueError("corpus is empty: give at least one (text or tokens, label) pair")
    for acc in accs:
        acc.all_reduce(process_group)
    if checkpoint is not None:
        save(done=True)
    counts = all_reduce_sum(local.clone(), process_group)
    hooks = list(taps.consumers)
    return CollectResult(
        accs,
        n_examples=index,
        n_batches=base["batches_done"] + int(counts[0]),
        n_tokens=base["tokens_done"] + int(counts[1]),
        resumed_examples=base["examples_done"],
        hooks=hooks,
        sites=[site_of(h) for h in hooks],
        positions=_read_positions(positions, pos),
        position_kind=pos.kind,
    )


def _read_positions(positions: Positions, pos: SlotSpec) -> str | tuple[int, ...]:
    """The positions as read: ``"all"``, ``"last"`` or the tuple of columns / offsets."""
    if pos.kind == "all":
        return "all"
    if isinstance(positions, str) and positions == "last":
        return "last"
    return tuple(pos.indices)


def _forward(
    model: Any,
    accs: Sequence[Accumulator],
    taps: _Taps,
    rows: list[tuple[Any, Any]],
    first_id: int,
    positions: SlotSpec,
    padding_side: PaddingSide,
    prepend_bos: bool | None,
) -> int:
    """Forward one batch with the taps armed for it (labels are checked first); returns
    the number of real tokens forwarded."""
    labels = [label for _, label in rows]
    group_idx = [acc.group_indices(labels) for acc in accs]
    b = make_batch(model, [x for x, _ in rows], padding_side=padding_side, prepend_bos=prepend_bos)
    taps.selection = plan(b.attention_mask, positions)
    ids = torch.arange(first_id, first_id + len(rows))
    for acc, g in zip(accs, group_idx):
        acc.begin_batch(g, ids)
    try:
        model(b.tokens, attention_mask=b.attention_mask)
    finally:
        taps.selection = None
    return int(b.attention_mask.sum())
