r"""Batch transforms: per-batch preparation with a declared contract.

A transform reads some fields of a :class:`~pyg_tgl.data.batch.TemporalBatch` and adds others;
it says which in ``requires`` and ``produces`` (the idea of the hooks of TGM,
``github.com/tgm-team/tgm``), so a loader can refuse a transform whose inputs a batch lacks and
check that it delivered what it promised. A model owns the transform that prepares its batches
(e.g. the index work of :class:`~pyg_tgl.nn.TemporalGNN`, ``model.batch_transform``), set once
when the model is built; the trainer hands it to the loaders (``LinkTrainer(host_plans=True)``),
which apply it where the batch is built, on the host.
"""
from __future__ import annotations

from typing import Any, Callable, FrozenSet, Union


class BatchTransform:
    """Base class of batch transforms: ``transform(batch)`` returns the batch with the fields of
    :attr:`produces` set, reading only those of :attr:`requires`.

    Subclasses set both class attributes and implement :meth:`__call__`.
    """

    #: batch fields the transform reads (each must be present and not ``None``)
    requires: FrozenSet[str] = frozenset()
    #: batch fields the transform sets
    produces: FrozenSet[str] = frozenset()

    def __call__(self, batch: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(requires={sorted(self.requires)}, "
                f"produces={sorted(self.produces)})")


def apply_transform(transform: Union[BatchTransform, Callable[[Any], Any]], batch: Any) -> Any:
    """``transform(batch)``, checking a :class:`BatchTransform`'s contract on both sides.

    A plain callable (the older contract) returns the batch's ``plan``, which is stored there.

    Raises:
        ValueError: the batch lacks a required field, or the transform did not set a produced
            one.
    """
    if not isinstance(transform, BatchTransform):
        batch.plan = transform(batch)
        return batch
    missing = sorted(f for f in transform.requires if getattr(batch, f, None) is None)
    if missing:
        raise ValueError(f"{transform!r}: the batch has no {', '.join(missing)}")
    out = transform(batch)
    unset = sorted(f for f in transform.produces if getattr(out, f, None) is None)
    if unset:
        raise ValueError(f"{transform!r} did not set {', '.join(unset)}")
    return out
