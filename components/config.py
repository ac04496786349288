"""Typed settings: params.yaml parsed into frozen pydantic models with unknown keys forbidden.

params.yaml is the single source of settings. Every stage receives the whole validated `Params`
object; a wrong key, type or value fails with one line that names the offending key path.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

INIT_KINDS = ("scratch", "masked_spt", "causal_spt", "fpt_frozen", "fpt_random", "pretrained_full")


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ----------------------------------------------------------------------------------------------
# data


class _TaskCfg(Frozen):
    """Shared by every task. `source` names the official files a reader materializes from
    (`arena materialize --task T --from PATH` sets it for one run); generated tasks leave it unset."""

    seed: int = 0  # generators draw from it; readers use it only to carve a validation split
    mask_ratio: float = Field(0.15, gt=0, lt=1)  # masked self-pretraining default for this task
    source: Optional[str] = None

    @model_validator(mode="before")
    @classmethod
    def _setting(cls, data: object) -> object:
        """`setting: paper | cpu` fills every key not given explicitly from a named preset."""
        settings = getattr(cls, "SETTINGS", {})
        if isinstance(data, dict) and data.get("setting") is not None:
            name = data["setting"]
            if name not in settings:
                raise ValueError(f"setting: '{name}' is not one of {sorted(settings)}")
            data = {**settings[name], **data}
        return data


class ListOpsCfg(_TaskCfg):
    """LRA ListOps (lengths count tokens without parentheses). The field defaults are LRA's
    constants (`setting: paper`); with `source` the release's `listops-1000/basic_*.tsv` are read."""

    SETTINGS: ClassVar[dict] = {
        "paper": dict(max_depth=10, max_args=10, min_length=500, max_length=2000, n_train=96_000, n_val=2_000,
                      n_test=2_000),
        "cpu": dict(max_depth=6, max_args=10, min_length=64, max_length=256, n_train=20_000, n_val=1_000,
                    n_test=2_000),
    }
    kind: Literal["listops"] = "listops"
    setting: Optional[Literal["paper", "cpu"]] = None
    max_depth: int = Field(10, ge=2)
    max_args: int = Field(10, ge=2)
    min_length: int = Field(500, ge=1)  # accepted iff min_length < length < max_length (strict, as LRA)
    max_length: int = Field(2000, ge=3)
    n_train: int = Field(96_000, ge=1)
    n_val: int = Field(2_000, ge=1)
    n_test: int = Field(2_000, ge=1)
    mask_ratio: float = Field(0.10, gt=0, lt=1)  # the SPT paper's ListOps ratio

    @model_validator(mode="after")
    def _lengths(self) -> "ListOpsCfg":
        if self.max_length - self.min_length < 2:
            raise ValueError("max_length must exceed min_length by at least 2")
        return self


# LRA's Pathfinder generator settings per resolution (docstrings of lra_benchmarks/data/pathfinder.py).
CONTOUR_LENGTH = {"easy": 6, "intermediate": 9, "hard": 14}  # curv_baseline, curv_contour_length_9, _14


class PathfinderCfg(_TaskCfg):
    """Pathfinder at 32/64/128 (Path-X)/256 px; images are uint8 pixel sequences (row-major)."""

    SETTINGS: ClassVar[dict] = {
        "paper": dict(n_train=160_000, n_val=20_000, n_test=20_000),
        "cpu": dict(n_train=8_000, n_val=1_000, n_test=1_000),
    }
    kind: Literal["pathfinder"] = "pathfinder"
    setting: Optional[Literal["paper", "cpu"]] = None
    resolution: Literal[32, 64, 128, 256] = 32
    difficulty: Literal["easy", "intermediate", "hard"] = "hard"  # LRA's Pathfinder and Path-X use hard
    # LRA's docstrings recompute the distractor count from each difficulty's contour length; the
    # generator's wrapper script kept the baseline count for every difficulty. Which the release
    # used is not known: `per_difficulty` follows the docstrings.
    distractors: Literal["per_difficulty", "baseline"] = "per_difficulty"
    n_train: int = Field(160_000, ge=1)
    n_val: int = Field(20_000, ge=1)
    n_test: int = Field(20_000, ge=1)
    workers: int = Field(0, ge=0)  # processes for generation; 0 = every core (output is the same for any count)
    mask_ratio: float = Field(0.50, gt=0, lt=1)  # the SPT paper's image ratio


class BitMemoryCfg(_TaskCfg):
    """FPT's bit memory: `n_patterns` random ±1 strings, then one of them with bits zeroed at
    `mask_prob`; the target is that pattern's unmasked bits. FPT draws fresh batches; here the
    rows are drawn once from the seed so every arm sees the same data."""

    kind: Literal["bit_memory"] = "bit_memory"
    n_bits: int = Field(1000, ge=1)
    n_patterns: int = Field(5, ge=1)
    mask_prob: float = Field(0.5, ge=0, le=1)
    n_train: int = Field(20_000, ge=1)
    n_val: int = Field(1_000, ge=1)
    n_test: int = Field(1_000, ge=1)


class BitXORCfg(_TaskCfg):
    """FPT's bit XOR: two random {0,1} strings of `n_bits`; the target is their element-wise XOR."""

    kind: Literal["bit_xor"] = "bit_xor"
    n_bits: int = Field(5, ge=1)
    n_train: int = Field(20_000, ge=1)
    n_val: int = Field(1_000, ge=1)
    n_test: int = Field(1_000, ge=1)


class ImdbCfg(_TaskCfg):
    """LRA Text: IMDB reviews from `aclImdb/`, byte-level (UTF-8 bytes, as LRA's ByteTextEncoder).
    LRA validates on the test set; here `n_val` reviews are held out of train instead, so
    selection never sees test data."""

    kind: Literal["imdb"] = "imdb"
    max_length: int = Field(4000, ge=1)  # the LRA paper's 4K (the LRA repo's config uses 1000)
    n_val: int = Field(2_500, ge=1)


class AanCfg(_TaskCfg):
    """LRA Retrieval: AAN citation pairs from `tsv_data/new_aan_pairs.{train,eval,test}.tsv`,
    byte-level; each document cut to its first 10,000 bytes, then to `max_length` tokens (LRA)."""

    kind: Literal["aan"] = "aan"
    max_length: int = Field(4000, ge=1)


class Cifar10Cfg(_TaskCfg):
    """CIFAR-10 from the python pickles (`cifar-10-batches-py/`): `channels: 1` is LRA Image
    (grayscale, 1024 pixels), `channels: 3` FPT's colour CIFAR-10 (32x32x3, row-major HWC).
    Validation: `n_val` train images, held out by S4's split (torch random_split, seed 42)."""

    kind: Literal["cifar10"] = "cifar10"
    channels: Literal[1, 3] = 1
    n_val: int = Field(5_000, ge=1)
    mask_ratio: float = Field(0.50, gt=0, lt=1)


class MnistCfg(_TaskCfg):
    """MNIST from the IDX files (optionally .gz); `n_val` train images held out for validation."""

    kind: Literal["mnist"] = "mnist"
    n_val: int = Field(5_000, ge=1)
    mask_ratio: float = Field(0.50, gt=0, lt=1)


class DigitsCfg(_TaskCfg):
    """scikit-learn's bundled handwritten digits (1,797 real 8x8 images, 17 gray levels; no
    download): the cheapest real-data task on which self-pretraining visibly helps a Transformer at
    CPU scale (calibration). A seeded split of `n_val` and `n_test` images; the rest train."""

    kind: Literal["digits"] = "digits"
    n_train: Optional[int] = Field(None, ge=1)  # None: every image not in val or test (1,200)
    n_val: int = Field(297, ge=1)
    n_test: int = Field(300, ge=1)
    mask_ratio: float = Field(0.50, gt=0, lt=1)
    IMAGES: ClassVar[int] = 1797

    @model_validator(mode="after")
    def _split(self):
        left = self.IMAGES - self.n_val - self.n_test
        if left < 1:
            raise ValueError(f"the digits have {self.IMAGES} images; n_val + n_test = {self.n_val + self.n_test} "
                             "leaves none to train on")
        if self.n_train is not None and self.n_train > left:
            raise ValueError(f"n_train = {self.n_train} but only {left} images are left after n_val and n_test")
        return self


class RemoteHomologyCfg(_TaskCfg):
    """TAPE remote homology (fold classification, 1,195 folds) from its JSON files."""

    kind: Literal["remote_homology"] = "remote_homology"
    test_split: Literal["fold_holdout", "superfamily_holdout", "family_holdout"] = "fold_holdout"
    max_length: int = Field(1024, ge=1)
    n_classes: int = Field(1195, ge=2)


TaskCfg = Annotated[Union[ListOpsCfg, PathfinderCfg, BitMemoryCfg, BitXORCfg, ImdbCfg, AanCfg, Cifar10Cfg, MnistCfg,
                          DigitsCfg, RemoteHomologyCfg], Field(discriminator="kind")]
# Kinds the grid cannot train yet: they need a two-document (retrieval) head or per-bit outputs.
UNTRAINABLE = {"aan": "a two-document retrieval head", "bit_memory": "per-bit outputs", "bit_xor": "per-bit outputs"}


# ----------------------------------------------------------------------------------------------
# architectures


class _AttentionCfg(Frozen):
    d_model: int = Field(64, ge=1)
    n_layers: int = Field(2, ge=1)
    n_heads: int = Field(4, ge=1)
    ff_mult: int = Field(2, ge=0)  # feed-forward width multiple; 0 removes the FF sub-block
    positions: Literal["sinusoidal", "rotary", "none"] = "sinusoidal"
    causal: bool = False

    @model_validator(mode="after")
    def _heads(self):
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.positions == "rotary" and (self.d_model // self.n_heads) % 2:
            raise ValueError("rotary positions need an even head width (d_model / n_heads)")
        return self


class TransformerCfg(_AttentionCfg):
    """Pre-LN Transformer on SDPA; `block_size` switches to block-local attention (each block of
    that many positions attends to itself and its neighbour blocks) for very long inputs."""

    kind: Literal["transformer"] = "transformer"
    block_size: Optional[int] = Field(None, ge=1)


class LaSCfg(_AttentionCfg):
    """LaS attention: exponential locality decay (rates up to `decay_max`, head 0 global) and
    row smoothing by average pooling of width `pool`. Ablations: pool 1 = decay only;
    decay_max 0 = smoothing only."""

    kind: Literal["las"] = "las"
    positions: Literal["sinusoidal", "rotary", "none"] = "none"  # the decay carries position
    decay_max: float = Field(0.1, ge=0, le=1)
    pool: int = Field(3, ge=1)

    @model_validator(mode="after")
    def _odd_pool(self):
        if self.pool % 2 == 0:
            raise ValueError(f"pool={self.pool} must be odd (the pooled matrix keeps its L x L shape)")
        return self


class LaSChunkCfg(LaSCfg):
    """LaS inside non-overlapping chunks of `chunk` positions (linear cost)."""

    kind: Literal["las_chunk"] = "las_chunk"
    chunk: int = Field(64, ge=1)


class _SSMCfg(Frozen):
    d_model: int = Field(64, ge=1)
    n_layers: int = Field(2, ge=1)
    d_state: int = Field(64, ge=2)  # N real state size = N/2 complex conjugate modes
    dt_min: float = Field(1e-3, gt=0)
    dt_max: float = Field(1e-1, gt=0)
    ssm_lr: float = Field(1e-3, gt=0)  # S4 convention: SSM parameters get their own lr, no weight decay
    bidirectional: bool = True
    rand_init: bool = False  # SPT paper's "random init": every parameter ~ N(0, 0.1)
    ff_mult: int = Field(0, ge=0)
    positions: Literal["sinusoidal", "none"] = "none"

    @model_validator(mode="after")
    def _state(self):
        if self.d_state % 2:
            raise ValueError(f"d_state={self.d_state} must be even (conjugate pairs)")
        if self.dt_min >= self.dt_max:
            raise ValueError("dt_min must be below dt_max")
        return self


class S4DCfg(_SSMCfg):
    """S4D (diagonal SSM, ZOH, B = 1) with S4D-Lin or S4D-Inv initialisation, GLU output."""

    kind: Literal["s4d"] = "s4d"
    init: Literal["lin", "inv"] = "lin"


class DLRCfg(_SSMCfg):
    """Diagonal linear RNN: the transition Lambda learned directly (structured init from S4D-Lin)."""

    kind: Literal["dlr"] = "dlr"


class LSTMCfg(Frozen):
    kind: Literal["lstm"] = "lstm"
    d_model: int = Field(64, ge=2)
    n_layers: int = Field(2, ge=1)
    bidirectional: bool = False  # splits d_model between the two directions
    ff_mult: int = Field(0, ge=0)
    positions: Literal["sinusoidal", "none"] = "none"

    @model_validator(mode="after")
    def _even(self):
        if self.bidirectional and self.d_model % 2:
            raise ValueError(f"a bidirectional LSTM needs an even d_model (got {self.d_model})")
        return self


class FPTCfg(Frozen):
    """Frozen pretrained transformer: a language model fed through input embeddings. `train`
    names the LM parameter groups that train besides the input embedding and output head."""

    kind: Literal["fpt"] = "fpt"
    backbone: Literal["minilm", "gpt2"] = "minilm"
    path: Optional[str] = None  # local Hugging Face directory (required for gpt2)
    n_layers: Optional[int] = Field(None, ge=1)  # keep only the first n blocks (None: all of them)
    train: list[Literal["norms", "positions", "attention", "feedforward"]] = ["norms", "positions"]
    dropout: float = Field(0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _path(self):
        if self.backbone == "gpt2" and not self.path:
            raise ValueError("backbone gpt2 needs `path`: a local Hugging Face GPT-2 directory")
        return self


ArchCfg = Annotated[Union[TransformerCfg, LaSCfg, LaSChunkCfg, S4DCfg, DLRCfg, LSTMCfg, FPTCfg],
                    Field(discriminator="kind")]


# ----------------------------------------------------------------------------------------------
# training


class OptimCfg(Frozen):
    """One training phase (pretraining or finetuning): AdamW, linear warmup, then cosine decay to 0
    or a constant rate. The budget is `steps`, or `epochs` over the training rows; `steps_by_arch`
    overrides it for named architectures (the report shows every cell's steps)."""

    steps: Optional[int] = Field(None, ge=1)
    epochs: Optional[float] = Field(None, gt=0)
    steps_by_arch: dict[str, int] = {}
    batch_size: int = Field(32, ge=1)
    lr: dict[str, float]  # per architecture name: the archs' good learning rates differ (calibration)
    weight_decay: float = Field(0.01, ge=0)
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_steps: int = Field(100, ge=0)
    schedule: Literal["cosine", "constant"] = "cosine"
    grad_clip: float = Field(1.0, gt=0)
    eval_every: int = Field(250, ge=1)
    eval_batch_size: int = Field(128, ge=1)
    patience: Optional[int] = Field(None, ge=1)  # early stopping: evaluations without improvement
    checkpoint_every: int = Field(250, ge=1)  # steps between resume checkpoints
    log_every: int = Field(25, ge=1)

    @model_validator(mode="after")
    def _budget(self):
        if (self.steps is None) == (self.epochs is None):
            raise ValueError("set exactly one of steps and epochs")
        return self


class InitCfg(Frozen):
    """How a cell's backbone starts. `scratch`: seeded random weights. `masked_spt` / `causal_spt`:
    self-pretraining on the task's own training inputs (masked denoising for bidirectional models,
    next-token prediction for causal ones). `fpt_frozen`: the language-pretrained backbone with
    attention and feed-forward frozen; `fpt_random`: the same frozen network with random weights;
    `pretrained_full`: the language-pretrained backbone with every weight trained.
    `pretrain_share` with `total_steps` makes the cell compute-tied: pretraining takes that share of
    `total_steps` and finetuning the rest (the SPT paper's Appendix D); set `total_steps` to what the
    `scratch` arm gets to compare at equal compute."""

    kind: Literal[INIT_KINDS]
    mask_ratio: Optional[float] = Field(None, gt=0, lt=1)  # masked_spt; None: the task's mask_ratio
    pretrain_share: Optional[float] = Field(None, gt=0, lt=1)
    total_steps: Optional[int] = Field(None, ge=2)

    @model_validator(mode="after")
    def _fields(self):
        if (self.pretrain_share is None) != (self.total_steps is None):
            raise ValueError("pretrain_share and total_steps go together (a compute-tied budget)")
        if self.mask_ratio is not None and self.kind != "masked_spt":
            raise ValueError(f"mask_ratio applies to masked_spt only (kind is {self.kind})")
        if self.pretrain_share is not None and self.kind not in PRETRAINING:
            raise ValueError(f"pretrain_share applies to masked_spt and causal_spt only (kind is {self.kind})")
        return self


PRETRAINING = ("masked_spt", "causal_spt")  # inits that train on the task's inputs before finetuning
FROZEN = ("fpt_frozen", "fpt_random")  # inits that freeze attention and feed-forward while finetuning
LANGUAGE_PRETRAINED = ("fpt_frozen", "pretrained_full")  # inits that load language-pretrained weights


class ExcludeRule(Frozen):
    """Cells to leave out of the grid product: every given field must match (like a CI matrix's exclude)."""

    task: list[str] = []
    arch: list[str] = []
    init: list[str] = []

    @model_validator(mode="before")
    @classmethod
    def _listify(cls, raw):
        if isinstance(raw, dict):
            return {k: [v] if isinstance(v, str) else v for k, v in raw.items()}
        return raw

    def matches(self, task: str, arch: str, init: str) -> bool:
        return all(not values or value in values
                   for values, value in ((self.task, task), (self.arch, arch), (self.init, init)))


class GridCfg(Frozen):
    """The product tasks x archs x inits x seeds x fractions, minus `exclude`. `fractions` finetunes
    on nested subsets of the labelled training rows (pretraining always sees all of them)."""

    tasks: list[str] = Field(min_length=1)
    archs: list[str] = Field(min_length=1)
    inits: list[str] = Field(min_length=1)
    seeds: list[int] = Field(min_length=1)
    fractions: list[float] = [1.0]
    exclude: list[ExcludeRule] = []

    @model_validator(mode="after")
    def _unique(self):
        for key in ("tasks", "archs", "inits", "seeds", "fractions"):
            values = getattr(self, key)
            if len(set(values)) != len(values):
                raise ValueError(f"{key} lists an entry twice: {values}")
        return self

    @field_validator("fractions", mode="before")
    @classmethod
    def _decimals(cls, raw):
        # paths carry the fraction as written; DVC renders 1 as "1" but Python as "1.0"
        for f in raw if isinstance(raw, list) else []:
            if not isinstance(f, float) or not 0 < f <= 1:
                raise ValueError(f"{f!r} must be a decimal in (0, 1], written with a point (1.0, not 1)")
        return raw


class TrackingCfg(Frozen):
    experiment: str = "arena"


class PrefectCfg(Frozen):
    """How the Prefect grid flow runs its units of work (a pretraining start and its fractions)."""

    concurrency: int = Field(1, ge=1)  # units at once: threads here, or runs on the work pool
    deployment: Optional[str] = None  # "arena-cell/<name>" (prefect.yaml) sends units to a work pool


TUNABLE = ("lr", "weight_decay", "warmup_steps", "grad_clip")  # per phase: pretrain.<name>, finetune.<name>


class Range(Frozen):
    """One dimension of the search space: uniform in [low, high], or log-uniform (`log`);
    `integer` rounds the drawn value."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    @model_validator(mode="after")
    def _order(self):
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0 (got {self.low})")
        return self


class TuningCfg(Frozen):
    """The tuning budget, the same for every (task, arch, init) arm: `trials` quasi-random points
    of `space` (scrambled Sobol, seeded by `seed`), identical for every arm; each trial trains on the
    seed `seed` and is scored on validation data; the best (`metric`, ties to the lower trial) then
    runs on every grid seed. `trials: 1` is no tuning: the shared defaults of pretrain/finetune."""

    trials: int = Field(1, ge=1)
    seed: int = 1000
    metric: Literal["val_accuracy"] = "val_accuracy"
    space: dict[str, Range] = {}

    @model_validator(mode="after")
    def _space(self):
        for key, r in self.space.items():
            phase, _, name = key.partition(".")
            if phase not in ("pretrain", "finetune") or name not in TUNABLE:
                raise ValueError(f"space.{key}: not tunable; use pretrain.<name> or finetune.<name> with name in "
                                 f"{list(TUNABLE)}")
            if name in ("lr", "grad_clip") and r.low <= 0 or name == "weight_decay" and r.low < 0:
                raise ValueError(f"space.{key}: low must be {'>= 0' if name == 'weight_decay' else '> 0'} (got {r.low})")
            if name == "warmup_steps" and (not r.integer or r.low < 0):
                raise ValueError(f"space.{key}: warmup steps need `integer: true` and low >= 0")
        if self.trials > 1 and not self.space:
            raise ValueError(f"trials: {self.trials} needs a search space (space is empty)")
        return self


class Params(Frozen):
    tasks: dict[str, TaskCfg]
    archs: dict[str, ArchCfg]
    inits: dict[str, InitCfg] = {kind: InitCfg(kind=kind) for kind in INIT_KINDS}
    pretrain: OptimCfg
    finetune: OptimCfg
    grid: GridCfg
    tracking: TrackingCfg = TrackingCfg()
    prefect: PrefectCfg = PrefectCfg()
    tuning: TuningCfg = TuningCfg()
    profile: str = "custom"  # the profile last applied (`arena profile NAME`)
    profiles: dict[str, dict[str, Any]] = {}  # NAME: {dotted.key: value}; every profile sets the same keys
    device: Literal["auto", "cpu", "cuda"] = "auto"
    bf16: bool = True  # bf16 autocast for training on CUDA (CPU always runs fp32)
    compile: bool = False  # torch.compile the model for training

    @model_validator(mode="after")
    def _references(self) -> "Params":
        for key, names, known in (
            ("grid.tasks", self.grid.tasks, self.tasks),
            ("grid.archs", self.grid.archs, self.archs),
            ("grid.inits", self.grid.inits, self.inits),
        ):
            for name in names:
                if name not in known:
                    raise ValueError(f"{key}: '{name}' is not defined (known: {sorted(known)})")
        for name in self.grid.tasks:
            if (kind := self.tasks[name].kind) in UNTRAINABLE:
                raise ValueError(f"grid.tasks: '{name}' ({kind}) cannot be trained yet: it needs {UNTRAINABLE[kind]}; "
                                 "it is still materialized from `tasks`")
        for phase in ("pretrain", "finetune"):
            cfg = getattr(self, phase)
            for arch in self.grid.archs:
                if arch not in cfg.lr:
                    raise ValueError(f"{phase}.lr: no learning rate for arch '{arch}'")
            for arch in cfg.steps_by_arch:
                if arch not in self.archs:
                    raise ValueError(f"{phase}.steps_by_arch: '{arch}' is not defined (known: {sorted(self.archs)})")
        if self.tuning.trials > 1 and self.tuning.seed in self.grid.seeds:
            raise ValueError(f"tuning.seed: {self.tuning.seed} is also in grid.seeds; trials train on their own "
                             "seed so that the reported seeds are fresh runs of the selected configuration")
        _check_profiles(self)
        for i, rule in enumerate(self.grid.exclude):
            for key, names, known in (("task", rule.task, self.tasks), ("arch", rule.arch, self.archs),
                                      ("init", rule.init, self.inits)):
                for name in names:
                    if name not in known:
                        raise ValueError(f"grid.exclude.{i}.{key}: '{name}' is not defined (known: {sorted(known)})")
        return self


def lookup(tree: dict, dotted: str):
    """The value at `dotted` (a.b.c) in nested dicts; KeyError naming the first missing part."""
    node = tree
    for i, part in enumerate(dotted.split(".")):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(".".join(dotted.split(".")[: i + 1]))
        node = node[part]
    return node


def _check_profiles(params: "Params") -> None:
    if not params.profiles:
        return
    names = sorted(params.profiles)
    if params.profile not in params.profiles and params.profile != "custom":
        raise ValueError(f"profile: '{params.profile}' is not one of profiles ({', '.join(names)})")
    first = set(params.profiles[names[0]])
    dumped = params.model_dump()
    for name in names:
        keys = set(params.profiles[name])
        if keys != first:
            diff = sorted(keys ^ first)[0]
            raise ValueError(f"profiles.{name}: sets {'' if diff in keys else 'no '}'{diff}' unlike profiles.{names[0]}; "
                             "every profile sets the same keys, so switching back restores them")
        for key in sorted(keys):
            if key.split(".")[0] in ("profile", "profiles"):
                raise ValueError(f"profiles.{name}: '{key}' cannot be set by a profile")
            try:
                lookup(dumped, key)
            except KeyError as err:
                raise ValueError(f"profiles.{name}: '{key}' names no setting ('{err.args[0]}' is not defined)") from None


class ConfigError(ValueError):
    """A params file that does not validate; the message is one line naming the key."""


def _first_error(err: ValidationError, source: str) -> str:
    e = err.errors()[0]
    parts = [str(p) for p in e["loc"] if not str(p).startswith(("function-after", "tagged-union"))]
    if len(parts) > 2 and parts[0] in ("tasks", "archs"):
        del parts[2]  # pydantic puts the union's `kind` tag after the entry's name: drop it
    loc = ".".join(parts)
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] == "extra_forbidden":
        msg = "unknown key"
    more = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{source}: {loc or '<root>'}: {msg}{more}"


def parse_params(raw: object, source: str = "params") -> Params:
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_first_error(err, source)) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    return parse_params(raw, str(path))
