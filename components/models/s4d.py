"""Diagonal state-space layers as FFT convolutions, with their step-by-step recurrence twin.

- S4D (Gu et al. 2022, "On the Parameterization and Initialization of Diagonal State Space
  Models"): A diagonal complex, ZOH discretisation with a learned dt, B = 1; S4D-Lin
  (A_n = -1/2 + i*pi*n) or S4D-Inv (A_n = -1/2 + i*N/pi*(N/(2n+1) - 1), N = d_state)
  initialisation, over the d_state / 2 modes kept (the others are their conjugates).
- DLR (Gupta et al. 2022, diagonal linear RNN): x_t = Lambda x_{t-1} + u_t, y_t = Re(C x_t), with
  Lambda diagonal complex learned directly (no dt, no discretisation). "Structured" init sets
  Lambda = exp(dt * A) with S4D-Lin's A, so both start from the same kernel family.
Both are bidirectional by default (a second kernel, flipped), or causal.

Legend: B batch, L length, D model width (= SSM channels), N complex modes (d_state / 2),
C kernel directions (2: forward and backward; 1: causal).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from components.config import DLRCfg, S4DCfg


def optim_hint(p: nn.Parameter, lr: float) -> nn.Parameter:
    """Mark a parameter for its own learning rate and no weight decay (read by training.optim)."""
    p._optim = {"lr": lr, "weight_decay": 0.0}
    return p


# helpers --------------------------------------------------------------------------------------


def _log_dt(cfg, D: int) -> torch.Tensor:
    return torch.rand(D) * (math.log(cfg.dt_max) - math.log(cfg.dt_min)) + math.log(cfg.dt_min)  # (D,)


def _imag_init(cfg, D: int, N: int) -> torch.Tensor:
    """(D, N) imaginary parts for the N = d_state / 2 kept modes n = 0..N-1."""
    n = torch.arange(N).float()
    if getattr(cfg, "init", "lin") == "inv":
        full = cfg.d_state  # S4D-Inv is stated for the full state size (state-spaces dplr.py)
        imag = full / math.pi * (full / (2 * n + 1) - 1)
    else:
        imag = math.pi * n  # S4D-Lin
    return imag.repeat(D, 1)  # (D, N)


class S4DKernel(nn.Module):
    """Kernel of each direction from diagonal (A, B=1, C, dt), ZOH-discretised."""

    def __init__(self, cfg: S4DCfg, directions: int):
        super().__init__()
        D, N = cfg.d_model, cfg.d_state // 2
        C = torch.randn(directions, D, N, dtype=torch.cfloat)  # (C, D, N)
        self.log_dt = optim_hint(nn.Parameter(_log_dt(cfg, D)), cfg.ssm_lr)
        self.C = optim_hint(nn.Parameter(torch.view_as_real(C)), cfg.ssm_lr)  # (C, D, N, 2)
        self.log_A_real = optim_hint(nn.Parameter(torch.log(0.5 * torch.ones(D, N))), cfg.ssm_lr)
        self.A_imag = optim_hint(nn.Parameter(_imag_init(cfg, D, N)), cfg.ssm_lr)

    def discrete(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(log of the state transition (D, N), output map (C, D, N)) with B-bar folded into C."""
        dt = self.log_dt.exp()  # (D,)
        A = -self.log_A_real.exp() + 1j * self.A_imag  # (D, N)
        dtA = A * dt[:, None]  # (D, N)
        return dtA, torch.view_as_complex(self.C) * (dtA.exp() - 1.0) / A  # (D, N), (C, D, N)

    def forward(self, L: int) -> torch.Tensor:
        """-> kernels (C, D, L): K[c, d, l] = 2 Re(sum_n Cbar[c, d, n] exp(logA[d, n] * l)).

        Fast path: write l = q T + t (T ~ sqrt L), so z^l = z^(qT) z^t and the sum over modes is
        one real batched GEMM per channel, (C Q, 2N) @ (2N, T), over 2 Re(a b) = 2 (Re a Re b -
        Im a Im b). Memory O(D N sqrt L + D L) instead of the (D, N, L) Vandermonde of
        `s4d_kernel_ref`, and the sum runs at GEMM speed instead of as L N complex exps. Always
        fp32: under bf16 autocast the GEMM would round the kernel, and CUDA's FFT takes no bf16."""
        log_A, C = self.discrete()  # (D, N), (C, D, N)
        T = math.isqrt(max(L, 1) - 1) + 1
        Q = -(-L // T)
        ar = torch.arange(max(T, Q), device=log_A.device)
        inner = (log_A[..., None] * ar[:T]).exp()  # (D, N, T): z^t
        outer = C[..., None] * (log_A[..., None] * (ar[:Q] * T)).exp()  # (C, D, N, Q): C z^(qT)
        lhs = torch.cat([outer.real, -outer.imag], dim=2).permute(1, 0, 3, 2)  # (D, C, Q, 2N)
        rhs = torch.cat([inner.real, inner.imag], dim=1)  # (D, 2N, T)
        with torch.autocast(log_A.device.type, enabled=False):
            k = 2 * (lhs.reshape(lhs.shape[0], -1, lhs.shape[-1]) @ rhs)  # (D, C Q, T)
        return k.reshape(k.shape[0], C.shape[0], Q * T)[..., :L].transpose(0, 1)  # (C, D, L)


class DLRKernel(S4DKernel):
    """Kernel of a diagonal linear RNN: K[l] = 2 Re(C Lambda^l), Lambda = exp(-exp(nu) + i theta)."""

    def __init__(self, cfg: DLRCfg, directions: int):
        nn.Module.__init__(self)
        D, N = cfg.d_model, cfg.d_state // 2
        dt = _log_dt(cfg, D).exp()[:, None]  # (D, 1) structured init: Lambda = exp(dt * A_lin)
        C = torch.randn(directions, D, N, dtype=torch.cfloat) * dt  # (C, D, N) ~ S4D C-bar at init
        self.log_neg_re = optim_hint(nn.Parameter(torch.log(0.5 * dt * torch.ones(D, N))), cfg.ssm_lr)
        self.theta = optim_hint(nn.Parameter(dt * _imag_init(cfg, D, N)), cfg.ssm_lr)
        self.C = optim_hint(nn.Parameter(torch.view_as_real(C)), cfg.ssm_lr)

    def discrete(self) -> tuple[torch.Tensor, torch.Tensor]:
        return -self.log_neg_re.exp() + 1j * self.theta, torch.view_as_complex(self.C)  # (D, N), (C, D, N)


KERNELS = {"s4d": S4DKernel, "dlr": DLRKernel}


def ssm_conv(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """u: (B, D, L), k: (C, D, L) -> (B, D, L), one FFT convolution of size 2L:
    y_t = sum_{s<=t} k[0, t-s] u_s  (+ sum_{s>t} k[1, s-t-1] u_s when C = 2)."""
    L = u.shape[-1]
    if u.dtype in (torch.bfloat16, torch.float16):  # under autocast; CUDA's FFT takes neither
        u = u.float()
    kk = F.pad(k[0], (0, L))  # (D, 2L)
    if k.shape[0] == 2:
        kk = kk + F.pad(k[1].flip(-1), (L, 0))
    y = torch.fft.irfft(torch.fft.rfft(u, n=2 * L) * torch.fft.rfft(kk, n=2 * L), n=2 * L)  # (B, D, 2L)
    return y[..., :L]  # (B, D, L)


# reference ------------------------------------------------------------------------------------


def s4d_kernel_ref(kernel: S4DKernel, L: int) -> torch.Tensor:
    """`S4DKernel.forward` as written in the S4D paper's listing: the (D, N, L) Vandermonde of
    every power, contracted with Cbar. -> (C, D, L)."""
    log_A, C = kernel.discrete()
    powers = (log_A[..., None] * torch.arange(L, device=log_A.device)).exp()  # (D, N, L)
    return 2 * torch.einsum("cdn, dnl -> cdl", C, powers).real  # (C, D, L)


def ssm_recurrence_ref(kernel: S4DKernel, u: torch.Tensor) -> torch.Tensor:
    """The same SSM run as explicit recurrences x_t = A x_{t-1} + u_t, y_t = 2 Re(C x_t); the
    backward one (if any) runs on the reversed input, shifted by one. u: (B, D, L) -> (B, D, L)."""
    log_A, C = kernel.discrete()  # (D, N), (C, D, N)
    dA = log_A.exp()  # (D, N)
    B, D, L = u.shape

    def scan(seq: torch.Tensor, Cd: torch.Tensor) -> torch.Tensor:  # (B, D, L) -> (B, D, L)
        x = torch.zeros(B, D, dA.shape[-1], dtype=dA.dtype, device=u.device)  # (B, D, N)
        ys = []
        for t in range(L):
            x = dA * x + seq[..., t, None]  # (B, D, N)
            ys.append(2 * torch.einsum("dn, bdn -> bd", Cd, x).real)  # (B, D)
        return torch.stack(ys, dim=-1)  # (B, D, L)

    y = scan(u, C[0])
    if C.shape[0] == 2:
        bwd = scan(u.flip(-1), C[1])  # reversed time; output at t' includes u at t'
        y = y + F.pad(bwd[..., :-1], (1, 0)).flip(-1)  # strictly-later inputs only
    return y


# main class -----------------------------------------------------------------------------------


class S4D(nn.Module):
    """Diagonal SSM mixer (S4D or DLR kernel): convolution + D skip, GELU, Linear(D -> 2D), GLU."""

    def __init__(self, cfg: S4DCfg | DLRCfg):
        super().__init__()
        self.kernel = KERNELS[cfg.kind](cfg, directions=2 if cfg.bidirectional else 1)
        self.skip = nn.Parameter(torch.randn(cfg.d_model))  # the "D" term
        self.out = nn.Linear(cfg.d_model, 2 * cfg.d_model)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, L, D), mask: (B, L) bool -> (B, L, D). Padded inputs are zeroed, so a real
        position's output does not depend on how much padding follows it."""
        u = x.masked_fill(~mask[..., None], 0.0).transpose(1, 2)  # (B, D, L)
        y = ssm_conv(u, self.kernel(u.shape[-1])) + u * self.skip[:, None]  # (B, D, L)
        y = F.gelu(y).transpose(1, 2)  # (B, L, D)
        return F.glu(self.out(y), dim=-1)  # (B, L, D)

    def kernels(self, L: int) -> torch.Tensor:
        """The layer's convolution kernels (C, D, L), for the kernel-decay analysis."""
        return self.kernel(L)
