"""Recurrent networks from scratch: cells, unrolling through time, and models built on them.

Row convention: a state is ``h_t: (B, H)`` and an input ``x_t: (B, D)``; a cell computes
``x_t W_ih^T + h_{t-1} W_hh^T`` with PyTorch's weight layout (``W_ih: (G*H, D)``,
``W_hh: (G*H, H)``, ``G`` gates), so weights copy to and from ``torch.nn.RNN/LSTM/GRU`` as they
are. A sequence is time-major, ``xs: (T, B, D)``, like ``nn.RNN`` without ``batch_first``.

- ``unroll``: run any cell over a sequence, collecting the outputs and the final state.
- ``detach_state``: cut the graph between chunks (truncated backpropagation through time).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = [
    "detach_state",
    "unroll",
]

State = torch.Tensor | tuple[torch.Tensor, ...]


def unroll(
    cell: Callable[..., State], xs: torch.Tensor, state: State, params: dict[str, Any]
) -> tuple[torch.Tensor, State]:
    """Apply ``state_t = cell(x_t, *state_{t-1}, **params)`` for ``t = 1..T``.

    ``xs: (T, B, D)``; ``state`` is one tensor ``(B, H)`` (RNN, GRU) or a tuple such as the
    LSTM's ``(h, c)``, unpacked into the cell's arguments. The output at step ``t`` is the
    state's first tensor (``h_t``). Returns ``(outputs: (T, B, H), final state)``.
    """
    if not isinstance(xs, torch.Tensor) or xs.dim() != 3:
        raise ValueError(f"xs must be a (T, B, D) tensor, got {getattr(xs, 'shape', type(xs))}")
    if len(xs) == 0:
        raise ValueError("xs must have at least one time step (T >= 1)")
    outputs = []
    for x_t in xs:
        state = (
            cell(x_t, *state, **params) if isinstance(state, tuple) else cell(x_t, state, **params)
        )
        outputs.append(state[0] if isinstance(state, tuple) else state)
    return torch.stack(outputs), state


def detach_state(state: State) -> State:
    """The same state cut from the graph: a tensor, or a tuple of tensors, ``.detach()``-ed."""
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()
