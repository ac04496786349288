"""S4D: a diagonal state-space layer (Gu et al. 2022, "On the Parameterization and Initialization
of Diagonal State Space Models"), bidirectional, computed as an FFT convolution, with its
step-by-step recurrence twin.

Legend: B batch, L length, D model width (= SSM channels), N complex modes (d_state / 2),
C kernel directions (2: forward and backward).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from components.config import S4DCfg


def optim_hint(p: nn.Parameter, lr: float) -> nn.Parameter:
    """Mark a parameter for its own learning rate and no weight decay (read by training.optim)."""
    p._optim = {"lr": lr, "weight_decay": 0.0}
    return p


# helpers --------------------------------------------------------------------------------------


class S4DKernel(nn.Module):
    """Generates the convolution kernel of each direction from diagonal (A, B=1, C, dt), ZOH."""

    def __init__(self, cfg: S4DCfg, directions: int = 2):
        super().__init__()
        D, N = cfg.d_model, cfg.d_state // 2
        log_dt = torch.rand(D) * (math.log(cfg.dt_max) - math.log(cfg.dt_min)) + math.log(cfg.dt_min)  # (D,)
        C = torch.randn(directions, D, N, dtype=torch.cfloat)  # (C, D, N)
        self.log_dt = optim_hint(nn.Parameter(log_dt), cfg.ssm_lr)
        self.C = optim_hint(nn.Parameter(torch.view_as_real(C)), cfg.ssm_lr)  # (C, D, N, 2)
        # S4D-Lin: A_n = -1/2 + i * pi * n, stored as log(-Re A) and Im A
        self.log_A_real = optim_hint(nn.Parameter(torch.log(0.5 * torch.ones(D, N))), cfg.ssm_lr)
        self.A_imag = optim_hint(nn.Parameter(math.pi * torch.arange(N).float().repeat(D, 1)), cfg.ssm_lr)

    def discrete(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(dtA (D, N), C-bar (C, D, N)): the ZOH-discretised state matrix and the output map
        with B-bar = (exp(dtA) - 1) / A folded in."""
        dt = self.log_dt.exp()  # (D,)
        A = -self.log_A_real.exp() + 1j * self.A_imag  # (D, N)
        dtA = A * dt[:, None]  # (D, N)
        C = torch.view_as_complex(self.C) * (dtA.exp() - 1.0) / A  # (C, D, N)
        return dtA, C

    def forward(self, L: int) -> torch.Tensor:
        """-> kernels (C, D, L): K[c, d, l] = 2 Re(sum_n C[c, d, n] exp(dtA[d, n] * l))."""
        dtA, C = self.discrete()
        powers = (dtA[..., None] * torch.arange(L, device=dtA.device)).exp()  # (D, N, L)
        return 2 * torch.einsum("cdn, dnl -> cdl", C, powers).real  # (C, D, L)


def bidirectional_conv(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """u: (B, D, L), k: (2, D, L) -> (B, D, L);
    y_t = sum_{s<=t} k[0, t-s] u_s + sum_{s>t} k[1, s-t-1] u_s, as one FFT convolution of size 2L."""
    L = u.shape[-1]
    k = F.pad(k[0], (0, L)) + F.pad(k[1].flip(-1), (L, 0))  # (D, 2L)
    y = torch.fft.irfft(torch.fft.rfft(u, n=2 * L) * torch.fft.rfft(k, n=2 * L), n=2 * L)  # (B, D, 2L)
    return y[..., :L]  # (B, D, L)


# reference ------------------------------------------------------------------------------------


def s4d_recurrence_ref(kernel: S4DKernel, u: torch.Tensor) -> torch.Tensor:
    """The same bidirectional SSM run as two explicit recurrences x_t = exp(dtA) x_{t-1} + u_t,
    y_t = 2 Re(C-bar x_t); the backward one runs on the reversed input and is shifted by one.
    u: (B, D, L) -> (B, D, L). Slow: tests only."""
    dtA, C = kernel.discrete()  # (D, N), (2, D, N)
    dA = dtA.exp()  # (D, N)
    B, D, L = u.shape

    def scan(seq: torch.Tensor, Cd: torch.Tensor) -> torch.Tensor:  # (B, D, L) -> (B, D, L)
        x = torch.zeros(B, D, dA.shape[-1], dtype=dA.dtype)  # (B, D, N)
        ys = []
        for t in range(L):
            x = dA * x + seq[..., t, None]  # (B, D, N)
            ys.append(2 * torch.einsum("dn, bdn -> bd", Cd, x).real)  # (B, D)
        return torch.stack(ys, dim=-1)  # (B, D, L)

    fwd = scan(u, C[0])  # (B, D, L)
    bwd = scan(u.flip(-1), C[1])  # (B, D, L) in reversed time; output at t' includes u at t'
    bwd = F.pad(bwd[..., :-1], (1, 0)).flip(-1)  # (B, D, L): strictly-later inputs only
    return fwd + bwd


# main class -----------------------------------------------------------------------------------


class S4D(nn.Module):
    """Bidirectional S4D mixer: SSM convolution + D skip, GELU, then Linear(D -> 2D) and GLU."""

    def __init__(self, cfg: S4DCfg):
        super().__init__()
        self.kernel = S4DKernel(cfg)
        self.skip = nn.Parameter(torch.randn(cfg.d_model))  # the "D" term
        self.out = nn.Linear(cfg.d_model, 2 * cfg.d_model)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, L, D), mask: (B, L) bool -> (B, L, D). Padded inputs are zeroed, so a real
        position's output does not depend on how much padding follows it."""
        u = x.masked_fill(~mask[..., None], 0.0).transpose(1, 2)  # (B, D, L)
        k = self.kernel(u.shape[-1])  # (2, D, L)
        y = bidirectional_conv(u, k) + u * self.skip[:, None]  # (B, D, L)
        y = F.gelu(y).transpose(1, 2)  # (B, L, D)
        return F.glu(self.out(y), dim=-1)  # (B, L, D)

    def kernels(self, L: int) -> torch.Tensor:
        """The layer's convolution kernels (2, D, L), for kernel-decay analysis."""
        return self.kernel(L)
