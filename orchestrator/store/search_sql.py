"""Search in SQL: the index tables' upkeep and a compiled search as one query.

``write_index`` rewrites a resource's rows in the index tables (``tables.SEARCH_TABLES``) from
``resources.search.properties_of``, inside the transaction that writes the resource; the
in-memory evaluator reads the same properties, so both give the same answers. ``run_search``
turns a ``CompiledSearch`` into one SELECT over ``resources``: each test on a property is a
``name IN (SELECT name FROM <index> WHERE key = ... AND <test>)``, the sort property is one
outer join, the page is a keyset (the last record's sort key) and the same query runs on
SQLite and PostgreSQL (on PostgreSQL strings compare by code point, ``COLLATE "C"``, as they
do in Python and SQLite).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    bindparam,
    exists,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.exc import IntegrityError

from orchestrator.resources.search import (
    SEARCHABLE,
    AllOf,
    AnyOf,
    CompiledSearch,
    Condition,
    FilterOperator,
    Nested,
    Operand,
    Prop,
    Properties,
    SortKey,
    Test,
    encode_token,
    properties_of,
)
from orchestrator.store.tables import SEARCH_TABLES, resources

Families = Iterable[Literal["fields", "hyperparameters", "metrics", "tags"]]
ALL_FAMILIES: tuple[Literal["fields", "hyperparameters", "metrics", "tags"], ...] = (
    "fields",
    "hyperparameters",
    "metrics",
    "tags",
)
# What a status write can change (hyperparameters and tags live in the spec).
STATUS_FAMILIES: tuple[Literal["fields", "metrics"], ...] = ("fields", "metrics")


def write_index(
    conn: Connection,
    kind: str,
    name: str,
    spec: dict[str, Any],
    status: dict[str, Any],
    *,
    phase: str,
    created: float,
    updated: float,
    families: Families = ALL_FAMILIES,
    fresh: bool = False,
) -> None:
    """Replace the resource's rows in ``families``' index tables (``fresh``: it has none)."""
    props = properties_of(kind, name, spec, status, phase=phase, created=created, updated=updated)
    if props is None:
        return
    for family in families:
        table = SEARCH_TABLES[family]
        if not fresh:
            conn.execute(table.delete().where(table.c.kind == kind, table.c.name == name))
        rows = _rows(kind, props, family)
        if rows:
            conn.execute(table.insert(), rows)


def update_index(
    conn: Connection,
    kind: str,
    name: str,
    spec: dict[str, Any],
    *,
    before: tuple[dict[str, Any], str],
    status: dict[str, Any],
    phase: str,
    created: float,
    updated: float,
    families: Families = STATUS_FAMILIES,
) -> None:
    """Bring the rows of ``families`` from what ``before`` (the status and phase the resource
    was indexed with) gave to what ``status`` gives: only the keys whose value changed are
    deleted and written again (a training job's launch changes a few of its 30-odd fields;
    rewriting them all was most of a status write)."""
    new = properties_of(kind, name, spec, status, phase=phase, created=created, updated=updated)
    if new is None:
        return
    old = properties_of(
        kind, name, spec, before[0], phase=before[1], created=created, updated=updated
    )
    assert old is not None
    for family in families:
        was, now = old.family(family), new.family(family)
        stale = [k for k, v in was.items() if now.get(k) != v]
        if stale:
            conn.execute(_DELETE_KEYS[family], {"b_kind": kind, "b_name": name, "b_keys": stale})
        rows = [
            {"kind": kind, "name": name, "key": k, "text": text, "num": num}
            for k, (text, num) in now.items()
            if was.get(k) != (text, num)
        ]
        if rows:
            conn.execute(_INSERT[family], rows)


# Built once (a status write runs them; building a statement cost more than running it).
_DELETE_KEYS = {
    family: table.delete().where(
        table.c.kind == bindparam("b_kind"),
        table.c.name == bindparam("b_name"),
        table.c.key.in_(bindparam("b_keys", expanding=True)),
    )
    for family, table in SEARCH_TABLES.items()
}
_INSERT = {family: table.insert() for family, table in SEARCH_TABLES.items()}


def _rows(kind: str, props: Properties, family: str) -> list[dict[str, Any]]:
    return [
        {"kind": kind, "name": props.name, "key": key, "text": text, "num": num}
        for key, (text, num) in props.family(family).items()  # type: ignore[arg-type]
    ]


def drop_index(conn: Connection, kind: str, name: str) -> None:
    for table in SEARCH_TABLES.values():
        conn.execute(table.delete().where(table.c.kind == kind, table.c.name == name))


def backfill(conn: Connection) -> int:
    """Index every searchable resource of a store written before the index existed (every
    index table empty); returns how many it indexed."""
    for table in SEARCH_TABLES.values():
        if conn.execute(select(table.c.kind).limit(1)).first() is not None:
            return 0
    c = resources.c
    rows = conn.execute(
        select(c.kind, c.name, c.spec, c.status, c.phase, c.created_at, c.updated_at).where(
            c.kind.in_(list(SEARCHABLE))
        )
    ).all()
    batches: dict[str, list[dict[str, Any]]] = {f: [] for f in ALL_FAMILIES}
    for kind, name, spec, status, phase, created, updated in rows:
        props = properties_of(
            kind, name, json.loads(spec), json.loads(status),
            phase=phase, created=created, updated=updated,
        )  # fmt: skip
        if props is not None:
            for family in ALL_FAMILIES:
                batches[family] += _rows(kind, props, family)
    try:
        for name, batch in batches.items():
            if batch:
                conn.execute(SEARCH_TABLES[name].insert(), batch)
    except IntegrityError:  # another process indexed them first
        return 0
    return len(rows)


# --- the query --------------------------------------------------------------------------------
class _Compiler:
    def __init__(self, kind: str, dialect: str) -> None:
        self.kind = kind
        self.postgres = dialect == "postgresql"
        self.name: Any = resources.c.name  # the record's name in the query being built

    def text(self, expr: Any) -> Any:
        """A string expression compared by code point on every database."""
        return expr.collate("C") if self.postgres else expr

    def contains(self, expr: Any, needle: str) -> ColumnElement[bool]:
        fn = func.strpos if self.postgres else func.instr
        return fn(expr, needle) > 0

    def compare(self, op: FilterOperator, text: Any, num: Any, want: Operand) -> Any:
        """``_compare`` of the evaluator: as numbers when both are, as strings otherwise."""
        if op == FilterOperator.CONTAINS:
            return self.contains(text, want.text)
        ops: dict[FilterOperator, Callable[[Any, Any], Any]] = {
            FilterOperator.EQUALS: lambda a, b: a == b,
            FilterOperator.GREATER_THAN: lambda a, b: a > b,
            FilterOperator.GREATER_THAN_OR_EQUAL_TO: lambda a, b: a >= b,
            FilterOperator.LESS_THAN: lambda a, b: a < b,
            FilterOperator.LESS_THAN_OR_EQUAL_TO: lambda a, b: a <= b,
        }
        fn = ops[op]
        # Equality needs no collation (every deterministic one compares bytes), and without
        # one PostgreSQL can use the text index.
        text = text if op == FilterOperator.EQUALS or text is None else self.text(text)
        as_text = fn(text, literal(want.text)) if text is not None else false()
        if want.number is None or num is None:
            return as_text
        if text is None:
            return fn(num, want.number)
        return or_(and_(num.is_not(None), fn(num, want.number)), and_(num.is_(None), as_text))

    def holds(self, op: FilterOperator, text: Any, num: Any, values: tuple[Operand, ...]) -> Any:
        """A test on a value that is present (Exists and NotExists are the caller's)."""
        if op == FilterOperator.IN:
            return or_(*(self.compare(FilterOperator.EQUALS, text, num, v) for v in values))
        if op == FilterOperator.NOT_EQUALS:
            return not_(self.compare(FilterOperator.EQUALS, text, num, values[0]))
        return self.compare(op, text, num, values[0])

    def names(self, family: str, *where: Any) -> Any:
        t = SEARCH_TABLES[family]
        return select(t.c.name).where(t.c.kind == self.kind, *where)

    def test(self, t: Test) -> Any:
        prop = t.prop
        if prop.column is not None:
            if t.op == FilterOperator.EXISTS:
                return true()
            if t.op == FilterOperator.NOT_EXISTS:
                return false()
            c = resources.c
            if prop.column in {"created", "updated"}:
                when = c.created_at if prop.column == "created" else c.updated_at
                return self.holds(t.op, None, when, t.values)
            col: Any = c.name if prop.column == "name" else c.phase
            if prop.arn:
                col = func.lower(col)
            return self.holds(t.op, col, None, t.values)
        assert prop.family is not None
        table = SEARCH_TABLES[prop.family]
        has_key = table.c.key == prop.key
        if t.op == FilterOperator.EXISTS:
            return self.name.in_(self.names(prop.family, has_key))
        if t.op == FilterOperator.NOT_EXISTS:
            return self.name.not_in(self.names(prop.family, has_key))
        if t.op == FilterOperator.NOT_EQUALS:  # missing is not equal either
            equal = self.compare(FilterOperator.EQUALS, table.c.text, table.c.num, t.values[0])
            return self.name.not_in(self.names(prop.family, has_key, equal))
        test = self.holds(t.op, table.c.text, table.c.num, t.values)
        return self.name.in_(self.names(prop.family, has_key, test))

    def nested(self, n: Nested) -> Any:
        table = SEARCH_TABLES[n.family]
        parts: list[Any] = []
        for t in n.tests:
            if t.op in {FilterOperator.EXISTS, FilterOperator.NOT_EXISTS}:
                parts.append(true() if t.op == FilterOperator.EXISTS else false())
            elif t.on == "key":
                parts.append(self.holds(t.op, table.c.key, None, t.values))
            else:
                parts.append(self.holds(t.op, table.c.text, table.c.num, t.values))
        return self.name.in_(self.names(n.family, *parts))

    def condition(self, c: Condition) -> Any:
        if isinstance(c, AllOf):
            return and_(*(self.condition(p) for p in c.parts))
        if isinstance(c, AnyOf):
            return or_(*(self.condition(p) for p in c.parts))
        if isinstance(c, Nested):
            return self.nested(c)
        return self.test(c)


@dataclass(frozen=True)
class _Segment:
    """The records of one sort rank: where they come from and their (number, text) key."""

    rank: int
    source: Any
    where: tuple[Any, ...]
    num: Any
    text: Any
    name: Any
    ordered: tuple[Any, ...]  # what to order by (the key less its constants)


def _segments(comp: _Compiler, prop: Prop) -> list[_Segment]:
    """The ranks a sort by ``prop`` can give, each a query the database can read in order
    off an index (a rank's key is plain columns, not a CASE over a join), best rank first."""
    c = resources.c
    zero: Any = literal(0.0)
    empty: Any = literal_column("''")
    if prop.column is not None:
        if prop.column in {"created", "updated"}:
            when = c.created_at if prop.column == "created" else c.updated_at
            return [_Segment(0, resources, (), when, empty, c.name, (when, comp.text(c.name)))]
        column = c.name if prop.column == "name" else c.phase
        text = func.lower(column) if prop.arn else column
        ordered = (comp.text(text), comp.text(c.name))
        return [_Segment(1, resources, (), zero, text, c.name, ordered)]
    assert prop.family is not None
    s = SEARCH_TABLES[prop.family].alias("sort_by")
    joined = s.join(resources, and_(c.kind == s.c.kind, c.name == s.c.name))
    has = (s.c.kind == comp.kind, s.c.key == prop.key)
    text = func.coalesce(s.c.text, empty)
    name = comp.text(s.c.name)
    missing = _Segment(
        2, resources, (not_(exists().where(*has, s.c.name == c.name)),), zero, empty, c.name,
        (comp.text(c.name),),
    )  # fmt: skip
    as_text = (comp.text(text), name)
    if prop.type == "string":
        return [_Segment(1, joined, has, zero, text, s.c.name, as_text), missing]
    numbers = (s.c.num, name) if prop.type == "date" else (s.c.num, comp.text(text), name)
    return [
        _Segment(
            0, joined, (*has, s.c.num.is_not(None)), s.c.num,
            empty if prop.type == "date" else text, s.c.name, numbers,
        ),
        _Segment(1, joined, (*has, s.c.num.is_(None)), zero, text, s.c.name, as_text),
        missing,
    ]  # fmt: skip


def run_search(
    conn: Connection, query: CompiledSearch, dialect: str, *, account: str | None = None
) -> tuple[list[Any], list[SortKey], str | None]:
    """One page: the ``resources`` rows, their sort keys, and the next page's token; with
    ``account``, only that account's rows (``orchestrator.tenancy``: a caller's search).

    The ranks are read in turn (the next only while the page is not full), each as one query
    ordered by its own key with the page's keyset, so the database can walk an index of the
    sort property in order and stop at the page's end."""
    comp = _Compiler(query.kind, dialect)
    if comp.postgres:
        # psycopg prepares a statement run five times, and PostgreSQL may then reuse one
        # generic plan for every value; a search's best plan depends on how selective its
        # values are (a tuning job's 100 trials or 5% of all jobs), so plan each one anew.
        conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")
    asc = query.sort.ascending
    want = query.limit + 1
    c = resources.c
    rows: list[Any] = []
    for seg in _segments(comp, query.sort.prop):
        if query.after is not None and seg.rank < query.after[0]:
            continue
        comp.name = seg.name
        q = select(
            seg.name.label("name"),
            literal(seg.rank).label("sort_rank"),
            seg.num.label("sort_num"),
            seg.text.label("sort_text"),
        ).select_from(seg.source)
        q = q.where(resources.c.kind == query.kind, *seg.where)
        if account is not None:
            q = q.where(resources.c.account == account)
        if query.condition is not None:
            q = q.where(comp.condition(query.condition))
        if query.after is not None and seg.rank == query.after[0]:
            _, n0, t0, name0 = query.after
            here = tuple_(seg.num, comp.text(seg.text), comp.text(seg.name))
            last = tuple_(literal(n0), literal(t0), literal(name0))
            q = q.where(here > last if asc else here < last)
            if seg.rank == 0:  # the same bound on the number alone, which an index can use
                q = q.where(seg.num >= n0 if asc else seg.num <= n0)
        q = q.order_by(*(e.asc() if asc else e.desc() for e in seg.ordered))
        # The page's names and keys first, then only their documents: a sort or a walk over
        # thousands of candidates carries narrow rows, not every spec and status.
        best = q.limit(want - len(rows)).subquery("page")
        k = best.c
        page_q = (
            select(resources, k.sort_rank, k.sort_num, k.sort_text)
            .join_from(best, resources, and_(c.kind == query.kind, c.name == k.name))
            .order_by(
                *(
                    e.asc() if asc else e.desc()
                    for e in (k.sort_num, comp.text(k.sort_text), comp.text(k.name))
                )
            )
        )
        rows += conn.execute(page_q).all()
        if len(rows) >= want:
            break
    page = rows[: query.limit]
    keys: list[SortKey] = [
        (int(r.sort_rank), float(r.sort_num), str(r.sort_text), str(r.name)) for r in page
    ]
    token = encode_token(keys[-1]) if len(rows) > query.limit and keys else None
    return list(page), keys, token
