"""Evaluate one cell on its test split with the best-validation weights from finetuning, add
`test_accuracy` (bit tasks: per bit) to the cell's MLflow run, and write
metrics/<task>/<arch>/<init>/seed<seed>/frac<f>.json, with the derived metrics (state size, FLOPs
per token) and the code version that computed them. This is the only stage that reads a test
split, and only for grid cells: a tuning trial's record is its validation result
(artifacts/tuning/.../trial<t>/frac<f>.json), so selection never sees test rows. A skipped or
diverged cell gets a record that says so, without a test number."""
from __future__ import annotations

from pathlib import Path

from components import paths, records
from components.evaluation import evaluate_classifier
from components.grid import Cell
from components.models import build_backbone
from components.records import CellRecord
from components.spec import CellSpec
from components.stages import skip
from components.stages.common import backbone_inputs, head_for, load_meta, load_split, resolve_device
from components.stages.finetune import load_info
from components.training import checkpoint


def run(spec: CellSpec) -> Path:
    """Test `spec`'s cell (a tuning trial: record its validation result only). The record states
    how its settings were chosen (`spec.choice`)."""
    cell = spec.cell
    if (blocked := skip.upstream(spec, "evaluate")) is not None:
        out = skip.write("evaluate", cell, *blocked, known := _known(cell))
        if blocked[0] == "diverged":  # that is its arm's result: recorded as such, so a re-run does not retry it
            _record(known.get("run_id") or _diverged_run(spec), records.load(CellRecord, out))
        return out
    info = load_info(cell)
    out = paths.metrics_path(cell)
    if cell.trial is not None:  # a tuning trial: validation only, the test split stays unread
        records.save(info, out)
        _record(info.run_id, info)
        return out
    device, meta = resolve_device(spec.device), load_meta(cell.task)
    state, _ = checkpoint.load(paths.finetune_dir(cell) / "model.pt")
    head, outputs = head_for(meta)
    model = head(build_backbone(spec.arch, **backbone_inputs(meta), seed=0), outputs)
    model.load_state_dict(state)
    test_split = load_split(cell.task, "test", getattr(model.backbone, "max_len", None))
    test = evaluate_classifier(model.to(device), test_split, spec.finetune.eval_batch_size, meta.pad_id, device)

    from components import tracking  # MLflow enters only at the stage boundary

    tracking.resume_run(info.run_id).log_metrics({"test_accuracy": test["accuracy"], "test_loss": test["loss"]},
                                                 step=info.best_step)
    from components.report import derived
    from components.versioning import code_version

    record = info.model_copy(update={
        "test_accuracy": test["accuracy"], "test_loss": test["loss"], "n_test": len(test_split),
        "majority_accuracy": test_split.majority(),  # bit tasks: the commoner bit value's share, ~0.5
        "selection": spec.choice, "state_size": derived.state_size(spec.arch), "derived_by": code_version(),
        "flops_per_token": derived.flops_per_token(model, round(meta.model_length("test")),
                                                   None if meta.vocab is None else len(meta.vocab), meta.patch_size)})
    records.save(record, out)
    _record(info.run_id, record)
    return out


def _diverged_run(spec: CellSpec) -> str:
    """A finetune-stage MLflow run for a cell whose pretraining diverged (finetuning never started),
    so the outcome is in the shared record under the cell's config hash like any other."""
    from components import tracking

    cell, meta = spec.cell, paths.meta_path(spec.cell.task)
    data = records.load(records.DataMeta, meta).sha256["train"] if meta.exists() else ""
    tags = {**cell.tags(), "stage": "finetune", "cell": cell.name, "data_sha256": data,
            "config_hash": spec.config_hash}
    with tracking.start_run(spec.experiment, cell.name, tags) as t:
        pass
    return t.run_id


def _record(run_id: str, record: CellRecord) -> None:
    """The cell's metrics file, also as the `result` tag of its finetune run: the shared record a
    grid re-run (on any machine) checks before training a cell again."""
    from components import tracking

    tracking.resume_run(run_id).set_tags({"result": record.model_dump_json(exclude_none=True)})


def _known(cell: Cell) -> dict:
    """What a cell that did not finish still tells (its run id and step of divergence, if any)."""
    path = paths.finetune_dir(cell) / "info.json"
    if not path.exists():
        return {}
    known = records.load(CellRecord, path).model_dump(include={"run_id", "pretrain_run_id", "diverged_at_step",
                                                               "config_hash"})
    return {k: v for k, v in known.items() if v is not None}
