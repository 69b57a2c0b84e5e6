"""Recurrent networks from scratch: cells, unrolling through time, and models built on them.

Row convention: a state is ``h_t: (B, H)`` and an input ``x_t: (B, D)``; a cell computes
``x_t W_ih^T + h_{t-1} W_hh^T`` with PyTorch's weight layout (``W_ih: (G*H, D)``,
``W_hh: (G*H, H)``, ``G`` gates), so weights copy to and from ``torch.nn.RNN/LSTM/GRU`` as they
are. A sequence is time-major, ``xs: (T, B, D)``, like ``nn.RNN`` without ``batch_first``.

- ``unroll``: run any cell over a sequence, collecting the outputs and the final state.
- ``detach_state``: cut the graph between chunks (truncated backpropagation through time).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from .decoding import generate

__all__ = [
    "CharRNNLM",
    "GRUDecoder",
    "GRUEncoder",
    "Seq2Seq",
    "copy_params_from_torch",
    "detach_state",
    "greedy_decode_seq2seq",
    "gru_cell",
    "input_grad_norms",
    "last_valid_output",
    "linear_rnn_grad_norms",
    "lstm_cell",
    "predict_chars",
    "rnn_cell",
    "rnn_param_count",
    "train_lm_epoch",
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


# =============================================================================================
# Chapter 4.2: recurrent networks from scratch
#
# The Elman cell in PyTorch's weight layout, weights copied out of ``nn.RNN``/``nn.GRU``/
# ``nn.LSTM``, gradient norms through time, and a character-level language model trained by
# truncated backpropagation through time.

_NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu}


def _check_matrix(t: object, name: str, shape: tuple[int | None, ...]) -> torch.Tensor:
    """``t`` must be a floating tensor of ``shape`` (``None`` = any size along that axis)."""
    expected = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
    if not torch.is_tensor(t):
        raise TypeError(f"{name} must be a tensor of shape {expected}, got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got dtype {t.dtype}")
    if t.dim() != len(shape) or any(
        s is not None and s != n for s, n in zip(shape, t.shape, strict=True)
    ):
        raise ValueError(f"{name} must have shape {expected}, got {tuple(t.shape)}")
    return t


def _check_cell_args(
    gates: int,
    x: torch.Tensor,
    states: dict[str, torch.Tensor],
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b_ih: torch.Tensor | None,
    b_hh: torch.Tensor | None,
) -> None:
    """Shapes of one step of a cell with ``G = gates`` gate blocks: ``x: (B, D)``, every state
    ``(B, H)``, ``W_ih: (G*H, D)``, ``W_hh: (G*H, H)``, ``b_ih, b_hh: (G*H,)`` or ``None``."""
    _check_matrix(x, "x", (None, None))
    B, D = x.shape
    H = None
    for name, state in states.items():
        _check_matrix(state, name, (B, H))
        H = state.shape[1]
    _check_matrix(W_ih, "W_ih", (gates * H, D))
    _check_matrix(W_hh, "W_hh", (gates * H, H))
    for name, b in (("b_ih", b_ih), ("b_hh", b_hh)):
        if b is not None:
            _check_matrix(b, name, (gates * H,))


def _affine(v: torch.Tensor, W: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """``v W^T + b`` (``b`` may be ``None``)."""
    out = v @ W.T
    return out if b is None else out + b


def rnn_cell(
    x: torch.Tensor,
    h: torch.Tensor,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b_ih: torch.Tensor | None = None,
    b_hh: torch.Tensor | None = None,
    nonlinearity: str = "tanh",
) -> torch.Tensor:
    r"""One step of an Elman RNN, $h_t=\phi(x_tW_{ih}^\top+b_{ih}+h_{t-1}W_{hh}^\top+b_{hh})$.

    Row convention with PyTorch's layout: ``x: (B, D)``, ``h: (B, H)``, ``W_ih: (H, D)``,
    ``W_hh: (H, H)``, ``b_ih, b_hh: (H,)`` or ``None``; $\phi$ is ``"tanh"`` or ``"relu"``.
    Returns ``h_t: (B, H)``. With ``unroll`` and ``copy_params_from_torch`` it reproduces
    ``nn.RNN`` exactly.
    """
    if nonlinearity not in _NONLINEARITIES:
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    _check_cell_args(1, x, {"h": h}, W_ih, W_hh, b_ih, b_hh)
    pre = _affine(x, W_ih, b_ih) + _affine(h, W_hh, b_hh)
    return _NONLINEARITIES[nonlinearity](pre)


def copy_params_from_torch(
    module: torch.nn.RNNBase, layer: int = 0, reverse: bool = False
) -> dict[str, Any]:
    """The weights of one layer (and direction) of ``nn.RNN``/``nn.GRU``/``nn.LSTM`` as cell
    arguments: ``{"W_ih", "W_hh"}`` plus ``{"b_ih", "b_hh"}`` when the module has biases, and
    ``"nonlinearity"`` for ``nn.RNN``, so ``unroll(rnn_cell, xs, h0, copy_params_from_torch(rnn))``
    runs layer 0. The tensors are the module's own parameters (not copies): gradients of a
    from-scratch run reach the module. ``W_ih: (G*H, D)`` for layer 0, ``(G*H, H*dirs)`` above;
    the ``G`` gate blocks are stacked as in PyTorch (LSTM: i, f, g, o; GRU: r, z, n).
    """
    if not isinstance(module, torch.nn.RNNBase):
        raise TypeError(f"module must be an nn.RNN, nn.GRU or nn.LSTM, got {type(module).__name__}")
    if not isinstance(layer, int) or not 0 <= layer < module.num_layers:
        raise ValueError(f"layer must be an int in [0, {module.num_layers}), got {layer!r}")
    if reverse and not module.bidirectional:
        raise ValueError("reverse=True needs a module built with bidirectional=True")
    if getattr(module, "proj_size", 0):
        raise ValueError("modules with proj_size > 0 are not supported")
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    params: dict[str, Any] = {
        "W_ih": getattr(module, "weight_ih" + suffix),
        "W_hh": getattr(module, "weight_hh" + suffix),
    }
    if module.bias:
        params["b_ih"] = getattr(module, "bias_ih" + suffix)
        params["b_hh"] = getattr(module, "bias_hh" + suffix)
    if isinstance(module, torch.nn.RNN):
        params["nonlinearity"] = module.nonlinearity
    return params


def input_grad_norms(model: torch.nn.Module, xs: torch.Tensor, t_out: int = -1) -> torch.Tensor:
    r"""$\lVert\partial h_{t_\text{out}}/\partial x_t\rVert_F$ for every input step ``t``.

    ``model`` maps ``xs`` to ``(outputs, state)`` or to ``outputs`` with ``outputs: (T, B, H)``
    (``nn.RNN``/``nn.GRU``/``nn.LSTM``; ``(B, T, ...)`` on both sides when
    ``model.batch_first``); ``xs: (T, B, D)`` time-major in either case. The Jacobian
    $\partial h_{t_\text{out}}/\partial x_t$ (the ``B`` sequences are independent, so their
    squared norms add) comes from one backward pass: the batch is repeated ``H`` times and copy
    ``k`` differentiates unit ``k``. Returns ``(T,)``, zero after ``t_out`` (causality).
    """
    _check_matrix(xs, "xs", (None, None, None))
    T, B, D = xs.shape
    if not isinstance(t_out, int) or not -T <= t_out < T:
        raise ValueError(f"t_out must be an int in [-{T}, {T}), got {t_out!r}")
    batch_first = bool(getattr(model, "batch_first", False))
    with torch.no_grad():
        probe = model(xs[:1].transpose(0, 1) if batch_first else xs[:1])
    H = (probe[0] if isinstance(probe, tuple) else probe).shape[-1]
    rep = xs.detach().repeat(1, H, 1).requires_grad_(True)  # (T, H*B, D): copy k = rows kB..
    out = model(rep.transpose(0, 1) if batch_first else rep)
    out = out[0] if isinstance(out, tuple) else out
    if batch_first:
        out = out.transpose(0, 1)
    h = out[t_out].reshape(H, B, H)  # [copy k, sequence b, unit j]
    picked = h.diagonal(dim1=0, dim2=2).sum()  # sum over b of h[k, b, k]
    (grad,) = torch.autograd.grad(picked, rep)
    return grad.reshape(T, H, B, D).pow(2).sum(dim=(1, 2, 3)).sqrt()


def linear_rnn_grad_norms(W_hh: torch.Tensor, T: int) -> list[float]:
    r"""$\lVert\partial h_T/\partial h_t\rVert_2$ for $t=0,\dots,T$ in the linear RNN
    $h_t=h_{t-1}W_{hh}^\top+x_tW_{ih}^\top$.

    With PyTorch's layout the Jacobian is $W_{hh}^{\,T-t}$ whatever the inputs (its transpose in
    the row convention), so the value at ``t`` is the spectral norm of $W_{hh}^{\,T-t}$: exactly
    $|a|^{T-t}$ for $W_{hh}=aI$, and for large $T-t$ it grows or decays like
    $\rho(W_{hh})^{T-t}$ (spectral radius). ``W_hh: (H, H)``;
    returns ``T + 1`` floats, the last one 1 (``t = T``).
    """
    _check_matrix(W_hh, "W_hh", (None, None))
    if W_hh.shape[0] != W_hh.shape[1]:
        raise ValueError(f"W_hh must be square (H, H), got {tuple(W_hh.shape)}")
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a positive int, got {T!r}")
    W = W_hh.detach().double()
    power, norms = torch.eye(W.shape[0], dtype=W.dtype, device=W.device), [1.0]
    for _ in range(T):
        power = power @ W
        norms.append(torch.linalg.matrix_norm(power, ord=2).item())
    return norms[::-1]


class CharRNNLM(torch.nn.Module):
    """Character language model: one-hot (``emb=None``) or ``nn.Embedding`` -> ``nn.RNN`` /
    ``nn.GRU`` / ``nn.LSTM`` (``batch_first``) -> linear layer to ``vocab_size`` logits.

    ``forward(X: (B, T) int64, state=None) -> (logits: (B, T, V), state)``, ``state`` being
    ``h: (num_layers, B, H)`` or the LSTM's ``(h, c)``; ``None`` means zeros.
    """

    _CELLS = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}

    def __init__(
        self,
        vocab_size: int,
        hidden: int = 128,
        cell: str = "rnn",
        num_layers: int = 1,
        emb: int | None = None,
    ):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("hidden", hidden),
                            ("num_layers", num_layers)):  # fmt: skip
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if cell not in self._CELLS:
            raise ValueError(f"cell must be 'rnn', 'gru' or 'lstm', got {cell!r}")
        if emb is not None and (not isinstance(emb, int) or emb < 1):
            raise ValueError(f"emb must be a positive int or None (one-hot), got {emb!r}")
        self.vocab_size, self.cell = vocab_size, cell
        self.embedding = None if emb is None else torch.nn.Embedding(vocab_size, emb)
        self.rnn = self._CELLS[cell](
            vocab_size if emb is None else emb, hidden, num_layers=num_layers, batch_first=True
        )
        self.head = torch.nn.Linear(hidden, vocab_size)

    def forward(self, X: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        if not torch.is_tensor(X) or X.dim() != 2 or X.dtype != torch.int64:
            raise ValueError(
                f"X must be a (B, T) int64 tensor of token ids, got "
                f"{getattr(X, 'dtype', type(X))} {tuple(getattr(X, 'shape', ()))}"
            )
        if self.embedding is None:
            inputs = torch.nn.functional.one_hot(X, self.vocab_size).to(self.head.weight.dtype)
        else:
            inputs = self.embedding(X)
        outputs, state = self.rnn(inputs, state)
        return self.head(outputs), state


def train_lm_epoch(
    model: torch.nn.Module,
    batches: Any,
    optimizer: torch.optim.Optimizer,
    clip: float | None = 1.0,
    reading: str = "sequential",
) -> float:
    r"""One epoch of truncated BPTT; returns the training perplexity $\exp(\text{mean CE})$.

    ``model(X, state) -> (logits: (B, T, V), state)`` (``CharRNNLM``); ``batches`` yields
    ``X, Y: (B, T)`` int64 (``dlcourse.text.seq_data_iter_*``), moved to the model's device.
    Per minibatch: forward -> mean cross-entropy -> ``zero_grad`` -> backward -> clip the global
    norm to ``clip`` (``dlcourse.optim.clip_grad_norm_``; ``None`` = no clipping) -> step. With
    ``reading="sequential"`` the state starts at zero and is carried over, detached, from one
    minibatch to the next; with ``"random"`` it restarts at zero for every minibatch.
    """
    from .optim import clip_grad_norm_

    if reading not in ("sequential", "random"):
        raise ValueError(f"reading must be 'sequential' or 'random', got {reading!r}")
    if clip is not None and not clip > 0:
        raise ValueError(f"clip must be a positive number or None, got {clip!r}")
    dev = next(model.parameters()).device
    model.train()
    state, total, count = None, 0.0, 0
    for X, Y in batches:
        X, Y = X.to(dev), Y.to(dev)
        if reading == "random" or state is None:
            state = None
        else:
            state = detach_state(state)  # keep the values, cut the graph of earlier batches
        logits, state = model(X, state)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), Y.flatten())
        optimizer.zero_grad()
        loss.backward()
        if clip is not None:
            clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        total, count = total + loss.item() * Y.numel(), count + Y.numel()
    if count == 0:
        raise ValueError("batches must yield at least one minibatch")
    return math.exp(total / count)


@torch.no_grad()
def predict_chars(
    model: torch.nn.Module, vocab: Any, prefix: str, n_new: int, warmup: bool = True
) -> str:
    """``prefix`` followed by ``n_new`` greedily generated characters (arg-max at each step).

    ``warmup=True``: the zero state first reads the whole prefix (state updates only, its
    predictions are ignored) and the last prefix character's output predicts the first new
    character. ``warmup=False`` starts from the zero state with the last prefix character
    alone, as if the rest of the prefix had not been seen. ``model(X, state)`` as for
    ``train_lm_epoch``; ``vocab`` maps characters to ids (``vocab[list_of_chars]``) and back
    (``vocab.to_tokens``). The decoding itself is ``dlcourse.decoding.generate`` (greedy).
    """
    if not isinstance(prefix, str) or not prefix:
        raise ValueError(f"prefix must be a non-empty string, got {prefix!r}")
    if not isinstance(n_new, int) or n_new < 0:
        raise ValueError(f"n_new must be a non-negative int, got {n_new!r}")
    if n_new == 0:
        return prefix
    context = vocab[list(prefix if warmup else prefix[-1])]
    ids = generate(model, context, n_new, strategy="greedy")
    return prefix + "".join(vocab.to_tokens(ids[len(context) :].tolist()))


# ---------------------------------------------------------------------------------------------
# Chapter 4.3: LSTM, GRU and encoder-decoder models

_GATES = {"rnn": 1, "gru": 3, "lstm": 4}
_GRU_CONVENTIONS = ("pytorch", "reset_before")


def lstm_cell(
    x: torch.Tensor,
    h: torch.Tensor,
    c: torch.Tensor,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b_ih: torch.Tensor | None = None,
    b_hh: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step in PyTorch's gate order ``(i, f, g, o)``; returns ``(h_t, c_t)``.

    ``[a_i, a_f, a_g, a_o] = x W_ih^T + b_ih + h W_hh^T + b_hh`` (each ``(B, H)``), then
    ``i = sigmoid(a_i)``, ``f = sigmoid(a_f)``, ``g = tanh(a_g)`` (candidate), ``o = sigmoid(a_o)``,
    ``c_t = f * c + i * g`` and ``h_t = o * tanh(c_t)``.
    Shapes: ``x: (B, D)``, ``h, c: (B, H)``, ``W_ih: (4H, D)``, ``W_hh: (4H, H)``, biases ``(4H,)``;
    the weights of ``nn.LSTM``/``nn.LSTMCell`` plug in unchanged.
    """
    _check_cell_args(4, x, {"h": h, "c": c}, W_ih, W_hh, b_ih, b_hh)
    a_i, a_f, a_g, a_o = (_affine(x, W_ih, b_ih) + _affine(h, W_hh, b_hh)).chunk(4, dim=-1)
    c_t = torch.sigmoid(a_f) * c + torch.sigmoid(a_i) * torch.tanh(a_g)
    return torch.sigmoid(a_o) * torch.tanh(c_t), c_t


def gru_cell(
    x: torch.Tensor,
    h: torch.Tensor,
    W_ih: torch.Tensor,
    W_hh: torch.Tensor,
    b_ih: torch.Tensor | None = None,
    b_hh: torch.Tensor | None = None,
    convention: str = "pytorch",
) -> torch.Tensor:
    """One GRU step with gate order ``(r, z, n)``; returns ``h_t: (B, H)``.

    ``convention="pytorch"`` (``nn.GRU``, ``nn.GRUCell``; Cho et al. 2014)::

        r = sigmoid(x W_ir^T + b_ir + h W_hr^T + b_hr)      z = sigmoid(... same with _z ...)
        n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))   reset applied AFTER the matmul
        h_t = (1 - z) * n + z * h                           z keeps the OLD state

    ``convention="reset_before"`` (the textbook form, as in many notes and D2L's first edition)::

        n = tanh(x W_in^T + b_in + (r * h) W_hn^T + b_hn)   reset applied BEFORE the matmul
        h_t = (1 - z) * h + z * n                           z takes the NEW candidate

    Same parameters, different functions: the textbook form does not reproduce ``nn.GRU``.
    Shapes: ``x: (B, D)``, ``h: (B, H)``, ``W_ih: (3H, D)``, ``W_hh: (3H, H)``, biases ``(3H,)``.
    """
    if convention not in _GRU_CONVENTIONS:
        raise ValueError(f"convention must be one of {_GRU_CONVENTIONS}, got {convention!r}")
    _check_cell_args(3, x, {"h": h}, W_ih, W_hh, b_ih, b_hh)
    gi_r, gi_z, gi_n = _affine(x, W_ih, b_ih).chunk(3, dim=-1)
    W_hr, W_hz, W_hn = W_hh.chunk(3, dim=0)
    b_hr, b_hz, b_hn = (None, None, None) if b_hh is None else b_hh.chunk(3)
    r = torch.sigmoid(gi_r + _affine(h, W_hr, b_hr))
    z = torch.sigmoid(gi_z + _affine(h, W_hz, b_hz))
    if convention == "pytorch":
        n = torch.tanh(gi_n + r * _affine(h, W_hn, b_hn))
        return (1 - z) * n + z * h
    n = torch.tanh(gi_n + _affine(r * h, W_hn, b_hn))
    return (1 - z) * h + z * n


def rnn_param_count(
    kind: str,
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    bidirectional: bool = False,
) -> int:
    """Parameters of ``nn.RNN``/``nn.GRU``/``nn.LSTM`` (with biases) from the formula.

    One layer and direction with input width ``d`` has ``G [h (d + h) + 2h]`` parameters, with
    ``G = 1, 3, 4`` for ``kind = "rnn", "gru", "lstm"``. Layer 1 reads ``d = input_size``; deeper
    layers read ``d = h`` (``2h`` when bidirectional, the two directions concatenated).
    """
    if kind not in _GATES:
        raise ValueError(f"kind must be one of {tuple(_GATES)}, got {kind!r}")
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size),
                        ("num_layers", num_layers)):  # fmt: skip
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    G, h, dirs = _GATES[kind], hidden_size, 2 if bidirectional else 1
    total = 0
    for layer in range(num_layers):
        d = input_size if layer == 0 else dirs * h
        total += dirs * G * (h * (d + h) + 2 * h)
    return total


def last_valid_output(
    outputs: torch.Tensor, lengths: torch.Tensor, batch_first: bool = True
) -> torch.Tensor:
    """The output at each sequence's last real step: ``out[b, lengths[b] - 1]``, shape ``(B, H)``.

    ``outputs: (B, T, H)`` (``(T, B, H)`` with ``batch_first=False``) from a right-padded batch;
    ``lengths: (B,)`` integers in ``[1, T]``. For a unidirectional RNN this equals the final
    hidden state of running each sequence alone (and ``h_n`` of a packed sequence), while
    ``out[:, -1]`` reads padding for every sequence shorter than ``T``.
    """
    if not isinstance(outputs, torch.Tensor) or outputs.dim() != 3:
        raise ValueError(
            f"outputs must be a (B, T, H) tensor, got {getattr(outputs, 'shape', type(outputs))}"
        )
    if not batch_first:
        outputs = outputs.transpose(0, 1)
    B, T, H = outputs.shape
    if not isinstance(lengths, torch.Tensor) or lengths.shape != (B,):
        raise ValueError(
            f"lengths must be a (B,) = ({B},) tensor, got {getattr(lengths, 'shape', lengths)}"
        )
    if lengths.is_floating_point() or lengths.dtype == torch.bool:
        raise TypeError(f"lengths must be an integer tensor, got {lengths.dtype}")
    if B and (lengths.min() < 1 or lengths.max() > T):
        raise ValueError(f"lengths must lie in [1, T={T}], got {lengths.tolist()}")
    index = (lengths.to(outputs.device).long() - 1).view(B, 1, 1).expand(B, 1, H)
    return outputs.gather(1, index).squeeze(1)


def _check_tokens(t: torch.Tensor, name: str) -> None:
    if not isinstance(t, torch.Tensor) or t.dim() != 2 or t.is_floating_point():
        raise ValueError(
            f"{name} must be a (B, T) integer tensor of token ids, got "
            f"{getattr(t, 'dtype', type(t))} {tuple(getattr(t, 'shape', ()))}"
        )


class GRUEncoder(torch.nn.Module):
    """Embedding + one-layer GRU over a right-padded batch ``src: (B, S)``, ``src_len: (B,)``.

    ``forward`` returns ``(outputs: (B, S, H), h: (1, B, H))``: one vector per source token
    (zeros on padding) and the state after each sequence's *last real* token (the sequences are
    packed, so padding never enters the state). Token id 0 is the padding id.
    """

    def __init__(self, vocab_size: int, emb: int = 32, hidden: int = 64):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab_size, emb, padding_idx=0)
        self.rnn = torch.nn.GRU(emb, hidden, batch_first=True)

    def forward(
        self, src: torch.Tensor, src_len: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        _check_tokens(src, "src")
        if not isinstance(src_len, torch.Tensor) or src_len.shape != (len(src),):
            raise ValueError(f"src_len must be a (B,) = ({len(src)},) tensor of lengths")
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            self.embedding(src), src_len.cpu(), batch_first=True, enforce_sorted=False
        )
        outputs, h = self.rnn(packed)
        outputs, _ = torch.nn.utils.rnn.pad_packed_sequence(
            outputs, batch_first=True, total_length=src.shape[1]
        )
        return outputs, h


class GRUDecoder(torch.nn.Module):
    """Embedding + one-layer GRU + linear read-out, started from the encoder's final state.

    ``forward(tgt_in: (B, T), h: (1, B, H)) -> (logits: (B, T, V), h)``. In training ``tgt_in`` is
    ``<bos>`` followed by the true target shifted right (teacher forcing); in generation it is one
    token at a time, the model's own previous output.
    """

    def __init__(self, vocab_size: int, emb: int = 32, hidden: int = 64):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab_size, emb, padding_idx=0)
        self.rnn = torch.nn.GRU(emb, hidden, batch_first=True)
        self.out = torch.nn.Linear(hidden, vocab_size)

    def forward(self, tgt_in: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_tokens(tgt_in, "tgt_in")
        outputs, h = self.rnn(self.embedding(tgt_in), h)
        return self.out(outputs), h


class Seq2Seq(torch.nn.Module):
    """Encoder-decoder without attention (Sutskever et al. 2014; Cho et al. 2014).

    The whole source is squeezed into the encoder's final state ``h: (1, B, H)``, the decoder's
    initial state: a fixed-size context whatever the source length.
    ``forward(src: (B, S), src_len: (B,), tgt_in: (B, T)) -> logits: (B, T, V)``.
    """

    def __init__(self, encoder: torch.nn.Module, decoder: torch.nn.Module):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(
        self, src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor
    ) -> torch.Tensor:
        _, h = self.encoder(src, src_len)
        logits, _ = self.decoder(tgt_in, h)
        return logits


@torch.no_grad()
def greedy_decode_seq2seq(
    model: Seq2Seq,
    src: torch.Tensor,
    src_len: torch.Tensor,
    bos: int,
    eos: int,
    max_len: int,
    pad: int = 0,
) -> torch.Tensor:
    """Greedy decoding: feed ``<bos>``, then each step's argmax, until ``<eos>`` or ``max_len``.

    Returns ``(B, L)`` token ids with ``L <= max_len``, the ``<eos>`` included where one was
    produced and ``pad`` after it; decoding stops once every sequence has ended.
    """
    _check_tokens(src, "src")
    if not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"max_len must be a positive int, got {max_len!r}")
    _, h = model.encoder(src, src_len)
    token = torch.full((len(src), 1), bos, dtype=torch.long, device=src.device)
    done = torch.zeros(len(src), dtype=torch.bool, device=src.device)
    out = []
    for _ in range(max_len):
        logits, h = model.decoder(token, h)
        token = logits[:, -1].argmax(-1, keepdim=True)
        out.append(token.squeeze(1).masked_fill(done, pad))
        done |= token.squeeze(1) == eos
        if done.all():
            break
    return torch.stack(out, dim=1)
