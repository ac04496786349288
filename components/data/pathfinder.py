"""Pathfinder (Linsley et al. 2018; LRA's Pathfinder-32, Path-X = 128 px, Path-256), seeded.

A re-implementation of `drewlinsley/pathfinder` (snakes2.py) with LRA's settings per resolution:
two target snakes of `contour_length` anti-aliased paddles grown alternately under the continuity
rule, distractor snakes of `contour_length // 3` paddles, two marker disks (both on one target
snake iff label 1, else one on each), pixelwise max, then scipy's bytescale (min -> 0, max -> 255).

Each image is drawn from its own generator `default_rng([seed, index])`, so the output does not
depend on how many processes draw it. Rendering is done per paddle on a local window at the
anti-aliasing scale and box-averaged down (the original draws with PIL and Lanczos-resamples the
whole canvas: same geometry, slightly softer edges here).

Coordinates are (row, col) floats; orientation theta gives the direction (sin theta, cos theta).
"""
from __future__ import annotations

import functools
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.config import CONTOUR_LENGTH, PathfinderCfg

PADDLE_RETRIES, TARGET_RETRIES, DISTRACTOR_RETRIES = 3, 5, 5  # the wrapper's retrial limits, + 1


@dataclass(frozen=True)
class Geometry:
    """LRA's generator settings for one resolution (docstrings of lra_benchmarks/data/pathfinder.py)."""

    size: int
    padding: int
    aa: int  # anti-aliasing scale; thickness * aa is a whole number of sub-pixels
    margins: tuple[int, ...]
    seed_distance: int
    marker_radius: float
    paddle_length: int
    thickness: float
    continuity: float
    snake_contrast: float
    paddle_contrast: float
    distractor_paddles: int  # K: distractor snakes = K // distractor_length


GEOMETRY = {
    32: Geometry(32, 1, 2, (1,), 7, 1.5, 2, 0.5, 1.0, 2.0, 0.75, 20),
    64: Geometry(64, 1, 2, (1,), 12, 2.5, 5, 1.0, 1.8, 0.8, 1.0, 22),
    128: Geometry(128, 1, 2, (2, 3), 20, 3.0, 5, 1.5, 1.8, 0.9, 1.0, 35),
    256: Geometry(256, 22, 2, (3,), 27, 5.0, 5, 2.0, 1.8, 1.0, 1.0, 30),
}


def counts(cfg: PathfinderCfg) -> tuple[int, int, int]:
    """(target contour length, distractor length, number of distractor snakes)."""
    contour = CONTOUR_LENGTH[cfg.difficulty]
    distractor = contour // 3
    basis = distractor if cfg.distractors == "per_difficulty" else CONTOUR_LENGTH["easy"] // 3
    return contour, distractor, GEOMETRY[cfg.resolution].distractor_paddles // basis


# ----------------------------------------------------------------------------------------------
# rasterizing


def _window(a: np.ndarray, b: np.ndarray, reach: float, size: int) -> tuple[int, int, int, int]:
    """Integer pixel box [r0, r1) x [c0, c1) covering segment a-b widened by `reach`, clipped."""
    lo = np.floor(np.minimum(a, b) - reach).astype(int)
    hi = np.ceil(np.maximum(a, b) + reach).astype(int) + 1
    return max(lo[0], 0), min(hi[0], size), max(lo[1], 0), min(hi[1], size)


def _segment_distance(rows: np.ndarray, cols: np.ndarray, a: np.ndarray, b: np.ndarray, flat: bool) -> np.ndarray:
    """Distance of points to segment a-b; with `flat` ends, points beyond an end are at infinity."""
    d = b - a
    n2 = float(d @ d) or 1e-12
    t = ((rows - a[0]) * d[0] + (cols - a[1]) * d[1]) / n2
    if flat:
        perp = np.abs((rows - a[0]) * d[1] - (cols - a[1]) * d[0]) / math.sqrt(n2)
        return np.where((t >= 0) & (t <= 1), perp, np.inf)
    t = np.clip(t, 0, 1)
    return np.hypot(rows - (a[0] + t * d[0]), cols - (a[1] + t * d[1]))


def paddle(a: np.ndarray, b: np.ndarray, g: Geometry) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """Anti-aliased line a-b of width round(thickness * aa) sub-pixels: (box, coverage in [0, 1])."""
    half = round(g.thickness * g.aa) / (2 * g.aa)
    r0, r1, c0, c1 = _window(a, b, half + 1, g.size)
    s = (np.arange(g.aa) + 0.5) / g.aa - 0.5  # sub-pixel centres within a pixel
    rows = (np.arange(r0, r1)[:, None] + s[None, :]).reshape(-1)  # (h*aa,)
    cols = (np.arange(c0, c1)[:, None] + s[None, :]).reshape(-1)  # (w*aa,)
    lit = _segment_distance(rows[:, None], cols[None, :], a, b, flat=True) <= half  # (h*aa, w*aa)
    cover = lit.reshape(r1 - r0, g.aa, c1 - c0, g.aa).mean(axis=(1, 3))  # (h, w)
    return (r0, r1, c0, c1), cover


def disk(centre: np.ndarray, radius: float, g: Geometry) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """A binary disk drawn at the anti-aliasing scale and averaged down: (box, coverage)."""
    r0, r1, c0, c1 = _window(centre, centre, radius + 1, g.size)
    s = (np.arange(g.aa) + 0.5) / g.aa - 0.5
    rows = (np.arange(r0, r1)[:, None] + s[None, :]).reshape(-1)
    cols = (np.arange(c0, c1)[:, None] + s[None, :]).reshape(-1)
    lit = np.hypot(rows[:, None] - centre[0], cols[None, :] - centre[1]) <= radius
    return (r0, r1, c0, c1), lit.reshape(r1 - r0, g.aa, c1 - c0, g.aa).mean(axis=(1, 3))


def _stamp(masks: tuple[np.ndarray, ...], reaches: tuple[float, ...], a: np.ndarray, b: np.ndarray) -> None:
    """Set to 1 every pixel of each mask within its reach of segment a-b (round ends)."""
    r0, r1, c0, c1 = _window(a, b, max(reaches), masks[0].shape[0])
    rows, cols = np.arange(r0, r1)[:, None], np.arange(c0, c1)[None, :]
    dist = _segment_distance(rows, cols, a, b, flat=False)
    for mask, reach in zip(masks, reaches):
        mask[r0:r1, c0:c1][dist <= reach] = 1


# ----------------------------------------------------------------------------------------------
# growing snakes


@dataclass
class Snake:
    pivot: np.ndarray  # (2,) the point `margin` behind the newest paddle's tail
    theta: float  # orientation of the newest paddle
    paddles: list  # [(tail, head)], in growth order
    drawn: list  # [(box, coverage)] per paddle, as rendered
    pending: tuple | None = None  # the newest paddle: excluded only once the next one is placed


class Canvas:
    """Occupancy of one image: `occ` (paddles dilated by the margin, and the padding border) decides
    overlap; `near` (occ dilated once more by the margin) decides where new heads may go."""

    def __init__(self, g: Geometry, margin: int, rng: np.random.Generator):
        self.g, self.m, self.rng = g, margin, rng
        self.occ = np.zeros((g.size, g.size), np.float32)
        self.occ[: g.padding], self.occ[-g.padding :], self.occ[:, : g.padding], self.occ[:, -g.padding :] = 1, 1, 1, 1
        self.near = self.occ.copy()
        b = g.padding + margin
        self.near[:b], self.near[-b:], self.near[:, :b], self.near[:, -b:] = 1, 1, 1, 1
        self.half = round(g.thickness * g.aa) / (2 * g.aa)

    def inside(self, p: np.ndarray) -> bool:
        return bool(np.all(p >= 0) and np.all(p <= self.g.size - 1))

    def fits(self, a: np.ndarray, b: np.ndarray) -> tuple | None:
        """The original's `max(mask + paddle) < 1.8` (no well-covered pixel on an occupied one):
        the rendered paddle (box, coverage) if it fits, else None."""
        drawn = paddle(a, b, self.g)
        (r0, r1, c0, c1), cover = drawn
        return None if np.any((self.occ[r0:r1, c0:c1] + cover) >= 1.8) else drawn

    def exclude(self, a: np.ndarray, b: np.ndarray) -> None:
        _stamp((self.occ, self.near), (self.m + self.half, 2 * self.m + self.half), a, b)

    def seed(self, theta: float, tail: np.ndarray | None = None, band: int = 0) -> Snake | None:
        """First paddle at a random free tail (or the given one) with orientation theta."""
        g = self.g
        if tail is None:
            free = self.near == 0
            if band:
                free[:band], free[-band:], free[:, :band], free[:, -band:] = False, False, False, False
            idx = np.flatnonzero(free)
            if len(idx) < 0.01 * free.size:
                return None
            tail = np.array(divmod(int(self.rng.choice(idx)), g.size), dtype=float)
        u = np.array([math.sin(theta), math.cos(theta)])
        head, pivot = np.ceil(tail + g.paddle_length * u), tail - self.m * u
        drawn = self.inside(head) and self.inside(pivot) and self.fits(tail, head)
        return Snake(pivot, theta, [(tail, head)], [drawn], (tail, head)) if drawn else None

    def extend(self, s: Snake, continuity: float) -> bool:
        """Add one paddle under the continuity rule; False if no admissible paddle was found."""
        g, step = self.g, self.g.paddle_length + 2 * self.m
        pivot = s.pivot + step * np.array([math.sin(s.theta), math.cos(s.theta)])
        radius = g.paddle_length + self.m
        cand = np.trunc(pivot + _circle(radius))  # (C, 2), about one candidate per pixel of arc
        cand = cand[np.all((cand >= 0) & (cand <= g.size - 1), axis=1)]
        if len(cand) == 0:
            return False
        _, first = np.unique(cand[:, 0] * g.size + cand[:, 1], return_index=True)
        cand = cand[np.sort(first)]
        dirs = np.arctan2(cand[:, 0] - pivot[0], cand[:, 1] - pivot[1])  # (C,)
        turn = np.abs((dirs - s.theta + np.pi) % (2 * np.pi) - np.pi)
        w = (1 - self.near[cand[:, 0].astype(int), cand[:, 1].astype(int)]) * \
            np.maximum(np.cos(np.minimum(turn * continuity, np.pi / 2)), 0) ** 2
        if w.sum() <= 0:
            return False
        for _ in range(PADDLE_RETRIES):
            k = int(self.rng.choice(len(cand), p=w / w.sum()))
            head = cand[k]
            u = (head - pivot) / np.linalg.norm(head - pivot)
            tail = pivot + self.m * u
            if self.inside(tail) and (drawn := self.fits(tail, head)):
                if s.pending is not None:
                    self.exclude(*s.pending)
                s.pivot, s.theta, s.pending = pivot, float(dirs[k]), (tail, head)
                s.paddles.append((tail, head))
                s.drawn.append(drawn)
                return True
        return False

    def settle(self, s: Snake) -> None:
        if s.pending is not None:
            self.exclude(*s.pending)
            s.pending = None


@functools.lru_cache(maxsize=None)
def _circle(radius: float) -> np.ndarray:
    """(C, 2) offsets on a circle of `radius`, spaced about one pixel of arc apart."""
    angles = np.linspace(0, 2 * np.pi, max(int(2 * np.pi * radius), 8), endpoint=False)
    return radius * np.stack([np.sin(angles), np.cos(angles)], 1)


def _theta(rng: np.random.Generator) -> float:
    return math.radians(int(rng.integers(-180, 180)))


def _two_snakes(c: Canvas, contour: int) -> list[Snake] | None:
    g = c.g
    first = c.seed(_theta(c.rng), band=2 * g.seed_distance)
    if first is None:
        return None
    phi = math.radians(int(c.rng.integers(0, 360)))
    tail2 = np.round(first.paddles[0][0] + g.seed_distance * np.array([math.sin(phi), math.cos(phi)]))
    theta2 = _theta(c.rng)
    u2 = np.array([math.sin(theta2), math.cos(theta2)])
    head2, pivot2 = np.ceil(tail2 + g.paddle_length * u2), tail2 - c.m * u2
    if not all(c.inside(p) for p in (tail2, head2, pivot2)):  # the original checks bounds only here
        return None
    second = Snake(pivot2, theta2, [(tail2, head2)], [paddle(tail2, head2, g)], (tail2, head2))
    for _ in range(contour - 1):
        for s in (first, second):
            if not c.extend(s, g.continuity):
                return None
    return [first, second]


def draw(g: Geometry, contour: int, distractor: int, n_distractors: int, rng: np.random.Generator) -> tuple:
    """One image: (pixels (R, R) uint8, label, debug). `debug` holds the marker centres, which target
    snake each marker sits on, each target snake's coverage alone and the paddle counts (tests use
    it to check that positives join the markers and negatives do not)."""
    label = int(rng.integers(0, 2))
    while True:
        c = Canvas(g, int(rng.choice(g.margins)), rng)
        for _ in range(TARGET_RETRIES):
            targets = _two_snakes(c, contour)
            if targets is not None:
                break
            c = Canvas(g, c.m, rng)
        if targets is not None:
            break
    for s in targets:
        c.settle(s)
    distractors = []
    for _ in range(n_distractors):
        for _ in range(DISTRACTOR_RETRIES):
            snapshot = (c.occ.copy(), c.near.copy())
            s = c.seed(_theta(rng))
            if s is not None and all(c.extend(s, g.continuity) for _ in range(distractor - 1)):
                c.settle(s)
                distractors.append(s)
                break
            c.occ, c.near = snapshot  # a failed snake leaves nothing behind
    # render: targets at paddle x snake contrast, distractors at snake contrast, markers at 1; max
    img = np.zeros((g.size, g.size), np.float64)
    layers = np.zeros((2, g.size, g.size), np.float64)  # each target snake alone, for the debug output
    for contrast, snakes in ((g.paddle_contrast * g.snake_contrast, targets), (g.snake_contrast, distractors)):
        for i, s in enumerate(snakes):
            for (r0, r1, c0, c1), cover in s.drawn:
                np.maximum(img[r0:r1, c0:c1], contrast * cover, out=img[r0:r1, c0:c1])
                if snakes is targets:
                    np.maximum(layers[i, r0:r1, c0:c1], cover, out=layers[i, r0:r1, c0:c1])
    origin = int(rng.integers(0, 2))
    other = origin if label == 1 else 1 - origin
    markers = [targets[origin].paddles[0][0], targets[other].paddles[-1][1]]
    for m in markers:
        (r0, r1, c0, c1), cover = disk(m, g.marker_radius, g)
        np.maximum(img[r0:r1, c0:c1], cover, out=img[r0:r1, c0:c1])
    debug = {"markers": np.stack(markers), "marker_snakes": (origin, other), "targets": layers,
             "target_paddles": [len(s.paddles) for s in targets], "distractor_paddles": [len(s.paddles) for s in distractors]}
    return bytescale(img), label, debug


def bytescale(img: np.ndarray) -> np.ndarray:
    """scipy.misc.bytescale: min -> 0, max -> 255, rounded (what the original imsave did)."""
    lo, hi = float(img.min()), float(img.max())
    scale = 255.0 / (hi - lo) if hi > lo else 1.0
    return (((img - lo) * scale).clip(0, 255) + 0.5).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# datasets


def _draw_range(args: tuple) -> tuple[np.ndarray, np.ndarray]:
    cfg, start, stop = args
    g, (contour, distractor, n_distractors) = GEOMETRY[cfg.resolution], counts(cfg)
    images, labels = [], []
    for i in range(start, stop):
        img, label, _ = draw(g, contour, distractor, n_distractors, np.random.default_rng([cfg.seed, i]))
        images.append(img.reshape(-1))
        labels.append(label)
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def draw_many(cfg: PathfinderCfg, n: int, workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images 0..n-1 of the seed: (pixels (n, R*R) uint8, labels (n,)), the same for any worker count."""
    workers = workers or cfg.workers or os.cpu_count() or 1
    chunk = max(1, min(256, -(-n // (4 * workers))))
    jobs = [(cfg, s, min(s + chunk, n)) for s in range(0, n, chunk)]
    if workers == 1 or len(jobs) == 1:
        parts = [_draw_range(j) for j in jobs]
    else:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_draw_range, jobs))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def generate(cfg: PathfinderCfg) -> dict[str, pd.DataFrame]:
    """train, val, test as consecutive image indices (images are independent draws)."""
    sizes = {"train": cfg.n_train, "val": cfg.n_val, "test": cfg.n_test}
    pixels, labels = draw_many(cfg, sum(sizes.values()))
    splits, start = {}, 0
    for split, n in sizes.items():
        splits[split] = pd.DataFrame({"input": list(pixels[start : start + n]), "label": labels[start : start + n]})
        start += n
    return splits


def meta(cfg: PathfinderCfg) -> dict:
    g, (contour, distractor, n_distractors) = GEOMETRY[cfg.resolution], counts(cfg)
    return {"kind": "pixels", "shape": [g.size, g.size, 1], "levels": 256, "n_classes": 2,
            "source": {"generator": "pathfinder", **cfg.model_dump(exclude={"source", "workers"}),
                       "geometry": g.__dict__, "contour_length": contour, "distractor_length": distractor,
                       "distractor_snakes": n_distractors}}
