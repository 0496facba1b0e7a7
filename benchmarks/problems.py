"""Test problems on integer grids for the sample-efficiency benchmark.

Every problem is a loss to *minimise* over an integer box ``lows[i] <= x[i] <= highs[i]``
(what a NAS search space of widths and depths looks like to an optimiser). Regret is
normalised by the loss range over the grid, so "1 % regret" means the same thing on
every problem.

Two families:

* NAS-shaped problems: ``1 - accuracy`` of a synthetic network family, see
  :func:`nas_accuracy` (shaped after published width/depth studies, not fitted to
  their measurements). Where the optimum lies: ``nas5`` and ``nas8i`` inside the box,
  ``nas8`` and ``nas8h`` on one face (lower, upper), ``nas8c`` on five upper faces;
  ``nas5cat`` adds a categorical block type (ResNet or ResNeXt blocks,
  :func:`resnext_gain`).
* Standard functions (Branin, Hartmann-6, Rosenbrock-5, Ackley-5, Levy-8) laid on
  integer grids whose boxes are shifted and stretched per dimension. The 2d+3 corner
  design of the spline method is symmetric and lies on the box diagonal; in their
  usual boxes Ackley and Levy have their optimum on that diagonal and would look
  solved by the first batch. Here each dimension puts the optimum at its own
  fraction of the index range (a golden-ratio sequence), so no problem is solved by
  its design. ``styblinski8s`` goes further: its optimum sits in the lower part of
  every range, within 15 % of the lower face in three of eight.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import qmc

LossFn = Callable[[np.ndarray], np.ndarray]

#: Noise standard deviation, as a fraction of a problem's loss range, in noisy runs.
NOISE_FRACTION = 1e-3


@dataclass(frozen=True)
class Problem:
    """A loss over an integer box with its exact best value and range.

    Attributes
    ----------
    name : str
        Short identifier used on the command line and in tables.
    lows, highs : tuple of int
        Inclusive integer bounds per dimension.
    loss : callable
        Vectorised loss ``(M, d) float array of grid points -> (M,)``.
    known_optima : tuple of tuple of int
        Grid points known to be global minimisers (may be empty); they seed the
        search for ``f_min``.
    categorical : tuple of int
        Dimensions whose integer values ``lows[i]..highs[i]`` are unordered labels
        (a categorical choice): optimisers that support categories get them as such.
    """

    name: str
    lows: tuple[int, ...]
    highs: tuple[int, ...]
    loss: LossFn
    known_optima: tuple[tuple[int, ...], ...] = ()
    categorical: tuple[int, ...] = ()
    f_min: float = field(init=False)
    f_max: float = field(init=False)

    def __post_init__(self) -> None:
        f_min, f_max = _grid_extremes(self)
        object.__setattr__(self, "f_min", f_min)
        object.__setattr__(self, "f_max", f_max)

    @property
    def d(self) -> int:
        return len(self.lows)

    @property
    def span(self) -> float:
        """Loss range over the grid: the unit of normalised regret and of noise."""
        return self.f_max - self.f_min

    def __call__(self, x: tuple[int, ...]) -> float:
        return float(self.loss(np.asarray([x], dtype=float))[0])

    def regret(self, loss_value: float) -> float:
        """Normalised regret of a noise-free loss value, in [0, 1]."""
        return (loss_value - self.f_min) / self.span


def _coordinate_descent(problem: Problem, x: np.ndarray) -> tuple[np.ndarray, float]:
    """Exhaustive line search along each axis until no axis improves the loss."""
    best = float(problem.loss(x[None])[0])
    improved = True
    while improved:
        improved = False
        for i in range(problem.d):
            line = np.repeat(x[None], problem.highs[i] - problem.lows[i] + 1, axis=0)
            line[:, i] = np.arange(problem.lows[i], problem.highs[i] + 1)
            values = problem.loss(line)
            j = int(np.argmin(values))
            if values[j] < best - 1e-15 * max(1.0, abs(best)):
                best, x, improved = float(values[j]), line[j].copy(), True
    return x, best


def _grid_extremes(problem: Problem, n_samples: int = 1 << 16, n_starts: int = 16):
    """Best and worst loss on the grid (deterministic).

    The minimum is the best of the known optima and of coordinate descents started
    from the best scrambled-Halton grid samples; the worst value is the maximum of
    those samples and all box corners (exact for the problems here: they are
    monotone towards some corner, and a slightly low maximum only rescales regret).
    """
    lows, highs = np.asarray(problem.lows, float), np.asarray(problem.highs, float)
    unit = qmc.Halton(problem.d, scramble=True, seed=12345).random(n_samples)
    samples = np.floor(lows + unit * (highs - lows + 1)).clip(lows, highs)
    corners = (
        np.array(np.meshgrid(*zip(lows, highs, strict=True), indexing="ij"))
        .reshape(problem.d, -1)
        .T
    )
    known = np.asarray(problem.known_optima, float).reshape(-1, problem.d)
    points = np.vstack([samples, corners, known])
    values = problem.loss(points)
    starts = list(known) + list(points[np.argsort(values)[:n_starts]])
    f_min = min(_coordinate_descent(problem, s)[1] for s in starts)
    return f_min, float(values.max())


# --------------------------------------------------------------------------- NAS-shaped


def nas_accuracy(widths: np.ndarray, depths: np.ndarray, budget: float = 1.0) -> np.ndarray:
    """Top-1 accuracy of a synthetic staged CNN family (vectorised).

    A network has ``S`` stages with widths ``w_s`` (channels) and depths ``n_s``
    (blocks). The model mirrors what width/depth studies of ResNets report:

    .. math::

        a = 0.80 - \\sum_s 0.07\\,e^{-w_s/\\tau_s}
                 + 0.04\\,\\overline{\\log(1+n_s)}/\\log 9
                 - 0.012 \\sum_{s>1} (\\log_2(w_s/w_{s-1}) - 1)^2
                 - 0.006 \\sum_s (n_s/\\bar n - r_s)^2
                 - 0.03\\,\\left(\\tfrac12 \\mathrm{softplus}(2\\log(C/C_0))\\right)^2

    * saturating in widths: each stage's benefit decays with ``tau_s = 32 * 2**s``;
    * mild in depths: a small logarithmic gain;
    * interactions: a width should roughly double from stage to stage, and depth
      should be distributed like ``r = (0.75, 1, 1.5, 0.75)`` of the mean (the
      ResNet 3-4-6-3 shape);
    * an interior optimum: capacity ``C = sum_s n_s w_s^2`` beyond
      ``C_0 = 2.5e5 S`` is penalised (over-fitting / under-training at a fixed
      budget), so the biggest network is not the best one.

    The model is synthetic: shaped after those studies, not fitted to their numbers.

    Parameters
    ----------
    widths, depths : ndarray, shape (M, S)
        Stage widths and depths.
    budget : float
        Training budget relative to the default: ``C_0`` scales with it (a longer
        schedule supports a bigger network), which moves the optimum to deeper nets.

    Returns
    -------
    ndarray, shape (M,)
        Accuracy in (0, 1).
    """
    s = widths.shape[1]
    taus = 32.0 * 2.0 ** np.arange(s)
    ratios = np.array([0.75, 1.0, 1.5, 0.75])[:s]
    ratios = ratios / ratios.mean()
    width_gain = -0.07 * np.exp(-widths / taus).sum(axis=1)
    depth_gain = 0.04 * np.log1p(depths).mean(axis=1) / math.log(9.0)
    doubling = -0.012 * ((np.log2(widths[:, 1:] / widths[:, :-1]) - 1.0) ** 2).sum(axis=1)
    shape = -0.006 * ((depths / depths.mean(axis=1, keepdims=True) - ratios) ** 2).sum(axis=1)
    capacity = (depths * widths**2).sum(axis=1) / (budget * 2.5e5 * s)
    over = -0.03 * (0.5 * np.logaddexp(0.0, 2.0 * np.log(capacity))) ** 2
    return 0.80 + width_gain + depth_gain + doubling + shape + over


def _nas5_loss(x: np.ndarray) -> np.ndarray:
    # x = (w1, w2, w3, n_shallow, n_deep): stage 3 shares the depth of stage 2.
    widths = x[:, :3]
    depths = np.column_stack([x[:, 3], x[:, 4], x[:, 4]])
    return 1.0 - nas_accuracy(widths, depths)


def _nas8_loss(x: np.ndarray) -> np.ndarray:
    return 1.0 - nas_accuracy(x[:, :4], x[:, 4:])


def nas5() -> Problem:
    """5 dims: widths 16..320, 32..256, 64..1024; depths 1..16 (stage 1), 1..6 (stages 2-3).

    The ranges are deliberately lopsided, as real search spaces are: the best accuracy,
    0.815 near (119, 217, 378, 4, 4), sits at unit coordinates (0.34, 0.83, 0.33, 0.2,
    0.6). The 2d+3 design's best point has 7 % regret, a median random point 15 %.
    """
    return Problem("nas5", (16, 32, 64, 1, 1), (320, 256, 1024, 16, 6), _nas5_loss)


def nas8() -> Problem:
    """8 dims: widths 16..256, 64..256, 64..1024, 128..1024; depths 1..12, 1..6, 1..16, 1..6.

    Best accuracy 0.80 near (121, 221, 378, 718, 3, 3, 4, 1), unit coordinates (0.44,
    0.82, 0.33, 0.66, 0.18, 0.4, 0.2, 0): the last stage wants one block (its width is
    expensive), an optimum on one face of the box. Design best 9 %, random median 18 %.
    """
    return Problem(
        "nas8", (16, 64, 64, 128, 1, 1, 1, 1), (256, 256, 1024, 1024, 12, 6, 16, 6), _nas8_loss
    )


def resnext_gain(depths: np.ndarray) -> np.ndarray:
    """Accuracy gained by ResNeXt (32x4d grouped) blocks over ResNet bottlenecks.

    Xie et al., "Aggregated Residual Transformations for Deep Neural Networks",
    CVPR 2017, Table 3 (ImageNet top-1 error, 224x224 crop, equal complexity):
    ResNet-50 23.9 % vs ResNeXt-50 22.2 % (+1.7 points), ResNet-101 22.0 % vs
    ResNeXt-101 21.2 % (+0.8 points). The gain is modelled as linear in the log of the
    mean stage depth ``n`` through those two points, ResNet-50 (3-4-6-3, ``n = 4``) and
    ResNet-101 (3-4-23-3, ``n = 8.25``): ``0.017 - 0.0125 ln(n / 4)``, held at 0.017
    below ``n = 4`` where the paper has no data. It shrinks with depth, so the best
    depth differs between the block types (a mild interaction).
    """
    return 0.017 - 0.0125 * np.log(np.maximum(depths.mean(axis=1), 4.0) / 4.0)


def _nas5cat_loss(x: np.ndarray) -> np.ndarray:
    # x = (w1, w2, w3, n_shallow, n_deep, block): block 0 = ResNet, 1 = ResNeXt.
    depths = np.column_stack([x[:, 3], x[:, 4], x[:, 4]])
    return _nas5_loss(x[:, :5]) - x[:, 5] * resnext_gain(depths)


def nas5cat() -> Problem:
    """nas5 with a categorical block type (dimension 6: 0 = ResNet, 1 = ResNeXt).

    The block types share the width/depth landscape of :func:`nas5` and differ by
    :func:`resnext_gain`, an offset that falls with depth. The optimum is a ResNeXt,
    accuracy 0.832 at (119, 217, 378, 4, 4); the best ResNet, 0.815 at (112, 202, 347,
    5, 5), has 2.7 % regret: a method must find the better block type to reach 1 %.
    """
    return Problem(
        "nas5cat", (16, 32, 64, 1, 1, 0), (320, 256, 1024, 16, 6, 1), _nas5cat_loss,
        categorical=(5,),
    )  # fmt: skip


def _nas8_long_loss(x: np.ndarray) -> np.ndarray:
    return 1.0 - nas_accuracy(x[:, :4], x[:, 4:], budget=4.0)


#: Box of the long-schedule NAS problems: (lows, highs) of w1..w4, n1..n4.
_NAS8_LONG_LOWS = (16, 64, 64, 128, 1, 1, 1, 1)
_NAS8_LONG_HIGHS = (256, 512, 1024, 1024, 24, 24, 32, 8)


def nas8i() -> Problem:
    """nas8 with a 4x training budget in a box that holds its optimum: optimum in the interior.

    Widths 16..256, 64..512, 64..1024, 128..1024; depths 1..24, 1..24, 1..32, 1..8.
    With four times the capacity budget every stage wants more blocks, the last one
    included, so no coordinate of the optimum (about (124, 229, 401, 801, 12, 14, 15,
    2)) lies on a face.
    """
    return Problem("nas8i", _NAS8_LONG_LOWS, _NAS8_LONG_HIGHS, _nas8_long_loss)


def nas8h() -> Problem:
    """nas8i with stage-4 width capped at 512 (a memory cap): optimum on that one upper face.

    The cap binds (the uncapped optimum wants about 800 channels); the other seven
    coordinates of the optimum stay inside the box.
    """
    highs = (*_NAS8_LONG_HIGHS[:3], 512, *_NAS8_LONG_HIGHS[4:])
    return Problem("nas8h", _NAS8_LONG_LOWS, highs, _nas8_long_loss)


def nas8c() -> Problem:
    """nas8i in a box capped at 8 blocks per stage and 96..768 channels: optimum on five faces.

    A search space sized for a smaller compute budget than the training schedule
    supports: the optimum, about (96, 192, 384, 759, 7, 8, 8, 4), sits on the upper
    faces of w1-w3, n2, n3, the rest inside. The all-high corner (a corner-design
    point) has 1.5 % regret, as when a NAS box is drawn too small.
    """
    highs = (96, 192, 384, 768, 8, 8, 8, 8)
    return Problem("nas8c", _NAS8_LONG_LOWS, highs, _nas8_long_loss)


# ----------------------------------------------------------------------- standard functions


def _golden_fractions(d: int) -> np.ndarray:
    """Per-dimension positions of the optimum in the index range, away from the diagonal."""
    return 0.15 + 0.7 * ((np.arange(1, d + 1) * 0.6180339887) % 1.0)


def _on_grid(
    name: str,
    f: LossFn,
    x_star: np.ndarray,
    steps: np.ndarray,
    levels: int,
    fractions: np.ndarray | None = None,
) -> Problem:
    """Lay ``f`` on indices ``0..levels-1`` per dim with ``x_star`` at a shifted grid point.

    Index ``k`` of dim ``i`` maps to ``x_star[i] + (k - k_star[i]) * steps[i]`` where
    ``k_star[i]`` is the fraction ``fractions[i]`` of the index range (default: the
    golden-ratio fractions).
    """
    d = len(x_star)
    fractions = _golden_fractions(d) if fractions is None else fractions
    k_star = np.rint(fractions * (levels - 1))

    def loss(k: np.ndarray) -> np.ndarray:
        return f(x_star + (k - k_star) * steps)

    optimum = tuple(int(v) for v in k_star)
    return Problem(name, (0,) * d, (levels - 1,) * d, loss, (optimum,))


def _branin(z: np.ndarray) -> np.ndarray:
    x, y = z[:, 0], z[:, 1]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (y - b * x**2 + c * x - 6) ** 2 + 10 * (1 - t) * np.cos(x) + 10


_H6_A = np.array(
    [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8],
     [17, 8, 0.05, 10, 0.1, 14]]
)  # fmt: skip
_H6_P = 1e-4 * np.array(
    [[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
     [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]]
)  # fmt: skip
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H6_STAR = np.array([0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573])


def _hartmann6(z: np.ndarray) -> np.ndarray:
    inner = (_H6_A * (z[:, None, :] - _H6_P) ** 2).sum(axis=2)
    return -(_H6_ALPHA * np.exp(-inner)).sum(axis=1)


def _rosenbrock(z: np.ndarray) -> np.ndarray:
    return (100 * (z[:, 1:] - z[:, :-1] ** 2) ** 2 + (1 - z[:, :-1]) ** 2).sum(axis=1)


def _ackley(z: np.ndarray) -> np.ndarray:
    d = z.shape[1]
    a = -20 * np.exp(-0.2 * np.sqrt((z**2).sum(axis=1) / d))
    return a - np.exp(np.cos(2 * math.pi * z).sum(axis=1) / d) + 20 + math.e


def _levy(z: np.ndarray) -> np.ndarray:
    w = 1 + (z - 1) / 4
    head = np.sin(math.pi * w[:, 0]) ** 2
    mid = ((w[:, :-1] - 1) ** 2 * (1 + 10 * np.sin(math.pi * w[:, :-1] + 1) ** 2)).sum(axis=1)
    tail = (w[:, -1] - 1) ** 2 * (1 + np.sin(2 * math.pi * w[:, -1]) ** 2)
    return head + mid + tail


def _styblinski_tang(z: np.ndarray) -> np.ndarray:
    return 0.5 * (z**4 - 16 * z**2 + 5 * z).sum(axis=1)


#: Where the shifted Styblinski-Tang box puts the optimum in each index range: all in
#: the lower half, three of eight within 15 % of the lower face.
_SHIFTED_FRACTIONS = np.array([0.05, 0.3, 0.15, 0.4, 0.1, 0.35, 0.2, 0.25])


def branin() -> Problem:
    """Branin on 31x31 levels, step 0.5, minimiser (pi, 2.275) on the grid."""
    return _on_grid("branin", _branin, np.array([math.pi, 2.275]), np.array([0.5, 0.5]), 31)


def hartmann6() -> Problem:
    """Hartmann-6 on 21 levels per dim, steps 0.04..0.06 (about the unit box)."""
    steps = np.linspace(0.04, 0.06, 6)
    return _on_grid("hartmann6", _hartmann6, _H6_STAR, steps, 21)


def rosenbrock5() -> Problem:
    """Rosenbrock-5 on 21 levels per dim, steps 0.15..0.3 around the minimiser (1, ..., 1)."""
    return _on_grid("rosenbrock5", _rosenbrock, np.ones(5), np.linspace(0.15, 0.3, 5), 21)


def ackley5() -> Problem:
    """Ackley-5 on 41 levels per dim, steps 0.35..0.65 (boxes about [-20, 20])."""
    return _on_grid("ackley5", _ackley, np.zeros(5), np.linspace(0.35, 0.65, 5), 41)


def levy8() -> Problem:
    """Levy-8 on 21 levels per dim, steps 0.4..0.9 around the minimiser (1, ..., 1)."""
    return _on_grid("levy8", _levy, np.ones(8), np.linspace(0.4, 0.9, 8), 21)


def styblinski8s() -> Problem:
    """Styblinski-Tang-8 in a shifted box: 21 levels, step 0.35, optimum off-centre.

    The usual box [-5, 5]^8 puts the minimiser (-2.9035, ...) at 21 % of every range,
    on the box diagonal; here each dimension's box is moved so the minimiser sits at
    its own fraction (5-40 %) of the range, and the box spans 7 units, so part of the
    second basin (near +2.75) is inside. Minimum -39.166 * 8.
    """
    return _on_grid(
        "styblinski8s",
        _styblinski_tang,
        np.full(8, -2.903534),
        np.full(8, 0.35),
        21,
        _SHIFTED_FRACTIONS,
    )


#: Builders by name, in table order.
PROBLEMS: dict[str, Callable[[], Problem]] = {
    "nas5": nas5,
    "nas8": nas8,
    "nas5cat": nas5cat,
    "nas8i": nas8i,
    "nas8h": nas8h,
    "nas8c": nas8c,
    "branin": branin,
    "hartmann6": hartmann6,
    "rosenbrock5": rosenbrock5,
    "ackley5": ackley5,
    "levy8": levy8,
    "styblinski8s": styblinski8s,
}
