"""Finite tasks beyond modular arithmetic, as input tuples and labels for :class:`slt.models.polynomial.PolyNet`.

* groups: composition g h in S_3, S_4 (non-abelian) or the dihedral group D_n of order 2n, inputs (g, h)
  as indices into the element list, label the index of g h;
* modular arithmetic: (a op b) mod p from :mod:`slt.tasks` (unchanged), as the same kind of object;
* sparse parity: x in {-1, +1}^n (dense), label the parity of the first k bits;
* a user file of input tuples: one sample per line, integers separated by spaces or commas, the last one
  the label (``#`` starts a comment).

Every task is a :class:`FiniteTask`; ``task.split(train_fraction, seed)`` gives a seeded training subset
(fraction 1.0 = every input). Nothing here touches the global RNG.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slt.models.polynomial import PolyNet

__all__ = ["FiniteTask", "TASKS", "symmetric_group", "dihedral_group", "group_task", "modular_task",
           "parity_task", "tuple_file_task", "get_task"]

TASKS = ("add", "sub", "mul", "div", "s3", "s4", "dihedral", "parity")


@dataclass(frozen=True)
class FiniteTask:
    """All inputs of a finite task with their labels.

    inputs: (M, slots) int64 indices into ``alphabets`` (one-hot) or (M, d) int64 dense vectors.
    labels: (M,) int64 in [0, n_classes)."""

    name: str
    inputs: np.ndarray
    labels: np.ndarray
    n_classes: int
    alphabets: tuple[int, ...] | None = None
    dense_dim: int | None = None

    @property
    def size(self) -> int:
        return int(self.labels.shape[0])

    def split(self, train_fraction: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, labels) of floor(train_fraction * M) inputs drawn without replacement by a numpy
        Generator seeded with ``seed`` (sorted by original order); 1.0 returns every input."""
        f = float(train_fraction)
        if not 0.0 < f <= 1.0:
            raise ValueError(f"train_fraction must lie in (0, 1], got {train_fraction!r}")
        if f == 1.0:
            return self.inputs, self.labels
        n = int(f * self.size)
        if n < 1:
            raise ValueError(f"train_fraction={train_fraction} keeps no input of {self.size}")
        idx = np.sort(np.random.default_rng(seed).permutation(self.size)[:n])
        return self.inputs[idx], self.labels[idx]

    def net(self, widths, activation: int = 2, bias: bool = False, tied: bool = False) -> PolyNet:
        """The PolyNet on this task's inputs with one output per class."""
        w = (widths,) if isinstance(widths, int) else tuple(widths)
        return PolyNet(widths=w, n_out=self.n_classes, activation=activation, alphabets=self.alphabets,
                       dense_dim=self.dense_dim, bias=bias, tied=tied)


def symmetric_group(n: int) -> list[tuple[int, ...]]:
    """Elements of S_n as permutation tuples, in lexicographic order (identity first)."""
    if not isinstance(n, int) or not 1 <= n <= 6:
        raise ValueError(f"n must be an integer in [1, 6] (|S_6| = 720), got {n!r}")
    return list(itertools.permutations(range(n)))


def dihedral_group(n: int) -> list[tuple[int, ...]]:
    """Elements of D_n (symmetries of the n-gon, order 2n) as permutations of the vertices:
    rotations r^j then reflections s r^j (identity first)."""
    if not isinstance(n, int) or n < 3:
        raise ValueError(f"n must be an integer >= 3 (D_n is non-abelian for n >= 3), got {n!r}")
    rot = [tuple((i + j) % n for i in range(n)) for j in range(n)]
    ref = [tuple((j - i) % n for i in range(n)) for j in range(n)]
    return rot + ref


def group_task(elements: list[tuple[int, ...]], name: str) -> FiniteTask:
    """Composition (g h)(i) = g(h(i)) of permutations: inputs (g, h) as indices, label index of g h."""
    index = {g: i for i, g in enumerate(elements)}
    m = len(elements)
    rows, labels = [], []
    for i, g in enumerate(elements):
        for j, h in enumerate(elements):
            gh = tuple(g[h[t]] for t in range(len(h)))
            if gh not in index:
                raise ValueError(f"elements of {name} are not closed under composition")
            rows.append((i, j))
            labels.append(index[gh])
    return FiniteTask(name, np.array(rows, dtype=np.int64), np.array(labels, dtype=np.int64), m, alphabets=(m, m))


def modular_task(p: int, op: str = "add") -> FiniteTask:
    """(a op b) mod p for op in add/sub/mul/div (:func:`slt.tasks.all_pairs`)."""
    from slt.tasks import all_pairs

    a, b, y = all_pairs(p, op)
    return FiniteTask(f"{op}{p}", np.stack([a.numpy(), b.numpy()], 1), y.numpy(), p, alphabets=(p, p))


def parity_task(n_bits: int, k: int | None = None) -> FiniteTask:
    """Sparse parity: every x in {-1, +1}^n_bits (dense), label [prod of the first k bits = -1]
    (k = min(3, n_bits) by default); two classes."""
    if isinstance(n_bits, bool) or not isinstance(n_bits, int) or not 1 <= n_bits <= 16:
        raise ValueError(f"n_bits must be an integer in [1, 16], got {n_bits!r}")
    k = min(3, n_bits) if k is None else k
    if not isinstance(k, int) or not 1 <= k <= n_bits:
        raise ValueError(f"k must be an integer in [1, n_bits={n_bits}], got {k!r}")
    X = np.array(list(itertools.product((-1, 1), repeat=n_bits)), dtype=np.int64)
    y = (np.prod(X[:, :k], axis=1) < 0).astype(np.int64)
    return FiniteTask(f"parity{n_bits}-{k}", X, y, 2, dense_dim=n_bits)


def tuple_file_task(path: str | Path, alphabet: int | None = None) -> FiniteTask:
    """Input tuples from a text file: one sample per line, integers separated by spaces or commas, the
    last one the label. Alphabet of slot j = max index + 1 over the file (or ``alphabet`` for all)."""
    rows = []
    for ln, line in enumerate(Path(path).read_text().splitlines(), start=1):
        line = line.split("#")[0].replace(",", " ").strip()
        if not line:
            continue
        try:
            vals = [int(t) for t in line.split()]
        except ValueError:
            raise ValueError(f"{path}:{ln}: expected integers, got {line!r}") from None
        if len(vals) < 2:
            raise ValueError(f"{path}:{ln}: need at least one input index and a label")
        rows.append(vals)
    if not rows:
        raise ValueError(f"{path} holds no samples")
    if len({len(r) for r in rows}) != 1:
        raise ValueError(f"{path}: every line must have the same number of integers")
    arr = np.array(rows, dtype=np.int64)
    x, y = arr[:, :-1], arr[:, -1]
    if x.min() < 0 or y.min() < 0:
        raise ValueError(f"{path}: indices and labels must be >= 0")
    al = tuple(int(v) + 1 for v in x.max(0)) if alphabet is None else (int(alphabet),) * x.shape[1]
    if alphabet is not None and x.max() >= alphabet:
        raise ValueError(f"alphabet must exceed every index in {path} (max {x.max()}), got {alphabet}")
    return FiniteTask(Path(path).stem, x, y, int(y.max()) + 1, alphabets=al)


def get_task(name: str, p: int | None = None) -> FiniteTask:
    """A task by name: add/sub/mul/div (p = modulus), s3, s4, dihedral (p = n, group D_n), parity
    (p = number of bits), or a path to a tuple file."""
    if name in ("add", "sub", "mul", "div"):
        if p is None:
            raise ValueError(f"task {name!r} needs p")
        return modular_task(int(p), name)
    if name in ("s3", "s4"):
        return group_task(symmetric_group(int(name[1])), name.upper())
    if name == "dihedral":
        if p is None:
            raise ValueError("task 'dihedral' needs p (the n of D_n)")
        return group_task(dihedral_group(int(p)), f"D{p}")
    if name == "parity":
        if p is None:
            raise ValueError("task 'parity' needs p (the number of bits)")
        return parity_task(int(p))
    if Path(name).is_file():
        return tuple_file_task(name)
    raise ValueError(f"task must be one of {TASKS} or an existing tuple file, got {name!r}")
