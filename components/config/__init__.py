"""Typed settings: params.yaml parsed into frozen pydantic models with unknown keys forbidden,
one module per section of the file (tasks, archs, training: pretrain/finetune/inits, grid,
tuning; params: the root and loading).

params.yaml is the single source of settings. A wrong key, type or value fails with one line
that names the offending key path. Below the edge (components/spec.py), code sees one cell's
resolved settings, never the per-architecture tables.
"""
from components.config.archs import (ArchCfg, DLRCfg, FPTCfg, LaSCfg, LaSChunkCfg, LSTMCfg, S4DCfg,
                                     TransformerCfg)
from components.config.base import ConfigError, Frozen
from components.config.grid import ExcludeRule, GridCfg
from components.config.params import Params, PrefectCfg, TrackingCfg, load_params, lookup, parse_params
from components.config.tasks import (CONTOUR_LENGTH, PATCH_TASKS, UNTRAINABLE, AanCfg, BitMemoryCfg, BitXORCfg,
                                     Cifar10Cfg, DigitsCfg, ImdbCfg, ListOpsCfg, MnistCfg, PathfinderCfg,
                                     RemoteHomologyCfg, TaskCfg)
from components.config.training import (FROZEN, INIT_KINDS, LANGUAGE_PRETRAINED, PRETRAINING, InitCfg, OptimCfg,
                                        Phase)
from components.config.tuning import TUNABLE, Range, TuningCfg

__all__ = [
    "ArchCfg", "DLRCfg", "FPTCfg", "LaSCfg", "LaSChunkCfg", "LSTMCfg", "S4DCfg", "TransformerCfg",
    "ConfigError", "Frozen", "ExcludeRule", "GridCfg", "Params", "PrefectCfg", "TrackingCfg", "load_params",
    "lookup", "parse_params", "CONTOUR_LENGTH", "PATCH_TASKS", "UNTRAINABLE", "AanCfg", "BitMemoryCfg",
    "BitXORCfg", "Cifar10Cfg", "DigitsCfg", "ImdbCfg", "ListOpsCfg", "MnistCfg", "PathfinderCfg", "RemoteHomologyCfg",
    "TaskCfg", "FROZEN", "INIT_KINDS", "LANGUAGE_PRETRAINED", "PRETRAINING", "InitCfg", "OptimCfg", "Phase",
    "TUNABLE", "Range", "TuningCfg",
]
