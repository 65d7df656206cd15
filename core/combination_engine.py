"""Combine parameter axes into the ordered list of cells a batch runs.

Owns :class:`Axis`, :class:`Combination`, the lazy :class:`CombinationSet` and the two modes:

* **matrix** (:func:`cartesian`): every combination of every axis; the FIRST axis varies slowest, the last
  fastest (the order of :func:`itertools.product`). Cell ``i`` has coordinates given by ``i`` written in the mixed
  radix of the axis lengths.
* **linear** (:func:`linear_zip`): the axes advance together, cell ``i`` takes value ``i`` of every axis; shorter
  axes cycle (``i % len``) so the batch is as long as the longest axis, or unequal lengths are an error with
  ``cycle=False``.

The cell count is computed first (``math.prod`` / ``max``) and checked against ``max_combinations`` before any
cell exists; cells are computed one at a time on access. Standard library only; must not import torch, comfy*,
server, nodes, execution, folder_paths, comfy_execution or aiohttp.
"""
from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, overload

from .errors import LimitExceededError, ParamSyntaxError

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAX_COMBINATIONS",
    "Mode",
    "Axis",
    "Combination",
    "CombinationSet",
    "cartesian",
    "linear_zip",
]

DEFAULT_MAX_COMBINATIONS = 100_000
Mode = Literal["matrix", "linear"]
_MODES: tuple[str, ...] = ("matrix", "linear")


@dataclass(frozen=True)
class Axis:
    """One parameter being iterated: its name (which identifies it), its values and optional display labels.

    ``values`` and ``labels`` are stored as tuples whatever sequence is passed in.
    """

    name: str
    values: tuple[Any, ...]
    type: str = "STRING"
    labels: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))
        if self.labels is not None:
            labels = tuple(str(label) for label in self.labels)
            if len(labels) != len(self.values):
                raise ValueError(
                    f'axis "{self.name}" has {len(self.values)} values but {len(labels)} labels'
                )
            object.__setattr__(self, "labels", labels)

    def __len__(self) -> int:
        return len(self.values)

    def label(self, position: int) -> str:
        """Display label of the value at ``position``: the given label, else ``str(value)``."""
        if self.labels is not None:
            return self.labels[position]
        return str(self.values[position])


@dataclass(frozen=True)
class Combination:
    """One cell of a batch.

    Attributes:
        index: 0..N-1 in the batch's order.
        coords: Position on each axis; in linear mode ``coords[i]`` is the index into axis ``i``'s values
            (after cycling).
        values: One value per axis, aligned with the axes.
    """

    index: int
    coords: tuple[int, ...]
    values: tuple[Any, ...]

    def as_dict(self, axes: Sequence[Axis]) -> dict[str, Any]:
        """Map each axis name to this cell's value on it.

        Raises:
            ValueError: ``axes`` does not have one axis per value.
        """
        if len(axes) != len(self.values):
            raise ValueError(f"{len(axes)} axes given for a combination of {len(self.values)} values")
        return {axis.name: value for axis, value in zip(axes, self.values)}


def _validate_axes(axes: tuple[Axis, ...]) -> None:
    if not axes:
        raise ParamSyntaxError("no parameters to iterate: add at least one parameter")
    seen: set[str] = set()
    for axis in axes:
        if not isinstance(axis, Axis):
            raise TypeError(f"expected Axis, got {axis.__class__.__name__}")
        if axis.name in seen:
            raise ParamSyntaxError(
                f'two parameters are named "{axis.name}"; names identify parameters and must be unique',
                param=axis.name,
            )
        seen.add(axis.name)
        if not axis.values:
            raise ParamSyntaxError("no values", param=axis.name)


@dataclass(frozen=True, eq=False)
class CombinationSet(Sequence[Combination]):
    """The cells of a batch as a lazy sequence: the length is known up front, each cell is computed on access.

    Build it with :func:`cartesian` or :func:`linear_zip`; the constructor validates the same way.

    Attributes:
        axes: The axes, in the user's order.
        mode: ``"matrix"`` (cartesian product, first axis slowest) or ``"linear"`` (axes advance together).
    """

    axes: tuple[Axis, ...]
    mode: Mode = "matrix"
    max_combinations: int = DEFAULT_MAX_COMBINATIONS
    cycle: bool = True
    _length: int = field(init=False, repr=False)
    _sizes: tuple[int, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        axes = tuple(self.axes)
        object.__setattr__(self, "axes", axes)
        if self.mode not in _MODES:
            raise ValueError(f'unknown mode "{self.mode}" (expected "matrix" or "linear")')
        _validate_axes(axes)
        sizes = tuple(len(axis.values) for axis in axes)
        if self.mode == "matrix":
            length = math.prod(sizes)
        else:
            length = max(sizes)
            if not self.cycle and min(sizes) != length:
                short = next(axis for axis in axes if len(axis.values) != length)
                listing = ", ".join(f"{axis.name}={len(axis.values)}" for axis in axes)
                raise ParamSyntaxError(
                    f"linear mode needs lists of equal length, got {listing}; "
                    f'"{short.name}" has {len(short.values)} values but the longest has {length}',
                    param=short.name,
                )
        if length > self.max_combinations:
            listing = (" x ".join(str(size) for size in sizes) + " values") if self.mode == "matrix" else "longest list"
            raise LimitExceededError(
                f"too many combinations: {length:,} ({listing}); the limit is {self.max_combinations:,}"
            )
        object.__setattr__(self, "_sizes", sizes)
        object.__setattr__(self, "_length", length)
        logger.debug("%s combinations over axes %s: %d cells", self.mode, [a.name for a in axes], length)

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> Combination: ...

    @overload
    def __getitem__(self, index: slice) -> list[Combination]: ...

    def __getitem__(self, index: int | slice) -> Combination | list[Combination]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._length))]
        if not isinstance(index, int):
            raise TypeError(f"combination indices must be integers, not {index.__class__.__name__}")
        position = index + self._length if index < 0 else index
        if not 0 <= position < self._length:
            raise IndexError(f"combination index {index} out of range for {self._length} combinations")
        return self._make(position, self.coords_of(position))

    def __iter__(self) -> Iterator[Combination]:
        if self.mode == "matrix":
            coords_iter: Iterable[tuple[int, ...]] = itertools.product(*(range(size) for size in self._sizes))
        else:
            coords_iter = (tuple(i % size for size in self._sizes) for i in range(self._length))
        for position, coords in enumerate(coords_iter):
            yield self._make(position, coords)

    def __repr__(self) -> str:
        names = ", ".join(axis.name for axis in self.axes)
        return f"CombinationSet(mode={self.mode!r}, axes=[{names}], len={self._length})"

    def _make(self, position: int, coords: tuple[int, ...]) -> Combination:
        values = tuple(axis.values[c] for axis, c in zip(self.axes, coords))
        return Combination(index=position, coords=coords, values=values)

    def coords_of(self, index: int) -> tuple[int, ...]:
        """Axis coordinates of cell ``index`` (0..len-1): mixed radix in matrix mode, ``index % len`` in linear."""
        if self.mode == "linear":
            return tuple(index % size for size in self._sizes)
        coords = [0] * len(self._sizes)
        rest = index
        # The last axis varies fastest, so it is the least significant digit.
        for axis_pos in range(len(self._sizes) - 1, -1, -1):
            rest, coords[axis_pos] = divmod(rest, self._sizes[axis_pos])
        return tuple(coords)

    def index_of(self, coords: Sequence[int]) -> int:
        """Matrix mode: the cell index at ``coords`` (inverse of :meth:`coords_of`).

        Raises:
            ValueError: Linear mode (coordinates do not identify a cell there), wrong length or out of range.
        """
        if self.mode != "matrix":
            raise ValueError("index_of is only defined for matrix mode")
        if len(coords) != len(self._sizes):
            raise ValueError(f"expected {len(self._sizes)} coordinates, got {len(coords)}")
        index = 0
        for coord, size in zip(coords, self._sizes):
            if not 0 <= coord < size:
                raise ValueError(f"coordinate {coord} out of range for an axis of {size} values")
            index = index * size + coord
        return index


def cartesian(axes: Iterable[Axis], *, max_combinations: int = DEFAULT_MAX_COMBINATIONS) -> CombinationSet:
    """Every combination of the axes' values; the FIRST axis varies slowest, the last fastest.

    Args:
        axes: The axes in the user's order; names must be unique and every axis needs at least one value.
        max_combinations: Most cells allowed; checked on the product of the lengths before any cell exists.

    Returns:
        A lazy :class:`CombinationSet` in matrix mode.

    Raises:
        ParamSyntaxError: No axes, an empty axis, or duplicate names.
        LimitExceededError: More than ``max_combinations`` cells.
    """
    return CombinationSet(tuple(axes), "matrix", max_combinations=max_combinations)


def linear_zip(
    axes: Iterable[Axis], *, cycle: bool = True, max_combinations: int = DEFAULT_MAX_COMBINATIONS
) -> CombinationSet:
    """The axes advance together: cell ``i`` takes value ``i`` of every axis.

    Args:
        axes: The axes in the user's order; names must be unique and every axis needs at least one value.
        cycle: When True, shorter axes repeat from their start and the batch is as long as the longest axis;
            when False, unequal lengths are an error.
        max_combinations: Most cells allowed.

    Returns:
        A lazy :class:`CombinationSet` in linear mode.

    Raises:
        ParamSyntaxError: No axes, an empty axis, duplicate names, or unequal lengths with ``cycle=False``
            (``param`` names the first shorter axis; the message lists every length).
        LimitExceededError: More than ``max_combinations`` cells.
    """
    return CombinationSet(tuple(axes), "linear", max_combinations=max_combinations, cycle=cycle)
