"""The grid as a Prefect flow: materialize -> pretrain -> finetune -> evaluate -> report.

Thin wiring: each task calls the same `components.stages.*.run` function that DVC calls. With
no PREFECT_API_URL set, Prefect runs it in local mode (a temporary in-process server).
"""
from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from components.config import Params, load_params
from components.grid import Cell, cells
from components.stages import evaluate, finetune, materialize, pretrain, report

materialize_task = task(materialize.run, name="materialize", cache_policy=NO_CACHE)
pretrain_task = task(pretrain.run, name="pretrain", cache_policy=NO_CACHE)
finetune_task = task(finetune.run, name="finetune", cache_policy=NO_CACHE)
evaluate_task = task(evaluate.run, name="evaluate", cache_policy=NO_CACHE)
report_task = task(report.run, name="report", cache_policy=NO_CACHE)


def run_grid(params: Params) -> list:
    for t in params.grid.tasks:
        materialize_task(params, t)
    pretrained = set()
    for c in cells(params):
        start = Cell(c.task, c.arch, c.init, c.seed)  # pretraining is shared by every label fraction
        if start not in pretrained:
            pretrain_task(params, start)
            pretrained.add(start)
        finetune_task(params, c)
        evaluate_task(params, c)
    return report_task(params)


@flow(name="arena-grid", log_prints=True)
def grid_flow(params_path: str = "params.yaml") -> list:
    return run_grid(load_params(params_path))
