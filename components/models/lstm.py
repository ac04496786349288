"""LSTM mixer, the recurrent baseline FPT compared against (Lu et al. 2021).

Padded positions are packed away, so a sequence's outputs do not depend on its padding.
Causal (unidirectional) by default; bidirectional splits the width between two directions.

Legend: B batch, L length, D model width.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from components.config import LSTMCfg


class LSTMMixer(nn.Module):
    def __init__(self, cfg: LSTMCfg):
        super().__init__()
        hidden = cfg.d_model // 2 if cfg.bidirectional else cfg.d_model
        self.lstm = nn.LSTM(cfg.d_model, hidden, batch_first=True, bidirectional=cfg.bidirectional)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, L, D), mask: (B, L) bool, real positions first -> (B, L, D), zeros at padding."""
        lengths = mask.sum(1).clamp_min(1).cpu()  # (B,)
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        y, _ = self.lstm(packed)
        y, _ = pad_packed_sequence(y, batch_first=True, total_length=x.shape[1])  # (B, L, D)
        return y
