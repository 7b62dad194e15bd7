"""Finite groups acting on the pixel grid: group data and their two actions.

Every symmetry of the square pixel grid is a quarter-turn rotation, possibly after a
mirror: element ``(k, m)`` maps an image ``x`` to
``torch.rot90(torch.flip(x, (-1,)) if m else x, k, dims=(-2, -1))`` (mirror left to
right, then turn ``k`` quarter turns counter-clockwise as ``torch.rot90``). A group
(:class:`GridGroup`) is a list of such elements closed under composition; C4 (the 4
rotations) and D4 (rotations and mirrors, 8 elements) are the two instances.

The element order is escnn's: ``gspaces.rot2dOnR2(4)`` for C4 and
``gspaces.flipRot2dOnR2(4)`` for D4 list their elements as ``(m, k)`` = (+, 0), (+, 1),
..., (-, 3), and escnn's ``GeometricTensor.transform`` by element ``i`` is exactly
:func:`grid_transform` by element ``i`` here (checked against escnn by the tests).

A *regular field* is ``|G|`` consecutive channels, one per element. Element ``g``
moves the channel of element ``h`` to the channel of ``g h`` (the regular
representation, the same permutations as escnn's ``regular_repr``) and transforms
every map on the grid (:func:`regular_transform`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .._validation import is_whole_number

__all__ = ["GridGroup", "get_group", "grid_transform", "regular_transform", "group_action"]

#: names of the actions on a tensor that :func:`group_action` knows
ACTIONS = ("invariant", "rotate", "regular")

Element = tuple[int, int]


def _compose(a: Element, b: Element) -> Element:
    """``a b`` (apply ``b`` first): a mirror reverses the direction of later turns."""
    (k1, m1), (k2, m2) = a, b
    return ((k1 + (-k2 if m1 else k2)) % 4, m1 ^ m2)


def _element_name(e: Element) -> str:
    k, m = e
    return f"{'flip_' if m else ''}rot{90 * k}"


@dataclass(frozen=True)
class GridGroup:
    """A finite group of symmetries of the pixel grid, given by its elements.

    Args:
        name: the group's name (``"C4"``, ``"D4"``).
        elements: the elements ``(k, m)`` in the order of the regular
            representation's channels: ``k`` quarter turns (0 to 3) after a mirror
            when ``m`` is 1. Must contain ``(0, 0)`` first and be closed under
            composition.

    Attributes:
        order: number of elements ``|G|``.
        names: element names, ``"rot0"``, ``"rot90"``, ..., ``"flip_rot270"``.
        cayley: ``(|G|, |G|)`` long tensor, ``cayley[a, b]`` is the index of ``a b``.
        inverse: ``(|G|,)`` long tensor, the index of each element's inverse.
    """

    name: str
    elements: tuple[Element, ...]
    order: int = field(init=False)
    names: tuple[str, ...] = field(init=False)
    cayley: torch.Tensor = field(init=False, repr=False, compare=False)
    inverse: torch.Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        elements = tuple((int(k) % 4, int(m)) for k, m in self.elements)
        index = {e: i for i, e in enumerate(elements)}
        if not elements or elements[0] != (0, 0) or len(index) != len(elements):
            raise ValueError("`elements` must be distinct, with the identity (0, 0) first")
        try:
            table = [[index[_compose(a, b)] for b in elements] for a in elements]
        except KeyError:
            raise ValueError(f"`elements` {elements} are not closed under composition") from None
        cayley = torch.tensor(table, dtype=torch.long)
        object.__setattr__(self, "elements", elements)
        object.__setattr__(self, "order", len(elements))
        object.__setattr__(self, "names", tuple(_element_name(e) for e in elements))
        object.__setattr__(self, "cayley", cayley)
        object.__setattr__(self, "inverse", (cayley == 0).int().argmax(dim=1))

    def element_index(self, element: Any, name: str = "element") -> int:
        """The index of ``element``: an index ``0 <= i < order`` or an element name."""
        if isinstance(element, str):
            if element in self.names:
                return self.names.index(element)
        elif is_whole_number(element) and 0 <= int(element) < self.order:
            return int(element)
        raise ValueError(
            f"`{name}` must be an element of {self.name}: an index from 0 to "
            f"{self.order - 1} or one of {', '.join(repr(n) for n in self.names)}; "
            f"got {element!r}"
        )

    def regular_permutation(self, element: Any) -> torch.Tensor:
        """``perm`` with ``new[h] = old[perm[h]]`` under ``element`` (``perm[h] = g^-1 h``)."""
        g = self.element_index(element)
        return self.cayley[self.inverse[g]]

    def regular_permutations(self) -> torch.Tensor:
        """``(|G|, |G|)``: row ``g`` is :meth:`regular_permutation` of ``g``."""
        return self.cayley[self.inverse]

    def __str__(self) -> str:
        return self.name


#: the rotations by multiples of 90 degrees (escnn's ``rot2dOnR2(4)``)
C4 = GridGroup("C4", tuple((k, 0) for k in range(4)))
#: rotations and mirrors of the square (escnn's ``flipRot2dOnR2(4)``)
D4 = GridGroup("D4", tuple((k, m) for m in range(2) for k in range(4)))

GROUPS = {"C4": C4, "D4": D4}


def get_group(group: str | GridGroup, name: str = "group") -> GridGroup:
    """The :class:`GridGroup` named ``group`` (``"C4"`` or ``"D4"``), or ``group`` itself.

    Args:
        group: a group name (case-insensitive) or a :class:`GridGroup`.
        name: the argument name used in error messages.

    Returns:
        The group.
    """
    if isinstance(group, GridGroup):
        return group
    if isinstance(group, str) and group.upper() in GROUPS:
        return GROUPS[group.upper()]
    raise ValueError(
        f'`{name}` must be "C4" (rotations by multiples of 90 degrees) or "D4" '
        f"(rotations and mirrors), got {group!r}"
    )


def grid_transform(x: torch.Tensor, element: Any,
                   group: str | GridGroup = "D4") -> torch.Tensor:
    """Apply a group element to the maps of ``x`` (mirror, then rotate).

    Args:
        x: tensor whose last two dimensions are height and width.
        element: index or name of the element (see :class:`GridGroup`).
        group: ``"C4"``, ``"D4"`` or a :class:`GridGroup`.

    Returns:
        The transformed tensor (height and width swap for odd quarter turns).
    """
    g = get_group(group)
    k, m = g.elements[g.element_index(element)]
    if m:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, k, dims=(-2, -1)) if k else x


def regular_transform(x: torch.Tensor, element: Any,
                      group: str | GridGroup = "D4") -> torch.Tensor:
    """Apply a group element to a tensor of regular fields.

    Every map is transformed on the grid and, within each field, the channel of
    element ``h`` moves to the channel of ``g h``: escnn's regular representation.

    Args:
        x: tensor ``(N, |G| * F, ...)`` with height and width last.
        element: index or name of the element.
        group: ``"C4"``, ``"D4"`` or a :class:`GridGroup`.

    Returns:
        The transformed tensor.

    Shape:
        ``(N, |G| F, H, W) -> (N, |G| F, H, W)`` (or ``W, H``).
    """
    g = get_group(group)
    check_regular(x, g, "x")
    perm = g.regular_permutation(element)
    fields = x.reshape(x.shape[0], x.shape[1] // g.order, g.order, *x.shape[2:])
    fields = fields.index_select(2, perm.to(x.device))
    return grid_transform(fields.reshape(x.shape), element, g)


def check_regular(x: Any, group: GridGroup, name: str) -> None:
    """Raise unless ``x`` is a tensor ``(N, |G| * fields, ...)`` of regular fields."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2 or x.shape[1] % group.order != 0:
        raise ValueError(
            f"`{name}` must hold regular {group.name} fields: a tensor (N, {group.order} * "
            f"fields, ...) whose channel count is a multiple of {group.order}, got shape "
            f"{tuple(x.shape)}"
        )


def group_action(action: str, group: str | GridGroup = "D4") -> Callable:
    """The named action ``f(x, element)`` of ``group`` on a tensor.

    Args:
        action: ``"invariant"`` (unchanged), ``"rotate"`` (maps transformed on the
            grid: rotated, and mirrored for the mirror elements) or ``"regular"``
            (maps transformed and each regular field's channels permuted).
        group: ``"C4"``, ``"D4"`` or a :class:`GridGroup`.

    Returns:
        A function of a tensor and an element (index or name).
    """
    g = get_group(group)
    if action == "invariant":
        return lambda x, e: x
    if action == "rotate":
        return lambda x, e: grid_transform(x, e, g)
    if action == "regular":
        return lambda x, e: regular_transform(x, e, g)
    raise ValueError(f'`action` must be one of "invariant", "rotate", "regular", got {action!r}')
