"""The trade-off figure of ``splinenas plot`` and ``splinenas report``: its data from the study.

:mod:`nas.report.front` draws; this module gathers what it draws through
:mod:`nas.control.frontier` (the cost model and the spline), which the
report layer may not import.
"""

from __future__ import annotations

import math
from pathlib import Path

from nas.control.policy import Study
from nas.report.front import STEM, FrontData, caption, draw_front


def front_figure_data(study: Study, pool_size: int | None = None) -> FrontData | None:
    """What the trade-off figure draws, against ``tradeoff`` (else the first constraint's
    cost); None when the experiment declares neither or nothing is measured."""
    from nas.control.constraints import best_within, declared, sources
    from nas.control.costs import cost_source
    from nas.control.frontier import measured_front, measured_points, predicted_front

    cfg = study.experiment.experiment
    name = cfg.tradeoff or next(iter(cfg.constraints), None)
    if name is None:
        return None
    source = cost_source(study.experiment, name)
    points = [p for p in measured_points(study, source) if math.isfinite(p.cost)]
    if not points:
        return None
    front = measured_front(points, cfg.goal)
    predicted = predicted_front(study, source, pool_size) if study.fit_summary() else []
    marks = []
    for constraint, bound_source in sources(study.experiment, declared(cfg.constraints)):
        best = best_within(study.state, study.experiment, [constraint])
        where = None
        if best is not None and math.isfinite(source.of_point(best)):
            where = (source.of_point(best), float(best.value))
        limit = constraint.limit if bound_source.name == name else None
        marks.append((str(constraint), limit, where))
    return FrontData(
        metric=cfg.metric,
        cost=name,
        goal=cfg.goal,
        points=[(p.cost, p.metric) for p in points],
        front=[(p.cost, p.metric) for p in front],
        predicted=[
            (p.cost, p.metric, p.metric_error)
            for p in predicted
            if math.isfinite(p.cost) and math.isfinite(p.metric)
        ],
        constraints=marks,
    )


def write_front(study: Study, out: Path, dpi: int) -> Path | None:
    """Write ``out/front.png``; None when there is no trade-off to draw."""
    data = front_figure_data(study)
    if data is None:
        return None
    figure = draw_front(data)
    path = Path(out) / f"{STEM}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    return path


def front_png(study: Study, dpi: int) -> tuple[bytes, str] | None:
    """The figure as PNG bytes with its caption, for the report; None when there is none."""
    from nas.report.html import figure_png

    data = front_figure_data(study)
    if data is None:
        return None
    return figure_png(draw_front(data), dpi), caption(data)
