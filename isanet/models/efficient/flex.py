"""Every attention pattern of the kit as a FlexAttention ``mask_mod``, and the token orders that decide what
its block sparsity buys.

PyTorch's :func:`torch.nn.attention.flex_attention.flex_attention` takes a pattern as a ``mask_mod(b, h, q, k)``
predicate and, through :func:`~torch.nn.attention.flex_attention.create_block_mask`, cuts the ``L x L`` score
matrix into ``block_size x block_size`` *tiles*: an empty tile is skipped, a full one computed without a mask,
a partial one computed and masked. So the kernel saves work only where the allowed pairs gather into few
tiles, and that depends on the order the tokens are listed in, not on the pattern alone (the maintainers' own
word: FlexAttention is block sparse, unstructured sparsity does not help, pytorch-labs/attention-gym#63).

* The patterns (:class:`Pattern`) are predicates on pixel coordinates ``(query row, query col, key row,
  key col)``, so one pattern reads the same in every order: :class:`SameCell` (a block of ISA's short range, a
  window, the strided block), :class:`SameOffset` (ISA's long-range group, the strided lattice),
  :class:`SameRow`, :class:`SameColumn`, :class:`Everything` and :class:`Union` (criss-cross, strided: one
  softmax over both parts). They are frozen dataclasses, so a block mask is built once per pattern, size,
  order and device (:func:`block_mask`).
* The orders (:data:`ORDERS`): ``row`` (row-major, the map as stored), ``group`` (ISA's long-range groups one
  after the other, what ISA's first permute does), ``block`` (its blocks one after the other, the second
  permute) and ``morton`` (a Z-order space-filling curve). :func:`token_order` gives the permutation and
  :func:`inverse_order` its inverse.

Limits in torch 2.13: eager ``flex_attention`` is PyTorch's reference path (it forms the whole score matrix);
the fused block-sparse kernel needs ``torch.compile`` (about 20 s per new mask shape on a CPU, cold), and on a
CPU the compiled kernel has no backward: an input that requires grad raises. :func:`needs_fallback` says when
the kit computes the same pattern explicitly instead (warning once); :func:`compiled` switches compilation off
(tests, quick notebooks).
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention

from isanet.models.isa import Partition
from isanet.models.layers import grid

#: How the tokens are listed before the kernel sees them.
Order = Literal["row", "group", "block", "morton"]
ORDERS: tuple[Order, ...] = get_args(Order)
#: The tile side FlexAttention uses by default (queries x keys per tile).
DEFAULT_BLOCK_SIZE = 128


class Pattern:
    """Which keys a query reads, as a predicate on pixel coordinates (integer tensors, broadcast together)."""

    def __call__(self, query_row: torch.Tensor, query_col: torch.Tensor, key_row: torch.Tensor,
                 key_col: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def dense(self, height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """The ``HW x HW`` boolean mask of an ``height x width`` map, row-major: the masked-dense form."""
        rows, cols = (t.flatten() for t in grid(height, width, device))  # HW: row / column of each position
        return self(rows[:, None], cols[:, None], rows[None, :], cols[None, :])


@dataclass(frozen=True)
class Everything(Pattern):
    """Dense attention: every query reads every key."""

    def __call__(self, query_row, query_col, key_row, key_col):
        return (query_row >= 0) & (key_row >= 0)  # always true, in the broadcast shape


@dataclass(frozen=True)
class SameRow(Pattern):
    """Axial attention's row hop."""

    def __call__(self, query_row, query_col, key_row, key_col):
        return query_row == key_row


@dataclass(frozen=True)
class SameColumn(Pattern):
    """Axial attention's column hop."""

    def __call__(self, query_row, query_col, key_row, key_col):
        return query_col == key_col


def _cells(height: int, width: int) -> Partition:
    """ISA's geometry with ``height x width`` cells: its :meth:`~Partition.block` and :meth:`~Partition.offset`
    are the one definition of a cell and an in-cell offset (the map's own size does not enter either)."""
    return Partition(1, 1, height, width)


@dataclass(frozen=True)
class SameCell(Pattern):
    """Query and key in the same ``height x width`` cell of a grid moved by ``shift`` pixels: ISA's
    short-range block (:meth:`Partition.block`), a (shifted) window, the strided block."""

    height: int
    width: int
    shift: int = 0

    def __call__(self, query_row, query_col, key_row, key_col):
        s, cells = self.shift, _cells(self.height, self.width)
        (query_y, query_x), (key_y, key_x) = cells.block(query_row + s, query_col + s), cells.block(key_row + s,
                                                                                                     key_col + s)
        return (query_y == key_y) & (query_x == key_x)


@dataclass(frozen=True)
class SameOffset(Pattern):
    """Query and key at the same offset inside their ``height x width`` cells: ISA's long-range group
    (:meth:`Partition.offset`), the strided lattice."""

    height: int
    width: int

    def __call__(self, query_row, query_col, key_row, key_col):
        cells = _cells(self.height, self.width)
        (query_y, query_x), (key_y, key_x) = cells.offset(query_row, query_col), cells.offset(key_row, key_col)
        return (query_y == key_y) & (query_x == key_x)


@dataclass(frozen=True)
class Union(Pattern):
    """A key any of ``parts`` allows, in one softmax (criss-cross, strided); a key two parts allow counts once."""

    parts: tuple[Pattern, ...]

    def __call__(self, query_row, query_col, key_row, key_col):
        allowed = self.parts[0](query_row, query_col, key_row, key_col)
        for part in self.parts[1:]:
            allowed = allowed | part(query_row, query_col, key_row, key_col)
        return allowed


def check_order(order: str) -> Order:
    """``order`` itself, or a clear error naming the choices."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    return order


@dataclass(frozen=True)
class FlexOptions:
    """How a module lists its tokens for the flex kernel and how large the kernel's tiles are."""

    order: Order = "row"
    cell: tuple[int, int] | None = None  # the cell of the group / block orders; None: the module's own
    block_size: int = DEFAULT_BLOCK_SIZE  # tile side (queries and keys)

    def __post_init__(self) -> None:
        check_order(self.order)
        if self.block_size < 1 or (self.cell is not None and min(self.cell) < 1):
            raise ValueError(f"block_size and cell must be positive, got block_size={self.block_size}, "
                             f"cell={self.cell}")


@dataclass(frozen=True)
class PatternOnMap:
    """A pattern over the ``height x width`` map whose pixels the tokens list row-major, with the order and tile
    size the flex kernel lists them in: what a module hands the kernel dispatch for one hop over the whole map."""

    pattern: Pattern
    height: int
    width: int
    options: FlexOptions = FlexOptions()
    cell: tuple[int, int] = (8, 8)  # the cell of the group / block orders when options.cell is None

    def __post_init__(self) -> None:
        object.__setattr__(self, "cell", tuple(self.options.cell or self.cell))

    def mask(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """The ``HW x HW`` boolean mask: the same pattern for a kernel that takes masks."""
        return self.pattern.dense(self.height, self.width, device)


def _morton_code(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Z-order code: the bits of row and column interleaved (row bit above column bit)."""
    code = torch.zeros_like(rows)
    for bit in range(max(int(rows.max()), int(cols.max()), 1).bit_length()):
        code |= ((rows >> bit) & 1) << (2 * bit + 1) | ((cols >> bit) & 1) << (2 * bit)
    return code


def token_order(order: Order, height: int, width: int, cell: tuple[int, int] = (8, 8)) -> torch.Tensor:
    """The permutation ``perm`` (length ``height * width``) that lists the pixels of an ``height x width`` map in
    ``order``: token ``t`` is the pixel at row-major index ``perm[t]``. ``cell`` is ISA's block (the down
    factor) for ``group`` and ``block``; cells the map does not fill are listed as far as they go."""
    check_order(order)
    if order == "row":
        return torch.arange(height * width)
    rows, cols = (t.flatten() for t in grid(height, width))  # HW: the coordinates of each row-major pixel
    partition = Partition(height, width, *cell)  # cells the map does not fill: its blocks as far as they go
    if order == "group":  # by in-block offset, then (row-major) by block: ISA's long-range grouping
        first = partition.long_range_group(rows, cols)
    elif order == "block":  # by block, then (row-major) by offset: ISA's short-range grouping
        first = partition.short_range_group(rows, cols)
    else:
        first = _morton_code(rows, cols)
    # Ties (pixels of one group or block) keep their row-major order: a stable sort by the first key alone.
    return torch.sort(first, stable=True).indices


def inverse_order(perm: torch.Tensor) -> torch.Tensor:
    """``inverse`` with ``inverse[perm[t]] == t``: where each row-major pixel sits in the token list."""
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(len(perm), device=perm.device)
    return inverse


def mask_mod(pattern: Pattern, perm: torch.Tensor, width: int):
    """``pattern`` as FlexAttention's ``mask_mod(b, h, q, k)`` over tokens listed in ``perm``'s order on a map
    ``width`` pixels wide."""
    rows, cols = perm // width, perm % width  # L: the pixel coordinates of each token

    def allowed(batch, head, query, key):
        return pattern(rows[query], cols[query], rows[key], cols[key])

    return allowed


@functools.lru_cache(maxsize=64)
def block_mask(pattern: Pattern, height: int, width: int, order: Order = "row", cell: tuple[int, int] = (8, 8),
               block_size: int = DEFAULT_BLOCK_SIZE, device: str = "cpu") -> BlockMask:
    """The tile grid FlexAttention computes ``pattern`` on, tokens in ``order``; built once per argument set
    (building it evaluates the pattern on every pair)."""
    perm = token_order(order, height, width, cell).to(device)
    length = height * width
    return create_block_mask(mask_mod(pattern, perm, width), None, None, length, length, device=device,
                             BLOCK_SIZE=block_size)


_COMPILE = {"enabled": True}


@contextlib.contextmanager
def compiled(enabled: bool) -> Iterator[None]:
    """Inside, the flex kernel is ``torch.compile``-d (``True``, the default: the fused block-sparse kernel) or
    eager (``False``: PyTorch's reference path, exact and with no compile cost; for tests and quick runs)."""
    previous = _COMPILE["enabled"]
    _COMPILE["enabled"] = enabled
    try:
        yield
    finally:
        _COMPILE["enabled"] = previous


@functools.cache
def _compiled_kernel():
    return torch.compile(flex_attention, dynamic=False)


#: Triton tile settings tried in turn, after PyTorch's default, when the compiled kernel asks a GPU for more shared
#: memory than it has. ISA's heads are wide (256 key and 512 value channels): in fp32 on an H100 the default tiles
#: (32 x 32, 3 pipeline stages) asked for 234,112 bytes of the 232,448 there, and compilation failed (torch 2.11).
#: Fewer stages keep fewer key/value tiles in flight; smaller tiles come last.
SMALLER_TILES: tuple[dict[str, int], ...] = (
    {"num_stages": 2}, {"num_stages": 1}, {"BLOCK_M": 32, "BLOCK_N": 16, "num_stages": 1})
#: The tile setting that compiled, per (device type, dtype, key channels, value channels); ``None``: the default.
_TILES_THAT_FIT: dict[tuple, dict[str, int] | None] = {}


def _out_of_shared_memory(error: Exception) -> bool:
    return "out of resource" in str(error)


def _run_kernel(kernel, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: BlockMask | None,
                scale: float) -> torch.Tensor:
    """``kernel`` on ``B x 1 x L x C`` inputs; compiled, with the first tile setting (:data:`SMALLER_TILES`) that
    fits the GPU's shared memory (PyTorch's default wherever it fits, a CPU included), remembered per head shape so
    that the ladder is climbed once."""
    if kernel is flex_attention:
        return kernel(query, key, value, block_mask=mask, scale=scale)
    shape = (query.device.type, query.dtype, query.shape[-1], value.shape[-1])
    if shape in _TILES_THAT_FIT:
        return kernel(query, key, value, block_mask=mask, scale=scale, kernel_options=_TILES_THAT_FIT[shape])
    *first, last = (None, *SMALLER_TILES)
    for options in first:
        try:
            context = kernel(query, key, value, block_mask=mask, scale=scale, kernel_options=options)
        except Exception as error:  # Inductor wraps Triton's error; only the shared-memory one is retried
            if not _out_of_shared_memory(error):
                raise
            continue
        _TILES_THAT_FIT[shape] = options
        return context
    context = kernel(query, key, value, block_mask=mask, scale=scale, kernel_options=last)
    _TILES_THAT_FIT[shape] = last
    return context


def falls_back(device_type: str, grad: bool) -> bool:
    """Whether the flex kernel is replaced by the explicit one on ``device_type`` (``"cpu"``, ``"cuda"``) when
    gradients are needed: on a CPU (torch 2.13's CPU flex kernel has no backward). What a caller that labels
    its results (the attention bench) asks before it runs anything."""
    return grad and device_type == "cpu"


def needs_fallback(*tensors: torch.Tensor) -> bool:
    """True (and a warning, once) when the flex kernel cannot run these inputs (:func:`falls_back`): the caller
    then computes the same pattern explicitly."""
    if not falls_back(tensors[0].device.type, any(t.requires_grad for t in tensors)):
        return False
    _warn_fallback()
    return True


@functools.cache
def _warn_fallback() -> None:
    warnings.warn("kernel='flex' cannot train on a CPU (no backward in torch 2.13): computing the same pattern with "
                  "the explicit kernel instead", stacklevel=4)


def flex_attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, pattern: Pattern | None,
                height: int, width: int, order: Order = "row", cell: tuple[int, int] = (8, 8),
                block_size: int = DEFAULT_BLOCK_SIZE) -> torch.Tensor:
    """Attention over ``B x L x C`` tokens of an ``height x width`` map (row-major) restricted to ``pattern``
    (``None``: dense, no mask), the tokens listed in ``order`` for the kernel and put back after: the context,
    ``B x L x C_value`` row-major. Scaled by ``C_key ** -0.5`` like every kernel here."""
    scale = query.shape[-1] ** -0.5
    kernel = _compiled_kernel() if _COMPILE["enabled"] else flex_attention
    mask, perm = None, None
    if pattern is not None:
        perm = token_order(order, height, width, cell).to(query.device)
        mask = block_mask(pattern, height, width, order, tuple(cell), block_size, str(query.device))
        query, key, value = (t[:, perm] for t in (query, key, value))  # B x L x C, tokens in `order`
    with warnings.catch_warnings():  # eager on purpose (tests, quick mode): PyTorch's advice to compile is noise
        warnings.filterwarnings("ignore", "flex_attention called without torch.compile")
        # B x L x C -> B x 1 x L x C (one head) -> B x 1 x L x C_value -> B x L x C_value
        context = _run_kernel(kernel, query[:, None], key[:, None], value[:, None], mask, scale)[:, 0]
    return context if perm is None else context[:, inverse_order(perm)]  # row-major again
