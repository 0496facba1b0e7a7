"""The state of one search in memory: points, their lifecycle, fits and events.

:class:`State` is plain Python with no I/O; :mod:`nas.record.store` keeps it in a
crash-safe HDF5 file. Points follow DESIGN §3: every status change goes
through :data:`TRANSITIONS`, and a measured value is changed only on request.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

import numpy as np

from nas.curvefields import CURVE_FIELDS, MAX_FIGURE_NAME, MAX_OWN_FIGURES
from nas.errors import UserError
from nas.names import line_problem, shown
from nas.numbers import finite_number
from nas.search.space import SearchSpace

ORIGINS = ("initial", "incremental", "fill", "check", "manual", "expand", "import", "poll")
#: Origins of points the spline search proposed (a batch head, a diverse fill of slots
#: 2..q, the stop rule's check away from the best, or a climb's poll).
SPLINE_ORIGINS = ("incremental", "fill", "check", "poll")
#: Origin of the stop rule's check away from the best (condition (e)); an event of this
#: kind says why it was proposed.
CHECK = "check"
#: Origin of a neighbour of the best polled in a climb on a stall
#: (:mod:`nas.search.climb`); an event of this kind says why it was proposed.
POLL = "poll"
#: Origins of spline points whose measurement is no agreement of the stop rule's (a): chosen
#: for their place (away from the best, next to it), not their value
#: (:func:`nas.search.optimizer.counts_as_agreement` says the same of a told record).
APART_FROM_AGREEMENTS = (CHECK, POLL)
#: Key in a point's ``extra`` of the spline's own prediction where the stored one was clipped
#: to the metric's valid range (:attr:`Point.judged_prediction`).
UNCLIPPED = "unclipped_prediction"
#: Key in a point's ``extra``: the attempts its jobs made before ``rerun`` reset its count
#: (and its job name). Such a point was trained by this campaign, whatever it is given later.
EARLIER_ATTEMPTS = "earlier_attempts"


class StateError(UserError, RuntimeError):
    """A state file or a change to a state that cannot be made."""


class PointStatus(str, Enum):
    """Where a point is in its lifecycle (DESIGN §3)."""

    PENDING = "pending"  #: proposed, waiting to be submitted or measured by hand
    SUBMITTING = "submitting"  #: intent to submit committed; the job may or may not exist
    SUBMITTED = "submitted"  #: the scheduler accepted the job
    RUNNING = "running"  #: the job runs
    DONE = "done"  #: measured; the value is final unless replaced explicitly
    FAILED = "failed"  #: the job ended without a valid result
    INCOMPLETE = "incomplete"  #: a segment hit its time limit with a checkpoint saved
    INFEASIBLE = "infeasible"  #: cannot be trained as configured (e.g. out of GPU memory)
    CANCELLED = "cancelled"  #: withdrawn by a person

    def is_finished(self) -> bool:
        """No job runs or will be started for this point without a person's action."""
        return self in _FINISHED

    def is_active(self) -> bool:
        """A job may exist for this point right now."""
        return self in ACTIVE


_S = PointStatus
_FINISHED = frozenset({_S.DONE, _S.FAILED, _S.INFEASIBLE, _S.CANCELLED})
#: A job may exist for these points right now.
ACTIVE = (_S.SUBMITTING, _S.SUBMITTED, _S.RUNNING)
#: Waiting for a job: a new attempt (pending) or the next segment (incomplete).
READY = (_S.PENDING, _S.INCOMPLETE)
#: No job of the controller's exists: a result file can only come from one started by hand.
IDLE = (_S.PENDING, _S.FAILED, _S.INCOMPLETE, _S.CANCELLED, _S.INFEASIBLE)
#: The group each status is counted in by summaries, in display order.
COUNTED_AS = {
    _S.DONE: "done",
    _S.SUBMITTING: "running",
    _S.SUBMITTED: "running",
    _S.RUNNING: "running",
    _S.PENDING: "pending",
    _S.INCOMPLETE: "pending",
    _S.FAILED: "failed",
    _S.INFEASIBLE: "infeasible",
    _S.CANCELLED: "cancelled",
}

#: Allowed status changes. A measurement (DONE) is ground truth and may arrive from any
#: status, e.g. a person who trained a failed candidate by hand.
TRANSITIONS: dict[PointStatus, frozenset[PointStatus]] = {
    _S.PENDING: frozenset({_S.SUBMITTING, _S.DONE, _S.FAILED, _S.INFEASIBLE, _S.CANCELLED}),
    _S.SUBMITTING: frozenset({_S.SUBMITTED, _S.PENDING, _S.DONE, _S.FAILED, _S.CANCELLED}),
    _S.SUBMITTED: frozenset(
        {_S.RUNNING, _S.DONE, _S.FAILED, _S.INCOMPLETE, _S.INFEASIBLE, _S.CANCELLED}
    ),
    _S.RUNNING: frozenset({_S.DONE, _S.FAILED, _S.INCOMPLETE, _S.INFEASIBLE, _S.CANCELLED}),
    _S.INCOMPLETE: frozenset({_S.SUBMITTING, _S.DONE, _S.FAILED, _S.CANCELLED}),
    _S.FAILED: frozenset({_S.PENDING, _S.SUBMITTING, _S.DONE, _S.CANCELLED}),
    _S.INFEASIBLE: frozenset({_S.PENDING, _S.DONE}),
    _S.CANCELLED: frozenset({_S.PENDING, _S.DONE}),
    _S.DONE: frozenset(),
}


@dataclass(frozen=True)
class Point:
    """One candidate architecture and everything known about it."""

    id: int
    params: dict[str, Any]
    status: PointStatus
    batch: int
    origin: str
    created: float
    updated: float
    value: float | None = None
    predicted: float | None = None
    job_id: str = ""
    job_name: str = ""
    attempts: int = 0
    segment: int = 0
    gpu_hours: float = 0.0
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def judged_prediction(self) -> float | None:
        """The prediction a measurement is held to: the spline's own.

        ``predicted`` is what people see, clipped to the metric's valid
        range; a measurement inside that range is never farther from the
        clipped number than from the spline's, so the stop rule compared with
        it would count a spline that overshot to 105 % as agreeing with a
        measured 99.5 %. Where the two differ the spline's is kept under
        :data:`UNCLIPPED` (anything there that is not a number is ignored).
        """
        own = self.extra.get(UNCLIPPED)
        if finite_number(own):
            return float(own)
        return self.predicted


#: Point fields that :meth:`State.update_point` may change; status and value have own methods.
_UPDATABLE = frozenset({"job_id", "job_name", "attempts", "segment", "gpu_hours", "extra"})


@dataclass(frozen=True)
class FitRecord:
    """One spline fit: which points supported it and what it predicted.

    ``coefficients`` holds, per fitted category in order, the kernel
    coefficients c_j followed by the linear tail (constant, then one per dim);
    when the categories share one spline, that spline's once (its tail then
    ends with one entry per non-first categorical choice).
    """

    number: int
    time: float
    support_ids: tuple[int, ...]
    coefficients: np.ndarray
    loo_rmse: float
    argmax: dict[str, Any]
    predicted_max: float
    #: With ``[experiment] noise``: the measured point whose smoothed value was best
    #: under this fit (readers show it without fitting again); -1 without noise.
    best_id: int = -1
    #: Largest leave-one-out error among the d+1 measured points nearest the best (the
    #: default stop rule's last condition); NaN in files written before it was stored.
    local_loo: float = math.nan
    #: With ``noise = "auto"``: the noise sd measured from this fit's data (the fields of
    #: :class:`nas.search.noise.NoiseEstimate`); empty otherwise and in older files.
    noise: dict[str, Any] = field(default_factory=dict)
    #: With ``[experiment] noise``: the fit's smoothed value at each support point, in the
    #: order of ``support_ids`` (the stop rule judges progress on them); empty otherwise
    #: and in older files.
    fitted: tuple[float, ...] = ()
    #: Numeric dimensions the spline saw on a log scale (``[experiment] warping``); empty
    #: when none was and in older files.
    warped: tuple[str, ...] = ()


#: Event kinds of a measurement taken in: from the controller's own job, or from one a
#: person started by hand (its script run outside the controller).
INGEST = "ingest"
INGEST_BY_HAND = "ingest-by-hand"


Curve = list[dict[str, Any]]
#: One curve entry's values in the order of its stored fields (None: not measured).
CurveRow = tuple[Any, ...]
#: A stored curve as its store decodes it: the field names (those of :data:`CURVE_FIELDS`,
#: then a command's own figures) and one row of values per entry.
StoredCurve = tuple[tuple[str, ...], list[CurveRow]]


def _entries(stored: StoredCurve) -> Curve:
    """Stored rows as curve entries: the fields of :data:`CURVE_FIELDS`, then the command's
    own figures that the entry has (a None there is a figure that entry did not report)."""
    fields, rows = stored
    if fields == CURVE_FIELDS:
        return [dict(zip(CURVE_FIELDS, row, strict=True)) for row in rows]
    known = len(CURVE_FIELDS)
    own = fields[known:]
    return [
        {
            **dict(zip(CURVE_FIELDS, row[:known], strict=True)),
            **{
                name: value
                for name, value in zip(own, row[known:], strict=True)
                if value is not None
            },
        }
        for row in rows
    ]


def own_figure_names(entries: Iterable[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """The names of a command's own figures in ``entries`` that the state keeps, and those it
    leaves out (each by first appearance).

    A figure is kept when it is a finite number in some entry and its name is
    one line of at most :data:`MAX_FIGURE_NAME` characters (it becomes a
    column name of the stored table), up to :data:`MAX_OWN_FIGURES` of them.
    """
    names = dict.fromkeys(
        name
        for entry in entries
        for name, value in entry.items()
        if name not in CURVE_FIELDS and finite_number(value)
    )
    kept, left_out = [], []
    for name in names:
        fits = isinstance(name, str) and 0 < len(name) <= MAX_FIGURE_NAME
        if fits and line_problem(name) is None and len(kept) < MAX_OWN_FIGURES:
            kept.append(name)
        else:
            left_out.append(name)
    return kept, left_out


@dataclass(frozen=True)
class Event:
    """One line of the append-only event log."""

    time: float
    kind: str
    point_id: int | None
    message: str


class Curves(MutableMapping[int, Curve]):
    """Learning curves by point id; a stored curve is decoded when it is first asked for.

    A state of 1,000 trained points holds 1,000 curves, and decoding them all
    would cost a command that shows none (``status``) most of a second.
    ``load(point_id)`` decodes one stored curve as rows (see :mod:`nas.record.hdf5`);
    ``table(point_id)`` gives it as the store keeps it, undecoded, for a commit to copy.
    """

    def __init__(
        self,
        stored: Iterable[int] = (),
        load: Callable[[int], StoredCurve] | None = None,
        table: Callable[[int], Any] | None = None,
    ):
        self._curves: dict[int, Curve | None] = dict.fromkeys(stored)
        self._load = load
        self._table = table

    def __getitem__(self, point_id: int) -> Curve:
        curve = self._curves[point_id]
        if curve is None:
            curve = self._curves[point_id] = _entries(self._stored_rows(point_id))
        return curve

    def __setitem__(self, point_id: int, curve: Curve) -> None:
        self._curves[point_id] = curve

    def read(self, point_id: int) -> Curve:
        """The curve, decoded without being kept: for readers that go through every curve once."""
        curve = self._curves[point_id]
        return _entries(self._stored_rows(point_id)) if curve is None else curve

    def stored_rows(self, point_id: int) -> list[CurveRow] | None:
        """A stored curve not decoded yet, as rows of :data:`CURVE_FIELDS` values; else None
        (decoded already, or holding a command's own figures: read those as entries).

        The values are ints and floats as stored (None for NaN), decoded
        without being kept: ``export --json`` writes 300,000 entries at
        10,000 points and needs no dictionary per entry.
        """
        if self._curves[point_id] is not None:
            return None
        fields, rows = self._stored_rows(point_id)
        return rows if fields == CURVE_FIELDS else None

    def stored_table(self, point_id: int) -> Any | None:
        """A stored curve not decoded yet, as the table its store kept (opaque here); else None.

        Every commit writes every curve: at 10,000 points, decoding each
        unchanged one into entries to encode it again cost a third of the commit.
        """
        if self._curves[point_id] is not None or self._table is None:
            return None
        return self._table(point_id)

    def _stored_rows(self, point_id: int) -> StoredCurve:
        assert self._load is not None  # only stored curves are None
        return self._load(point_id)

    def __delitem__(self, point_id: int) -> None:
        del self._curves[point_id]

    def __contains__(self, point_id: object) -> bool:
        return point_id in self._curves  # the mapping default would decode the curve to ask

    def __iter__(self) -> Iterator[int]:
        return iter(self._curves)

    def __len__(self) -> int:
        return len(self._curves)

    def __repr__(self) -> str:
        return f"Curves({sorted(self._curves)})"


class State:
    """Points, fits and events of one search; no I/O (see :class:`nas.record.store.StateStore`).

    Points are keyed by ``space.key(params)``: there are never two points for
    the same architecture, and ids are never reused.
    """

    def __init__(self, experiment_text: str, space: SearchSpace, created: float | None = None):
        self.experiment_text = experiment_text
        self.space = space
        self.created = time.time() if created is None else created
        self.generation = 0
        #: Counts changes made through the methods below, so a store commits only
        #: what changed and ``<path>.prev`` keeps the last *different* generation.
        self.revision = 0
        self.meta: dict[str, Any] = {}
        self.fits: list[FitRecord] = []
        self.events: list[Event] = []
        #: Learning curves by point id: entries with the fields of :data:`CURVE_FIELDS`.
        self.curves: Curves = Curves()
        self._points: dict[int, Point] = {}
        self._keys: dict[tuple, int] = {}
        self._coords: dict[int, np.ndarray] = {}
        self._params_json: dict[int, str] = {}
        self._next_id = 0

    # ------------------------------------------------------------------ queries
    @property
    def points(self) -> list[Point]:
        """All points in id order."""
        return list(self._points.values())

    def point(self, point_id: int) -> Point:
        try:
            return self._points[point_id]
        except KeyError:
            raise StateError(f"no point with id {point_id}") from None

    def find(self, params: Mapping[str, Any]) -> Point | None:
        """The point with the same architecture as ``params`` (after snapping), if any."""
        point_id = self._keys.get(self.space.key(dict(params)))
        return None if point_id is None else self._points[point_id]

    def coords(self) -> np.ndarray:
        """Unit-box coordinates of the numeric dims of all points, N x d, in id order."""
        return np.array(list(self._coords.values()), dtype=float).reshape(
            len(self._coords), self.space.d
        )

    def params_json(self) -> list[str]:
        """The params of all points as JSON, in id order (cached: commits stay fast)."""
        return list(self._params_json.values())

    def with_status(self, *statuses: PointStatus) -> list[Point]:
        return [p for p in self._points.values() if p.status in statuses]

    def next_batch(self) -> int:
        """Number for a new batch: one more than any so far, 0 for the first."""
        return max((p.batch for p in self._points.values()), default=-1) + 1

    # ------------------------------------------------------------------ changes
    def add_point(
        self,
        params: Mapping[str, Any],
        origin: str,
        batch: int,
        predicted: float | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Point:
        """Add a pending point; its params are snapped to legal values first."""
        if origin not in ORIGINS:
            raise StateError(f"unknown origin {origin!r}; expected one of {', '.join(ORIGINS)}")
        snapped = self.space.snap(dict(params))
        key = self.space.key(snapped)
        if key in self._keys:
            raise StateError(f"point {self._keys[key]} already has params {snapped}")
        _require_json(self._next_id, extra or {})
        now = time.time()
        point = Point(
            id=self._next_id,
            params=snapped,
            status=PointStatus.PENDING,
            batch=batch,
            origin=origin,
            created=now,
            updated=now,
            predicted=_finite_or_none(predicted),
            extra=dict(extra or {}),
        )
        self._insert(point)
        self.log("add", f"{origin} point in batch {batch}: {json.dumps(snapped)}", point.id)
        return point

    def record(
        self, point_id: int, value: float, replace: bool = False, *, given: bool = False
    ) -> Point:
        """Record a measurement; a different value for a measured point needs ``replace``.

        ``given``: a value a person gives (``record``, ``add``, ``import``), not one
        of the point's job: refused while that job may run, since the point would
        be done, its job's result dropped when it came and its GPU-hours never
        counted, and nothing would watch the job any more.
        """
        point = self.point(point_id)
        value = float(value)
        if not math.isfinite(value):
            raise StateError(f"point {point_id}: measured value must be finite, got {value}")
        if point.status is PointStatus.DONE and point.value == value:
            return point
        if given and point.status.is_active():
            raise StateError(
                f"point {point_id} is {point.status.value} (job {point.job_id or '-'}): a value "
                f"given now would drop its job's result and GPU-hours; wait for the job, or "
                f"cancel it first (splinenas cancel {point_id})"
            )
        if point.value is not None and point.value != value and not replace:
            raise StateError(
                f"point {point_id} is already measured ({point.value}); "
                f"recording {value} needs replace (--replace)"
            )
        if point.status is not PointStatus.DONE:
            _check_transition(point, PointStatus.DONE)
        old = "" if point.value is None else f" (was {point.value})"
        self._put(point, status=PointStatus.DONE, value=value, reason="")
        self.log("record", f"value {value}{old}", point_id)
        return self._points[point_id]

    def set_status(self, point_id: int, status: PointStatus, reason: str = "") -> Point:
        """Move a point along its lifecycle; invalid transitions raise :class:`StateError`."""
        point = self.point(point_id)
        status = PointStatus(status)
        _check_transition(point, status)
        self._put(point, status=status, reason=reason)
        because = f": {reason}" if reason else ""
        self.log("status", f"{point.status.value} -> {status.value}{because}", point_id)
        return self._points[point_id]

    def update_point(self, point_id: int, **changes: Any) -> Point:
        """Change bookkeeping fields (job id and name, attempts, segment, GPU-hours, extra)."""
        unknown = sorted(set(changes) - _UPDATABLE)
        if unknown:
            raise StateError(
                f"cannot update {', '.join(unknown)}; updatable fields are "
                f"{', '.join(sorted(_UPDATABLE))}"
            )
        _require_json(point_id, changes.get("extra", {}))
        self._put(self.point(point_id), **changes)
        return self._points[point_id]

    def set_curve(self, point_id: int, entries: Iterable[Mapping[str, Any]]) -> None:
        """Store the learning curve of a point (as ingested from its folder), by epoch.

        A command's own figures (its metric, a validation loss) are kept beside
        the fields of :data:`CURVE_FIELDS` (see :func:`own_figure_names`); those
        left out are named in a ``curve`` event, since ``curve.jsonl`` may not outlive
        the run folder.
        """
        self.point(point_id)
        entries = list(entries)
        kept, left_out = own_figure_names(entries)
        curve = sorted(
            (
                {name: entry.get(name) for name in CURVE_FIELDS}
                | {name: float(entry[name]) for name in kept if finite_number(entry.get(name))}
                for entry in entries
            ),
            key=lambda e: e["epoch"],
        )
        if self.curves.get(point_id) == curve:
            return
        self.curves[point_id] = curve
        self.revision += 1
        if left_out:
            names = ", ".join(shown(str(n)) for n in left_out[:5])
            more = f" and {len(left_out) - 5} more" if len(left_out) > 5 else ""
            self.log(
                "curve",
                f"own figures not kept in the state: {names}{more} (at most "
                f"{MAX_OWN_FIGURES} figures, names of at most {MAX_FIGURE_NAME} characters "
                f"on one line; curve.jsonl in the point's folder has them all)",
                point_id,
            )

    def add_fit(
        self,
        support_ids: Iterable[int],
        coefficients: Iterable[float],
        loo_rmse: float,
        argmax: Mapping[str, Any],
        predicted_max: float,
        best_id: int = -1,
        local_loo: float = math.nan,
        noise: Mapping[str, Any] | None = None,
        fitted: Iterable[float] = (),
        warped: Iterable[str] = (),
    ) -> FitRecord:
        fit = FitRecord(
            number=len(self.fits),
            time=time.time(),
            support_ids=tuple(int(i) for i in support_ids),
            coefficients=np.asarray(list(coefficients), dtype=float),
            loo_rmse=float(loo_rmse),
            argmax=dict(argmax),
            predicted_max=float(predicted_max),
            best_id=int(best_id),
            local_loo=float(local_loo),
            noise=dict(noise or {}),
            fitted=tuple(float(v) for v in fitted),
            warped=tuple(str(name) for name in warped),
        )
        if fit.fitted and len(fit.fitted) != len(fit.support_ids):
            raise ValueError(
                f"{len(fit.fitted)} smoothed values for {len(fit.support_ids)} support points"
            )
        self.fits.append(fit)
        loo = (
            f"{loo_rmse:.4g}" if math.isfinite(loo_rmse) else "- (too few points to leave one out)"
        )
        self.log("fit", f"fit {fit.number}: {len(fit.support_ids)} points, LOO RMSE {loo}")
        return fit

    def log(self, kind: str, message: str, point_id: int | None = None) -> Event:
        event = Event(time=time.time(), kind=kind, point_id=point_id, message=message)
        self.events.append(event)
        self.revision += 1
        return event

    def set_space(self, space: SearchSpace) -> None:
        """Give the state a new box (grown or refined); every point must stay legal in it.

        Unit-box coordinates are recomputed; params, ids and history stay.
        """
        keys: dict[tuple, int] = {}
        for point in self._points.values():
            if space.snap(point.params) != point.params:
                raise StateError(f"point {point.id} {point.params} is not a legal point of {space}")
            keys[space.key(point.params)] = point.id
        self._coords = {i: space.to_unit(p.params) for i, p in self._points.items()}
        self.space, self._keys = space, keys
        self.revision += 1

    def restore(self, point: Point, coords: np.ndarray, params_json: str) -> None:
        """Insert a point as it was stored, with its stored coordinates and params JSON (loaders).

        Stored params were snapped when the point was added, so their key is
        read off directly: snapping (or encoding) 10,000 points again would
        dominate a read.
        """
        try:
            key = tuple(point.params[name] for name in self.space.names)
        except KeyError as exc:
            raise StateError(f"point {point.id} has no value for {exc.args[0]!r}") from None
        if point.id in self._points or key in self._keys:
            raise StateError(f"point {point.id} is stored twice")
        self._insert(point, coords, key, params_json)

    # ------------------------------------------------------------------ internals
    def _insert(
        self,
        point: Point,
        coords: np.ndarray | None = None,
        key: tuple | None = None,
        params_json: str | None = None,
    ) -> None:
        self._points[point.id] = point
        self._coords[point.id] = self.space.to_unit(point.params) if coords is None else coords
        self._params_json[point.id] = (
            json.dumps(point.params) if params_json is None else params_json
        )
        self._keys[self.space.key(point.params) if key is None else key] = point.id
        self._next_id = max(self._next_id, point.id + 1)
        self.revision += 1

    def _put(self, point: Point, **changes: Any) -> None:
        self._points[point.id] = replace(point, updated=time.time(), **changes)
        self.revision += 1


def _require_json(point_id: int, extra: Mapping[str, Any]) -> None:
    """A point's ``extra`` is stored as JSON: anything else is refused before it is kept."""
    try:
        json.dumps(extra)
    except (TypeError, ValueError) as exc:
        raise StateError(f"point {point_id}: extra must be JSON-able: {exc}") from None


def _check_transition(point: Point, status: PointStatus) -> None:
    if status not in TRANSITIONS[point.status]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[point.status])) or "none"
        raise StateError(
            f"point {point.id} cannot go from {point.status.value} to {status.value} "
            f"(allowed: {allowed})"
        )


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)
