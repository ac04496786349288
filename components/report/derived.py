"""Numbers derived from a model rather than measured in training, shown beside accuracy: the
recurrent state an architecture carries per sequence, and forward FLOPs per token. Each record
also names the code version that computed it (components/versioning.py): a wrong formula is then
traceable to the results it touched.

State size counts real numbers per sequence at inference in the recurrent view: an S4D/DLR layer
keeps d_state / 2 complex modes per channel (d_model * d_state reals) per direction; an LSTM
layer keeps h and c. Attention has no fixed state (its key/value cache grows with length): None.
FLOPs are counted by torch's FlopCounterMode on one forward pass at the task's mean length: it
counts matrix products and attention, not FFTs or elementwise work, so SSMs' FFT convolutions are
not in the number (the report says so).
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from components.config import ArchCfg


def state_size(cfg: ArchCfg) -> int | None:
    if cfg.kind in ("s4d", "dlr"):
        return cfg.n_layers * cfg.d_model * cfg.d_state * (2 if cfg.bidirectional else 1)
    if cfg.kind == "lstm":
        return cfg.n_layers * 2 * cfg.d_model  # h and c (a bidirectional LSTM splits d_model between directions)
    return None


@torch.no_grad()
def flops_per_token(model: torch.nn.Module, length: int, vocab: int | None, input_dim: int | None = None) -> float:
    """Forward FLOPs (matmul and attention only) per token for one sequence of `length` tokens
    (ids of a `vocab` vocabulary, or with `input_dim` patches of that many values in {-1, 0, 1})."""
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(0)
    tokens = (torch.randint(2, vocab, (1, length), generator=gen) if input_dim is None  # (1, L)
              else torch.randint(-1, 2, (1, length, input_dim), generator=gen).float()).to(device)  # (1, L, P)
    mask = torch.ones(1, length, dtype=torch.bool, device=device)  # (1, L)
    was = model.training
    model.eval()
    with FlopCounterMode(display=False) as counter:
        model(tokens, mask)
    model.train(was)
    return counter.get_total_flops() / length
