"""`make bench`: speed and memory of every architecture kind at long lengths, beside two anchors
measured in the same run (Hugging Face BERT with SDPA attention, and a minimal S4D written after
the S4D paper's listing), MFU against this machine's measured fp32 GEMM rate, bf16 against fp32,
and where the smoke grid's wall time goes under `dvc repro`.

    .venv/bin/python benchmarks/bench.py [--lengths 1024 4096 16384] [--steps 3] [--skip-grid]

Every model: d_model 64, 2 layers, 4 heads, feed-forward x2 (the `cpu` profile's size), a
classification head, one AdamW step on random tokens; `--tokens` per step (batch = tokens / L,
at least 1). Each measurement runs in its own subprocess, so its peak memory is its own: on CPU
the highest RSS sampled during the warm-up and timed steps above the RSS just before them
(activations, gradients, optimizer state), on CUDA torch's peak allocation. A configuration whose L x L tensors alone would pass
`--max-gib` is skipped with that reason instead of swapping the machine (LaS's heads on its dense
path, the one place left that materializes them; everything else runs on SDPA's fused kernels).

Writes reports/benchmarks.md and reports/benchmarks/bench.csv (+ bench_grid.csv).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

from _shared import child, install, markdown, stamped  # benchmarks/_shared.py (this script's folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SIZE = dict(d_model=64, n_layers=2, n_heads=4, ff_mult=2)
VOCAB, CLASSES = 20, 10
MODELS = {
    "transformer": "ours: pre-LN Transformer on SDPA",
    "transformer_local": "ours: block-local attention (blocks of 64, each sees itself and its neighbours)",
    "las": "ours: LaS (fast path)",
    "transformer_causal": "ours: causal Transformer on SDPA",
    "las_causal": "ours: causal LaS (fast path)",
    "las_chunk": "ours: LaS inside chunks of 64",
    "s4d": "ours: S4D (FFT convolution, bidirectional)",
    "s4d_uni": "ours: S4D, one direction (like the minimal S4D anchor)",
    "dlr": "ours: diagonal linear RNN (FFT convolution)",
    "lstm": "ours: LSTM",
    "hf_bert_sdpa": "anchor: Hugging Face BertModel, attn_implementation='sdpa'",
    "s4d_minimal": "anchor: minimal S4D after the S4D paper's listing (post-norm, GELU, GLU output)",
}
LINEAR = ("s4d", "dlr", "las_chunk", "transformer_local", "lstm")  # time and memory should grow linearly in L


# ---------------------------------------------------------------------------------------------
# the anchors


def hf_bert(L: int):
    """BERT (transformers) at our size, SDPA attention, mean-pooled into a classification head."""
    import torch
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=VOCAB, hidden_size=SIZE["d_model"], num_hidden_layers=SIZE["n_layers"],
                     num_attention_heads=SIZE["n_heads"], intermediate_size=SIZE["ff_mult"] * SIZE["d_model"],
                     max_position_embeddings=L, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    cfg._attn_implementation = "sdpa"

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert, self.head = BertModel(cfg, add_pooling_layer=False), torch.nn.Linear(cfg.hidden_size, CLASSES)

        def forward(self, x, mask):
            return self.head(self.bert(input_ids=x).last_hidden_state.mean(1))

    return Model()


def minimal_s4d():
    """A minimal S4D (Gu et al. 2022, the paper's listing): per channel a diagonal SSM with S4D-Lin
    init, its kernel by a Vandermonde product, FFT convolution, D skip, GELU, GLU output; post-norm
    residual blocks. Written here from the paper, not from our components."""
    import torch
    from torch import nn

    class S4DKernel(nn.Module):
        def __init__(self, d, n=64, dt_min=1e-3, dt_max=1e-1):
            super().__init__()
            self.log_dt = nn.Parameter(torch.rand(d) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
            self.C = nn.Parameter(torch.view_as_real(torch.randn(d, n // 2, dtype=torch.cfloat)))
            self.log_A_real = nn.Parameter(torch.log(0.5 * torch.ones(d, n // 2)))
            self.A_imag = nn.Parameter(math.pi * torch.arange(n // 2).repeat(d, 1).float())

        def forward(self, L):
            dt = torch.exp(self.log_dt)  # (H)
            C, A = torch.view_as_complex(self.C), -torch.exp(self.log_A_real) + 1j * self.A_imag  # (H N)
            dtA = A * dt[:, None]
            K = dtA[..., None] * torch.arange(L, device=A.device)  # (H N L)
            C = C * (torch.exp(dtA) - 1.0) / A
            return 2 * torch.einsum("hn, hnl -> hl", C, torch.exp(K)).real  # (H L)

    class S4DLayer(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.kernel, self.D = S4DKernel(d), nn.Parameter(torch.randn(d))
            self.out = nn.Sequential(nn.Conv1d(d, 2 * d, 1), nn.GLU(dim=-2))

        def forward(self, u):  # (B H L)
            L = u.size(-1)
            k = self.kernel(L)
            y = torch.fft.irfft(torch.fft.rfft(u, n=2 * L) * torch.fft.rfft(k, n=2 * L), n=2 * L)[..., :L]
            return self.out(torch.nn.functional.gelu(y + u * self.D[:, None]))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            d = SIZE["d_model"]
            self.embed, self.head = nn.Embedding(VOCAB, d), nn.Linear(d, CLASSES)
            self.layers = nn.ModuleList([S4DLayer(d) for _ in range(SIZE["n_layers"])])
            self.norms = nn.ModuleList([nn.LayerNorm(d) for _ in range(SIZE["n_layers"])])

        def forward(self, x, mask):
            h = self.embed(x).transpose(-1, -2)  # (B H L)
            for layer, norm in zip(self.layers, self.norms):
                h = norm((layer(h) + h).transpose(-1, -2)).transpose(-1, -2)
            return self.head(h.mean(-1))

    return Model()


def build(kind: str, L: int):
    from components.config import DLRCfg, LaSCfg, LaSChunkCfg, LSTMCfg, S4DCfg, TransformerCfg
    from components.models import Classifier, build_backbone, new_head

    if kind == "hf_bert_sdpa":
        return hf_bert(L)
    if kind == "s4d_minimal":
        return minimal_s4d()
    ssm = dict(d_model=SIZE["d_model"], n_layers=SIZE["n_layers"], d_state=64)
    cfg = {"transformer": TransformerCfg(**SIZE), "transformer_local": TransformerCfg(**SIZE, block_size=64),
           "las": LaSCfg(**SIZE), "transformer_causal": TransformerCfg(**SIZE, causal=True),
           "las_causal": LaSCfg(**SIZE, causal=True), "las_chunk": LaSChunkCfg(**SIZE, chunk=64), "s4d": S4DCfg(**ssm),
           "s4d_uni": S4DCfg(**ssm, bidirectional=False), "dlr": DLRCfg(**ssm), "lstm": LSTMCfg(d_model=SIZE["d_model"], n_layers=SIZE["n_layers"])}[kind]
    return new_head(Classifier, build_backbone(cfg, VOCAB, 0, 0), CLASSES, 1)


# ---------------------------------------------------------------------------------------------
# FLOPs per token of one training step (forward + backward = 3 x forward)


def flops_per_token(kind: str, model, L: int, batch: int) -> float:
    """Useful FLOPs per token of one training step (forward + backward = 3 x forward):
    - dense: 6 x the parameters a token is multiplied by (embeddings are lookups; an SSM's kernel
      parameters never touch a token, they build the kernel, counted below);
    - attention: 12 x keys x d per layer (q.k and the weighted sum of values, 2 x 2 x keys x d
      forward), keys = L for full attention, LaS and BERT (L / 2 on average when causal), 3 x 64 for
      block-local, 64 for LaS-chunk;
    - FFT convolution, per channel per layer: a real FFT of the input and an inverse real FFT of
      length 2L, 1.25 x 2L x log2(2L) flops each, x 3 with the backward, per token / L;
    - the SSM kernel, per channel, state mode and direction: about 8 real flops per position (a
      complex power and multiply-add) x 3, once per step, so shared by the step's tokens.
    The LSTM's recurrent matmuls are in its parameters. Padding, masks and LaS's pooling are not
    useful work and are not counted."""
    import torch

    kernel_mods = [m for m in model.modules() if type(m).__name__.endswith("Kernel")]
    kernel_params = sum(p.numel() for m in kernel_mods for p in m.parameters())
    embeds = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding))
    dense = 6 * (sum(p.numel() for p in model.parameters()) - embeds - kernel_params)
    d, layers = SIZE["d_model"], SIZE["n_layers"]
    keys = {"transformer": L, "las": L, "hf_bert_sdpa": L, "transformer_causal": L / 2, "las_causal": L / 2,
            "transformer_local": min(L, 3 * 64), "las_chunk": min(L, 64)}
    if kind in keys:
        return dense + 12 * keys[kind] * d * layers
    if kernel_mods:  # S4D, DLR and the minimal S4D: C holds (directions, channels, modes) complex values
        modes = sum(m.C.numel() // 2 for m in kernel_mods) / layers  # directions x channels x modes per layer
        fft = 3 * 2 * 1.25 * 2 * L * math.log2(2 * L) / L * d * layers
        kernel = 3 * 8 * modes * L * layers / (batch * L)
        return dense + fft + kernel
    return dense


def gemm_peak(threads: int, n: int = 2048, reps: int = 10) -> float:
    """fp32 GFLOP/s of an n x n matmul on the device the models run on (this process's threads on
    a CPU): the MFU denominator."""
    import torch

    from components.stages.common import resolve_device

    torch.set_num_threads(threads)
    device = resolve_device("auto")
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    a @ b
    sync()
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync()
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


# ---------------------------------------------------------------------------------------------
# one measurement (in its own process)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _trainer(kind: str, L: int, batch: int, bf16: bool):
    """-> (model, one training step on fixed random tokens, device)."""
    import torch

    from components.objectives import classification_loss
    from components.stages.common import resolve_device
    from components.training.optim import build_optimizer

    torch.manual_seed(0)
    device = resolve_device("auto")
    model = build(kind, L).to(device)
    opt = build_optimizer(model, 1e-3, 0.01, (0.9, 0.98))
    g = torch.Generator().manual_seed(0)
    x = torch.randint(2, VOCAB, (batch, L), generator=g).to(device)
    mask = torch.ones(batch, L, dtype=torch.bool, device=device)
    y = torch.randint(0, CLASSES, (batch,), generator=g).to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def step():
        with autocast:
            loss, _, _ = classification_loss(model(x, mask), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return model, step, device


def _timed(step, device, steps: int) -> float:
    """Seconds per step over `steps` calls."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def measure(kind: str, L: int, batch: int, steps: int, bf16: bool, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    model, step, device = _trainer(kind, L, batch, bf16)
    before, high, sampling = _rss_bytes(), [0], threading.Event()  # after the model, optimizer state and imports

    def sample():  # the RSS high-water mark of warm-up and timed steps (ru_maxrss would include the imports)
        while not sampling.is_set():
            high[0] = max(high[0], _rss_bytes())
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    step()  # warm-up (kernel choice, allocator, cached decay factors)
    seconds = _timed(step, device, steps)
    sampling.set()
    sampler.join()
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else high[0] - before
    return {"kind": kind, "L": L, "batch": batch, "dtype": "bf16" if bf16 else "fp32", "device": device.type,
            "s_per_step": seconds, "tokens_per_s": batch * L / seconds, "peak_mib": peak / 2 ** 20,
            "params": sum(p.numel() for p in model.parameters()),
            "flops_per_token": flops_per_token(kind, model, L, batch)}


def measure_pair(kind: str, anchor: str, L: int, batch: int, steps: int, rounds: int, threads: int) -> dict:
    """Both models in one process, timed in alternating rounds of `steps` steps (the order swapped
    every round, so a drift in the machine's speed falls on both sides): -> the ratio of each
    round's seconds per step, kind / anchor."""
    import torch

    torch.set_num_threads(threads)
    (_, a, device), (_, b, _) = (_trainer(k, L, batch, False) for k in (kind, anchor))
    a(), b()  # warm-up
    ratios = []
    for r in range(rounds):
        first, second = (a, b) if r % 2 == 0 else (b, a)
        t1, t2 = _timed(first, device, steps), _timed(second, device, steps)
        ratios.append(t1 / t2 if r % 2 == 0 else t2 / t1)
    return {"ratios": ratios}


# ---------------------------------------------------------------------------------------------
# the driver


def _child(mode: str, spec: dict) -> dict:
    """Run `measure` (mode --one) or `measure_pair` (--pair) in a subprocess: {"skipped": why} if it failed."""
    done = child([sys.executable, __file__, mode, json.dumps(spec)], cwd=ROOT)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"skipped": f"failed (exit {done.returncode}): {tail}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_one(kind: str, L: int, batch: int, steps: int, bf16: bool, threads: int) -> dict:
    spec = {"kind": kind, "L": L, "batch": batch, "steps": steps, "bf16": bf16, "threads": threads}
    return {"kind": kind, "L": L, "batch": batch, "dtype": "bf16" if bf16 else "fp32"} | _child("--one", spec)


PAIRS = (("las", "transformer"), ("las_causal", "transformer_causal"))  # the 1.5x targets


def paired_rounds(lengths: list[int], rounds: int, steps: int, tokens: int, threads: int, kinds: list[str],
                  max_gib: float) -> pd.DataFrame:
    """Each pair (kind, anchor) at each length side by side in one process (`measure_pair`), so a
    slow minute of this machine slows both sides of a ratio: the median ratio of the seconds per
    step over the rounds, and its range."""
    rows = []
    for kind, anchor in PAIRS:
        for L in lengths:
            batch = max(1, tokens // L)
            if kind not in kinds or anchor not in kinds or too_big(kind, L, batch, max_gib) or too_big(anchor, L, batch, max_gib):
                continue
            spec = {"kind": kind, "anchor": anchor, "L": L, "batch": batch, "steps": steps, "rounds": rounds,
                    "threads": threads}
            done = _child("--pair", spec)
            row = {"ratio": f"{kind} / {anchor}", "L": L, "batch": batch}
            if "ratios" in done:
                r = done["ratios"]
                row |= {"rounds": len(r), "median": f"{statistics.median(r):.2f}x",
                        "range": f"{min(r):.2f}x - {max(r):.2f}x"}
            else:
                row |= {"note": done["skipped"]}
            rows.append(row)
            print(row, flush=True)
    return pd.DataFrame(rows)


def too_big(kind: str, L: int, batch: int, max_gib: float) -> str | None:
    """Why a configuration is not run: below SDPA_FROM positions LaS's heads hold (B, H, L, L)
    scores, weights and their gradients (about 6 such tensors per layer in the backward); from
    there no head does (SDPA, or banded where the decay leaves fp32)."""
    if kind in ("las", "las_causal"):
        from components.models import las

        dense = SIZE["n_heads"] if L < las.SDPA_FROM else 0
        gib = 6 * batch * dense * L * L * 4 / 2 ** 30
        if gib > max_gib:
            return f"skipped: its L x L tensors alone need ~{gib:.0f} GiB (over --max-gib {max_gib:g})"
    return None


PHASES = (  # (label, the first output line of the phase), in the order `dvc repro` prints them
    ("DVC start", None),
    ("materialize stage", re.compile(r"Running stage 'materialize")),
    ("grid: imports, MLflow store", re.compile(r"Running stage 'grid'")),
    ("grid: Prefect's local server starts", re.compile(r"Starting temporary server")),
    ("grid: the flow (training, MLflow, evaluation)", re.compile(r"Beginning flow run")),
    ("grid: server stops, process exits, lock", re.compile(r"Flow run '.*' - Finished in state")),
    ("report stage", re.compile(r"Running stage 'report'")),
)


def phases(t0: float, lines: list[tuple[float, str]], end: float) -> dict:
    """Seconds per phase of one `dvc repro` from its stamped output: each phase runs from its
    first line (`PHASES`, searched after the previous phase's line) to the next phase's. A phase
    whose line never came is absent and its seconds go to the phase before it (a quieter Prefect
    log level, say, hides the server's lines)."""
    starts, after = [(PHASES[0][0], t0)], 0
    for label, pattern in PHASES[1:]:
        hit = next((i for i in range(after, len(lines)) if pattern.search(lines[i][1])), None)
        if hit is not None:
            starts.append((label, lines[hit][0]))
            after = hit + 1
    bounds = [t for _, t in starts[1:]] + [end]
    return {label: round(b - a, 2) for (label, a), b in zip(starts, bounds)}


def grid_split(steps_note: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The smoke profile under `dvc repro` in a fresh copy of the committed tree: wall time, the
    training inside it (every phase's own seconds from the records), the rest (Prefect, MLflow,
    DVC, process starts, data loading, evaluation); a second `dvc repro` with nothing changed; and
    a third from nothing again, on the Prefect home the first one made, as any later run finds it.
    -> (that split, the seconds of each phase (`PHASES`) of every run)."""
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "MLFLOW_DISABLE_TELEMETRY": "true",
           "DO_NOT_TRACK": "true", "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DVC_NO_ANALYTICS": "1",
           "PYTHONUNBUFFERED": "1"}  # lines arrive when they are printed: their times split the phases
    env.pop("PREFECT_API_URL", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    with tempfile.TemporaryDirectory(prefix="arena-bench-grid-") as tmp:
        repo = Path(tmp) / "repo"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True, capture_output=True)
        env["PREFECT_HOME"] = str(Path(tmp) / "prefect")
        env["PYTHONPATH"] = str(repo)  # the clone's code, not the editable install's working tree
        for cmd in ([str(BIN / "arena"), "profile", "smoke"], [str(BIN / "dvc"), "config", "--local", "core.analytics", "false"]):
            subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True)
        raw = (repo / "params.yaml").read_text()  # one unit at a time: the loops' clocks then never overlap
        one = re.sub(r"(\nprefect:[^\n]*\n  concurrency: )\d+", r"\g<1>1", raw, count=1)
        if one == raw:
            raise RuntimeError("could not set prefect.concurrency: 1 in the smoke profile's params.yaml")
        (repo / "params.yaml").write_text(one)
        rows, split = [], []
        runs = [("dvc repro (smoke profile, from nothing)", True),
                ("dvc repro again, nothing changed", False),
                ("dvc repro from nothing again, Prefect's database already made (any later run on this machine)", True)]
        for label, fresh in runs:
            if fresh and rows:  # every output, the DVC cache and the MLflow store go; params.yaml stays the smoke one
                subprocess.run(["git", "clean", "-fdxq", "-e", ".dvc/config.local"], cwd=repo, check=True)
                subprocess.run(["git", "checkout", "-q", "--", "dvc.lock", "reports"], cwd=repo, check=True)
            t0 = time.perf_counter()
            code, lines = stamped([str(BIN / "dvc"), "repro"], cwd=repo, env=env)
            end = time.perf_counter()
            wall = end - t0
            if code != 0:
                last = next((line.strip() for _, line in reversed(lines) if line.strip()), "")
                raise RuntimeError(f"dvc repro exited {code}: {last}")
            records = [json.loads(p.read_text()) for p in (repo / "artifacts").rglob("info.json")]
            # a finetuning record repeats its start's pretrain_seconds: count those from the starts only
            train = sum((r.get("finetune_seconds") if "finetune_seconds" in r else r.get("pretrain_seconds")) or 0.0
                        for r in records)
            rows.append({"run": label, "wall_s": round(wall, 2), "training_s": round(train, 2) if fresh else 0.0})
            rows[-1]["other_s"] = round(wall - rows[-1]["training_s"], 2)
            rows[-1]["other_share"] = round(rows[-1]["other_s"] / wall, 3)
            split.append({"run": label, **phases(t0, lines, end)})
        steps_note.append("one unit at a time (`prefect.concurrency: 1`, so the loops' clocks never overlap); "
                          "training seconds are the training loops' own clocks (pretraining and finetuning of "
                          "every trial and seed, their periodic validation included); everything else (DVC, "
                          "data generation, Prefect's local server, MLflow, process starts, test evaluation, "
                          "the report) is orchestration. A Prefect home's first flow run creates its database "
                          "(its migrations slow the server's start: the first run against the third below); later runs on "
                          "the same machine start from it")
    return pd.DataFrame(rows), pd.DataFrame(split).reindex(columns=["run"] + [label for label, _ in PHASES])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--pair", help=argparse.SUPPRESS)
    ap.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384])
    ap.add_argument("--kinds", nargs="+", default=list(MODELS))
    ap.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    ap.add_argument("--tokens", type=int, default=8192, help="tokens per step: batch = tokens // L (at least 1)")
    ap.add_argument("--max-gib", type=float, default=12.0)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--skip-grid", action="store_true", help="leave out the smoke grid's orchestration split")
    ap.add_argument("--rounds", type=int, default=8,
                    help="alternating rounds of the LaS ratios, side by side in one process (even: each model goes first as often; 0: none)")
    args = ap.parse_args()
    if args.one:
        spec = json.loads(args.one)
        print(json.dumps(measure(spec["kind"], spec["L"], spec["batch"], spec["steps"], spec["bf16"], spec["threads"])))
        return
    if args.pair:
        print(json.dumps(measure_pair(**json.loads(args.pair))))
        return
    install()

    import torch

    peak = gemm_peak(args.threads)
    print(f"fp32 GEMM 2048: {peak:.1f} GFLOP/s on {args.threads} threads", flush=True)
    rows = []
    for L in args.lengths:
        batch = max(1, args.tokens // L)
        for kind in args.kinds:
            why = too_big(kind, L, batch, args.max_gib)
            row = ({"kind": kind, "L": L, "batch": batch, "dtype": "fp32", "skipped": why} if why
                   else run_one(kind, L, batch, max(1, args.steps if L < 16384 else args.steps - 1), False, args.threads))
            rows.append(row)
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    for kind in ("transformer", "las_chunk", "s4d", "hf_bert_sdpa"):  # bf16 autocast against fp32 at L 1K
        if kind in args.kinds:
            rows.append(run_one(kind, 1024, max(1, args.tokens // 1024), args.steps, True, args.threads))
            print(rows[-1], flush=True)
    for row in rows:
        row["series"] = "tokens"
    lo, hi = min(args.lengths), max(args.lengths)
    for kind in LINEAR:  # the same kinds at one sequence per step, where the batch is not already 1
        for L in (lo, hi):
            if kind in args.kinds and args.tokens // L > 1:
                rows.append({**run_one(kind, L, 1, max(10, args.steps), False, args.threads), "series": "batch 1"})
                print(rows[-1], flush=True)
    paired = paired_rounds([L for L in args.lengths if L < 16384], args.rounds, args.steps, args.tokens,
                           args.threads, args.kinds, args.max_gib) if args.rounds else pd.DataFrame()
    df = pd.DataFrame(rows)
    for col in ("skipped", "s_per_step", "tokens_per_s", "peak_mib", "flops_per_token"):
        if col not in df:
            df[col] = pd.NA
    ok = df["skipped"].isna()
    df.loc[ok, "mfu"] = df.loc[ok, "flops_per_token"] * df.loc[ok, "tokens_per_s"] / (peak * 1e9)
    fp32 = df[ok & (df["dtype"] == "fp32") & (df["series"] == "tokens")].set_index(["kind", "L"]).sort_index()
    single = df[ok & (df["series"] == "batch 1")].set_index(["kind", "L"]).sort_index()
    single = pd.concat([single, fp32[fp32["batch"] == 1]]).sort_index()  # one sequence per step, every length
    df["us_per_token"] = 1e6 / df["tokens_per_s"]

    def ratio(kind, anchor, L) -> str:
        try:
            return f"{fp32.loc[(kind, L), 's_per_step'] / fp32.loc[(anchor, L), 's_per_step']:.2f}x"
        except KeyError:  # one of the two was skipped or not asked for
            return "–"

    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    out = ROOT / "reports" / "benchmarks"
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "bench.csv.tmp", index=False)  # kept even if the grid part below fails
    os.replace(out / "bench.csv.tmp", out / "bench.csv")
    notes: list[str] = []
    try:
        grid, split = (None, None) if args.skip_grid else grid_split(notes)
    except RuntimeError as err:
        grid, split, notes = None, None, [f"the smoke grid failed: {err}"]
    where = (f"{platform.processor() or platform.machine()}, {args.threads} threads, torch {torch.__version__}, "
             f"commit {commit}, {time.strftime('%Y-%m-%d')}")
    if len(paired):
        paired.to_csv(out / "bench_pairs.csv.tmp", index=False)
        os.replace(out / "bench_pairs.csv.tmp", out / "bench_pairs.csv")
    if grid is not None:
        grid.merge(split, on="run").to_csv(out / "bench_grid.csv.tmp", index=False)
        os.replace(out / "bench_grid.csv.tmp", out / "bench_grid.csv")
    (ROOT / "reports" / "benchmarks.md.tmp").write_text(render(df, fp32, single, ratio, peak, where, args, grid, split, notes, paired))
    os.replace(ROOT / "reports" / "benchmarks.md.tmp", ROOT / "reports" / "benchmarks.md")
    print((ROOT / "reports" / "benchmarks.md").read_text())


def render(df, fp32, single, ratio, peak, where, args, grid, split, notes, paired) -> str:
    show = df[(df["dtype"] == "fp32") & (df["series"] == "tokens")].copy()
    table = pd.DataFrame({
        "kind": show["kind"], "L": show["L"], "batch": show["batch"],
        "s / step": show["s_per_step"].map(lambda v: f"{v:.3f}" if pd.notna(v) else ""),
        "tokens / s": show["tokens_per_s"].map(lambda v: f"{v:,.0f}" if pd.notna(v) else ""),
        "peak MiB": show["peak_mib"].map(lambda v: f"{v:,.0f}" if pd.notna(v) else ""),
        "MFU": show["mfu"].map(lambda v: f"{100 * v:.1f}%" if pd.notna(v) else ""),
        "note": show["skipped"].fillna("")})
    lines = [f"# Benchmarks ({where})", "",
             f"`benchmarks/bench.py` (`make bench`). Every model: d_model 64, 2 layers, 4 heads, feed-forward x2, "
             f"a classification head, one AdamW training step on {args.tokens} random tokens (batch = {args.tokens} / L, "
             f"at least 1), {args.steps} timed steps after one warm-up ({max(1, args.steps - 1)} at L 16K), each configuration in its own process. "
             f"MFU is useful FLOPs per second over this machine's fp32 GEMM rate measured in the same run "
             f"({peak:.1f} GFLOP/s, 2048 x 2048 on {args.threads} threads). FLOPs per token of a training step "
             f"(forward + backward = 3 x forward): 6 x the parameters a token is multiplied by; attention's "
             f"12 x keys x d per layer (all L keys for the Transformer, LaS and BERT, L / 2 when causal; 3 x 64 for block-local; 64 "
             f"for LaS-chunk); an SSM's FFT convolution (a real FFT and its inverse of length 2L, 1.25 x 2L "
             f"log2 2L each, per channel, spread over the sequence's L tokens) and its kernel (8 flops per "
             f"position, channel, mode and direction, once per step). "
             f"Peak memory is the highest RSS sampled (every 10 ms) during the warm-up and timed steps above the RSS before them "
             f"(activations, gradients, optimizer state).", "",
             f"## Every kind at L {', '.join(map(str, args.lengths))}", "", markdown(table), ""]
    anchors = []
    for L in args.lengths:
        anchors.append({"L": L,
                        "Transformer / HF BERT (sdpa)": ratio('transformer', 'hf_bert_sdpa', L),
                        "LaS / Transformer": ratio('las', 'transformer', L),
                        "causal LaS / causal Transformer": ratio('las_causal', 'transformer_causal', L),
                        "LaS-chunk / Transformer": ratio('las_chunk', 'transformer', L),
                        "S4D (one direction) / minimal S4D": ratio('s4d_uni', 's4d_minimal', L)})
    lines += ["## Side by side (seconds per step, ratio < 1 = ours faster)", "", markdown(pd.DataFrame(anchors)), ""]
    if len(paired):
        lines += [f"The LaS ratios again, each pair side by side in one process (the table above runs every "
                  f"configuration in its own process, minutes apart): both models built, one warm-up step each, "
                  f"then {args.rounds} rounds of {args.steps} timed steps per model, alternating which goes first, "
                  f"so that this machine's slow minutes fall on both sides of a ratio. The median of the rounds' "
                  f"ratios and their range.", "", markdown(paired), ""]
    scale = []
    lo, hi = min(args.lengths), max(args.lengths)
    for kind in (*LINEAR, "transformer"):
        if (kind, lo) not in fp32.index or (kind, hi) not in fp32.index:
            continue
        t = fp32.loc[kind]
        row = {"kind": kind, f"us / token at {lo}, batch {t.loc[lo, 'batch']}": f"{1e6 / t.loc[lo, 'tokens_per_s']:.1f}",
               f"at {hi}, batch {t.loc[hi, 'batch']}": f"{1e6 / t.loc[hi, 'tokens_per_s']:.1f}",
               "growth": f"{t.loc[lo, 'tokens_per_s'] / t.loc[hi, 'tokens_per_s']:.2f}x"}
        if (kind, lo) in single.index and (kind, hi) in single.index:
            b = single.loc[kind]
            row |= {f"us / token at {lo}, batch 1": f"{1e6 / b.loc[lo, 'tokens_per_s']:.1f}",
                    f"at {hi}, batch 1": f"{1e6 / b.loc[hi, 'tokens_per_s']:.1f}",
                    "growth at batch 1": f"{b.loc[lo, 'tokens_per_s'] / b.loc[hi, 'tokens_per_s']:.2f}x",
                    f"peak MiB per 1K tokens at {lo}, batch 1": f"{b.loc[lo, 'peak_mib'] / (lo / 1024):.1f}",
                    f"peak MiB per 1K tokens at {hi}, batch 1": f"{b.loc[hi, 'peak_mib'] / (hi / 1024):.1f}"}
        scale.append(row)
    lines += ["## Time per token and memory from the shortest to the longest length", "",
              f"The linear kinds should hold their time per token within 1.5x and their memory per token flat. "
              f"At {args.tokens} tokens per step the batch shrinks as L grows ({args.tokens // lo} sequences at {lo}, "
              f"{max(1, args.tokens // hi)} at {hi}), so the parts of a step that do not grow with the batch are shared "
              f"by fewer tokens: an SSM's kernel (O(D N L) per step, for any batch), the optimizer step, Python's "
              f"overhead per operation. The batch 1 columns hold the batch fixed ({max(10, args.steps)} timed steps "
              f"where a step is short), so their growth is L's alone.", "",
              markdown(pd.DataFrame(scale)), ""]
    bf = df[(df["dtype"] == "bf16") & df["skipped"].isna()]
    if len(bf) and any((r.kind, r.L) in fp32.index for r in bf.itertuples()):
        rows = [{"kind": r.kind, "fp32 s / step": f"{fp32.loc[(r.kind, r.L), 's_per_step']:.3f}",
                 "bf16 autocast s / step": f"{r.s_per_step:.3f}",
                 "bf16 / fp32": f"{r.s_per_step / fp32.loc[(r.kind, r.L), 's_per_step']:.2f}x"}
                for r in bf.itertuples() if (r.kind, r.L) in fp32.index]
        lines += ["## bf16 autocast against fp32 (L 1024)", "",
                  "The training loop uses bf16 autocast on CUDA only; on a CPU it stays fp32 unless this table "
                  "shows bf16 faster (which needs native bf16 instructions: avx512_bf16 or AMX).", "",
                  markdown(pd.DataFrame(rows)), ""]
    if grid is None and notes:
        lines += ["## Where the smoke grid's wall time goes", "", notes[0] + ".", ""]
    if grid is not None:
        lines += ["## Where the smoke grid's wall time goes", "",
                  "The `smoke` profile under `dvc repro` in a fresh clone of the committed tree (its own MLflow "
                  "store and Prefect home); " + "; ".join(notes) + ".", "", markdown(grid), "",
                  "Seconds by phase, from the times `dvc repro`'s output lines arrived (each phase runs from "
                  "its first line to the next phase's; empty where it did not run or its line did not come). The "
                  "grid and report processes first import torch and MLflow (the grid Prefect too), which "
                  "takes most of a phase with little training; the grid process also imports Prefect's "
                  "server and starts it as a subprocess; its last phase holds DVC hashing the grid's "
                  "outputs and writing dvc.lock.",
                  "", markdown(split), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
