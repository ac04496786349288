"""The records that travel between stages, typed, and read and written here only:

- `DataMeta`     data/<task>/meta.json            materialize -> every training stage, the report
- `InitInfo`     artifacts/init/.../info.json      pretrain -> finetune
- `CellRecord`   artifacts/finetune/.../info.json  finetune -> evaluate, and (with the test result)
                 metrics/.../frac<f>.json          evaluate -> the report, MLflow's `result` tag
- `Selection`    artifacts/tuning/.../selection.json  the tune stage's scores and provenance
- `Selected`     artifacts/tuning/.../selected.json   what the arm's cells run (a subset of Selection)
- `Choice`       how one cell's settings were chosen (stored in its record)

Unknown keys are errors, so a record written by other code fails loudly where it is read.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Optional, TypeVar, Union

from pydantic import BaseModel, ConfigDict, ValidationError

from components.atomic import atomic_dir, write_json
from components.config import ConfigError

OK = "ok"
Status = Literal["ok", "skipped", "diverged", "failed"]
Number = Union[int, float]  # a tuned value keeps its type (warmup steps stay integers)


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


R = TypeVar("R", bound=Record)


def load(kind: type[R], path: Path) -> R:
    """Read one record; a missing file or a malformed one is one line naming the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; run the stage that produces it first")
    try:
        return kind.model_validate(json.loads(path.read_text()))
    except (json.JSONDecodeError, ValidationError) as err:
        first = err.errors()[0] if isinstance(err, ValidationError) else None
        where = ".".join(map(str, first["loc"])) + ": " + first["msg"] if first else str(err).splitlines()[0]
        raise ConfigError(f"{path}: not a valid {kind.__name__} record ({where})") from None


def save(record: Record, path: Path) -> Path:
    """Write atomically (temp file, then rename)."""
    write_json(record.model_dump(mode="json", exclude_none=True), path)
    return Path(path)


def save_in(record: Record, folder: Path, name: str = "info.json") -> Path:
    """Replace `folder` by one holding just this record (a stage output that has no weights)."""
    with atomic_dir(folder) as tmp:
        save(record, tmp / name)
    return Path(folder)


# ----------------------------------------------------------------------------------------------
# data


PAD, MASK = "<pad>", "<mask>"
PIXEL_OFFSET = 2  # a pixel of intensity v is token v + 2; ids 0 and 1 are padding and mask


class DataMeta(Record):
    """meta.json of a materialized task (components/data/contract.py lists the fields by kind)."""

    task: str
    kind: Literal["tokens", "pixels", "pairs", "bits"]
    n_classes: int
    source: dict[str, Any]
    rows: dict[str, int]
    length: dict[str, Any]  # per split: mean/min/max/p5/p50/p95 (per column for pairs)
    sha256: dict[str, str]  # per split: the Parquet file's sha256
    vocab: Optional[list[str]] = None  # tokens, pairs
    pad_id: Optional[int] = None
    mask_id: Optional[int] = None
    shape: Optional[list[int]] = None  # pixels, bits
    levels: Optional[int] = None  # pixels
    target_bits: Optional[int] = None  # bits
    patch_size: Optional[int] = None  # bits: input values per model token

    def as_tokens(self) -> "DataMeta":
        """The task as a token model sees it: pixel tasks become one token per intensity (LRA's
        Transformer input), after the padding and mask ids."""
        if self.kind == "pixels":
            return self.model_copy(update={"vocab": [PAD, MASK, *map(str, range(self.levels))], "pad_id": 0,
                                           "mask_id": 1})
        if self.kind == "bits":
            raise ConfigError(f"data/{self.task}: a bits task is read as patch vectors, not tokens")
        if self.kind != "tokens":
            raise ConfigError(f"data/{self.task}: {self.kind} tasks cannot be trained yet (see config.UNTRAINABLE)")
        return self

    def model_length(self, split: str, stat: str = "mean") -> float:
        """A length statistic of `split` in model positions (`length` counts input values: a bit
        task's row of rows x n_bits values is rows x n_bits / patch_size tokens)."""
        return self.length[split][stat] / (self.patch_size if self.kind == "bits" else 1)

    @property
    def token_offset(self) -> int:
        return PIXEL_OFFSET if self.kind == "pixels" else 0


# ----------------------------------------------------------------------------------------------
# tuning


class Choice(Record):
    """How a cell's settings were chosen: a trial's own candidate, its arm's selection, or the
    shared defaults (no tuning). `values` are {phase.name: value}, applied by tuning.apply."""

    trial: Optional[int] = None
    values: dict[str, Number] = {}
    rule: str
    metric: Optional[str] = None
    trials: Optional[int] = None


class Selected(Record):
    """selected.json: the arm's choice, what its grid cells depend on."""

    task: str
    arch: str
    init: str
    trials: int
    seed: int
    metric: str
    rule: str
    candidates: list[dict[str, Number]]
    selected: Optional[int] = None  # None: no tuning, or no trial finished
    values: Optional[dict[str, Number]] = None  # None: no trial finished ({}: the defaults)
    status: Status
    reason: str


class Selection(Selected):
    """selection.json: the choice with every trial's score (None: diverged or failed), the
    settings hash the trials ran under (staleness), and the arm's MLflow `tune` run."""

    scores: dict[str, Optional[float]] = {}
    settings: Optional[str] = None
    tune_run_id: Optional[str] = None

    def selected_part(self) -> Selected:
        return Selected(**self.model_dump(include=set(Selected.model_fields)))


# ----------------------------------------------------------------------------------------------
# cells


class _CellIdentity(Record):
    task: str
    arch: str
    init: str
    seed: int
    fraction: float = 1.0
    trial: Optional[int] = None
    status: Status = OK
    reason: str = ""


class InitInfo(_CellIdentity):
    """A cell's starting weights (artifacts/init/.../info.json, also the checkpoint's meta)."""

    init_kind: Optional[str] = None
    data_sha256: Optional[str] = None
    pretrain_run_id: Optional[str] = None
    pretrain_steps: int = 0
    pretrain_tokens: int = 0
    pretrain_seconds: float = 0.0
    pretrain_best_step: Optional[int] = None
    pretrain_val_accuracy: Optional[float] = None
    pretrain_resumed_from: Optional[int] = None
    backbone_sha256: Optional[str] = None
    init_hash: Optional[str] = None  # CellSpec.init_hash of the settings it was made with
    diverged_at_step: Optional[int] = None


class CellRecord(_CellIdentity):
    """One cell's outcome: what finetuning wrote (info.json), and with the test result added, the
    metrics file and the MLflow `result` tag. A cell that did not finish carries `status` and
    `reason` and whatever it still knew."""

    run_id: Optional[str] = None
    pretrain_run_id: Optional[str] = None
    config_hash: Optional[str] = None
    diverged_at_step: Optional[int] = None
    previous_result: Optional[str] = None  # a finished result kept aside when a re-run failed
    device: Optional[str] = None
    init_sha256: Optional[str] = None
    pretrain_steps: Optional[int] = None
    pretrain_tokens: Optional[int] = None
    pretrain_seconds: Optional[float] = None
    train_rows: Optional[int] = None
    finetune_budget: Optional[int] = None
    finetune_steps: Optional[int] = None
    stopped_early: Optional[bool] = None
    finetune_tokens: Optional[int] = None
    finetune_seconds: Optional[float] = None
    finetune_resumed_from: Optional[int] = None
    best_step: Optional[int] = None
    val_accuracy: Optional[float] = None
    val_rising: Optional[bool] = None  # validation accuracy still rising over the last fifth of the steps
    params_total: Optional[int] = None
    params_trainable: Optional[int] = None
    # added by evaluate (grid cells only: a tuning trial's record stops at validation)
    test_accuracy: Optional[float] = None
    test_loss: Optional[float] = None
    n_test: Optional[int] = None
    majority_accuracy: Optional[float] = None  # the majority class's share of the test split (chance)
    selection: Optional[Choice] = None
    state_size: Optional[int] = None
    flops_per_token: Optional[float] = None
    derived_by: Optional[str] = None

    def row(self) -> dict:
        """A flat dict for the report's tables (the choice as its trial and values)."""
        return self.model_dump(mode="json")
