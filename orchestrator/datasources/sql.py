"""Reading a SQL query as Arrow record batches, with bounded memory.

PostgreSQL goes through psycopg 3 in a read-only transaction: a server-side (named) cursor
describes the query; when every column maps, the rows come through ``COPY (query) TO STDOUT
(FORMAT csv)`` parsed by pyarrow's CSV reader into the mapped types (no Python object per
value: several times faster), else they are fetched from that cursor (in binary where the
types allow). MySQL/MariaDB goes through PyMySQL's unbuffered ``SSCursor``. Either way the
server streams the rows and only a batch of them (a block of CSV) is held here.

The columns' database types come from the cursor's description and map onto Arrow types; a
type with no faithful mapping fails naming the column and the cast that fixes it. The password
is only ever a keyword argument of the driver's connect call: no DSN holds it, so no driver
message or traceback can echo it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from orchestrator.datasources.errors import DataSourceError
from orchestrator.datasources.hyperparameters import SnapshotParams

# The cursor's batch (MySQL, and PostgreSQL queries the COPY path does not take): on 200k rows
# x 30 float8 from PostgreSQL's cursor, 5k, 20k and 50k rows a fetch took 3.2, 3.4 and 4.2 s
# on a busy 2-core machine: no gain above 20k, and 20k rows keep a 30-column batch near 5 MB of
# Arrow memory (plus the Python row tuples, several times that, while it is built).
DEFAULT_BATCH_ROWS = 20_000
APPLICATION_NAME = "orchestrator-datasource"
CURSOR_NAME = "orchestrator_snapshot"

Converter = Callable[[Any], Any] | None


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    source_type: str
    convert: Converter = None


def _fix(params: SnapshotParams, column: str, db_type: str) -> DataSourceError:
    return DataSourceError(
        f"data source {params.data_source}: column {column!r} has the database type {db_type}, "
        "which a snapshot cannot store; cast it in the query to a text or numeric type, e.g. "
        f"CAST({column} AS {'text' if params.engine == 'postgresql' else 'char'})",
        field="DataSpec.Sql.SelectSqlQuery",
    )


def _statement(params: SnapshotParams) -> str:
    """The query without a trailing semicolon (it is wrapped in DECLARE or COPY)."""
    return (params.query or "").strip().rstrip(";").rstrip()


def _where(params: SnapshotParams) -> str:
    return f"{params.host}:{params.port}"


def _check_unique(params: SnapshotParams, columns: list[Column]) -> None:
    seen: set[str] = set()
    for column in columns:
        if column.name in seen:
            raise DataSourceError(
                f"data source {params.data_source}: the query returns two columns named "
                f"{column.name!r}; give each a distinct alias (AS ...)",
                field="DataSpec.Sql.SelectSqlQuery",
            )
        seen.add(column.name)


# --- PostgreSQL ------------------------------------------------------------------------------

_PG_TYPES: dict[int, tuple[pa.DataType, str]] = {
    16: (pa.bool_(), "boolean"),
    21: (pa.int16(), "smallint"),
    23: (pa.int32(), "integer"),
    20: (pa.int64(), "bigint"),
    26: (pa.int64(), "oid"),
    700: (pa.float32(), "real"),
    701: (pa.float64(), "double precision"),
    # numeric's exact decimals become float64 (about 15 significant digits): a model reads
    # floats, and a decimal128 needs a scale the description often lacks (a bare numeric).
    1700: (pa.float64(), "numeric (read as float64)"),
    25: (pa.string(), "text"),
    1043: (pa.string(), "character varying"),
    1042: (pa.string(), "character"),
    18: (pa.string(), '"char"'),
    19: (pa.string(), "name"),
    705: (pa.string(), "unknown (a literal, read as text)"),
    1082: (pa.date32(), "date"),
    1083: (pa.time64("us"), "time"),
    1114: (pa.timestamp("us"), "timestamp"),
    1184: (pa.timestamp("us", tz="UTC"), "timestamp with time zone"),
    2950: (pa.string(), "uuid (as text)"),
    114: (pa.string(), "json (as text)"),
    3802: (pa.string(), "jsonb (as text)"),
    869: (pa.string(), "inet (as text)"),
    650: (pa.string(), "cidr (as text)"),
}


# The types whose binary form psycopg loads into what the Arrow type takes (numeric through
# _NumericFloatBinaryLoader); a query of only these is fetched in binary.
_PG_BINARY_SAFE = frozenset(
    {16, 21, 23, 20, 26, 700, 701, 1700, 25, 1043, 1042, 19, 1082, 1083, 1114, 1184}
)


# What COPY's CSV writes of these is not what pyarrow's CSV reader parses into their Arrow
# type (time: no CSV parser): such a query goes through the cursor.
_PG_NOT_CSV = frozenset({1083})
# The fast path: ``COPY (query) TO STDOUT (FORMAT csv)`` parsed by pyarrow's CSV reader, each
# column converted to the Arrow type its description maps to. Measured on 1M x 30 float8
# (benchmarks/datasource_snapshot.py) it is several times the cursor's speed, which builds a
# Python object per value; memory stays bounded the same way (a block of CSV at a time).
COPY_FAST_PATH = True
COPY_BLOCK_BYTES = 4 << 20


class _CopyStream:
    """A read-only file over the chunks of a COPY, for pyarrow (``read(n)``)."""

    def __init__(self, chunks: Iterator[Any]) -> None:
        self._chunks = chunks
        self._buffer = bytearray()
        self._done = False
        self.closed = False

    def empty(self) -> bool:
        """Whether the COPY sent nothing (no row: pyarrow's reader refuses an empty file)."""
        self.read(0)
        if not self._buffer and not self._done:
            chunk = next(self._chunks, None)
            self._done = chunk is None
            self._buffer += chunk or b""
        return not self._buffer

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while not self._done and (size < 0 or len(self._buffer) < size):
            chunk = next(self._chunks, None)
            if chunk is None:
                self._done = True
            else:
                self._buffer += chunk
        if size < 0 or size >= len(self._buffer):
            out, self._buffer = bytes(self._buffer), bytearray()
            return out
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out

    def close(self) -> None:
        self.closed = True


def _copy_batches(
    params: SnapshotParams, conn: Any, columns: list[Column]
) -> Iterator[pa.RecordBatch]:
    """The query's rows through COPY ... (FORMAT csv), parsed by pyarrow, batch by batch."""
    import psycopg
    import pyarrow.csv as pacsv

    types = {f"c{i}": c.type for i, c in enumerate(columns)}
    read = pacsv.ReadOptions(column_names=list(types), block_size=COPY_BLOCK_BYTES)
    parse = pacsv.ParseOptions(newlines_in_values=any(pa.types.is_string(c.type) for c in columns))
    convert = pacsv.ConvertOptions(
        column_types=types,
        null_values=[""],  # COPY's CSV: NULL unquoted and empty, an empty string quoted
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
        true_values=["t"],
        false_values=["f"],
        timestamp_parsers=[pacsv.ISO8601],
    )
    schema = pa.schema([pa.field(c.name, c.type) for c in columns])
    try:
        with conn.cursor() as cursor:
            # ISO dates and UTC times: what the CSV reader parses, whatever the server's setting
            cursor.execute("SET LOCAL DateStyle TO 'ISO, YMD'")
            cursor.execute("SET LOCAL TimeZone TO 'UTC'")
            cursor.execute("SET LOCAL IntervalStyle TO 'iso_8601'")
            # the newline ends a trailing ``--`` comment of the query before the parenthesis
            statement = f"COPY ({_statement(params)}\n) TO STDOUT WITH (FORMAT csv)"
            try:
                with cursor.copy(statement) as copy:
                    stream = _CopyStream(iter(copy))
                    if stream.empty():
                        return
                    reader = pacsv.open_csv(pa.PythonFile(stream, mode="r"), read, parse, convert)
                    for batch in reader:
                        yield pa.RecordBatch.from_arrays(batch.columns, schema=schema)
            except psycopg.Error as e:
                raise _query_error(params, e) from None
            except pa.ArrowInvalid as e:
                raise _csv_error(params, columns, e) from None
        conn.rollback()
    finally:
        conn.close()


def _csv_error(params: SnapshotParams, columns: list[Column], e: Exception) -> DataSourceError:
    text = str(e)
    found = re.search(r"column #(\d+)", text)
    column = columns[int(found.group(1))] if found and int(found.group(1)) < len(columns) else None
    if column is None:
        return DataSourceError(
            f"data source {params.data_source}: the query's rows could not be read: {text}",
            field="DataSpec.Sql.SelectSqlQuery",
        )
    value = re.search(r"invalid value (.*)$", text)
    return DataSourceError(
        f"data source {params.data_source}: column {column.name!r} ({column.source_type}) "
        f"holds a value that does not fit {column.type}"
        f"{': ' + value.group(1) if value else ''}; cast it in the query, e.g. "
        f"CAST({column.name} AS text)",
        field="DataSpec.Sql.SelectSqlQuery",
    )


def _numeric_float_binary_loader() -> type[Any]:
    from psycopg.types.numeric import NumericBinaryLoader

    class NumericFloatBinaryLoader(NumericBinaryLoader):
        """numeric's binary form as a float (what the column's Arrow type is)."""

        def load(self, data: Any) -> Any:
            return float(super().load(data))

    return NumericFloatBinaryLoader


def _pg_type_name(oid: int) -> str:
    from psycopg.postgres import types

    info = types.get(oid)
    if info is None:
        return f"type oid {oid}"
    return f"{info.name}[]" if info.array_oid == oid else info.name


def _pg_user_types(cursor: Any, oids: Sequence[int]) -> dict[int, tuple[str, str, str]]:
    """``oid -> (name, typtype, typcategory)`` of types not built in (enums, citext...)."""
    if not oids:
        return {}
    cursor.execute(
        "SELECT oid::int8, format_type(oid, NULL), typtype::text, typcategory::text FROM pg_type "
        "WHERE oid = ANY(%s::oid[])",
        (list(oids),),
    )
    return {int(r[0]): (str(r[1]), str(r[2]), str(r[3])) for r in cursor.fetchall()}


def _connect_error(
    params: SnapshotParams, user: str, kind: str, detail: str, engine: str
) -> DataSourceError:
    """One engine's connection failure (``kind``: auth, database, unreachable) in the words
    both engines share; ``detail`` is the driver's own, never holding the password."""
    name, where = params.data_source, _where(params)
    if kind == "auth":
        return DataSourceError(
            f"data source {name}: authentication failed for user {user!r} on {where} "
            f"({detail}); check the Username and Password of "
            "DataSpec.Sql.DatabaseCredentials.SecretUri",
            field="DataSpec.Sql.DatabaseCredentials.SecretUri",
        )
    if kind == "database":
        return DataSourceError(
            f"data source {name}: the database {params.database!r} does not exist on {where}; "
            "check DataSpec.Sql.DatabaseInformation.DatabaseName",
            field="DataSpec.Sql.DatabaseInformation.DatabaseName",
        )
    return DataSourceError(
        f"data source {name}: {where} is unreachable: cannot connect to {engine} within "
        f"{params.connect_timeout} s ({detail}); check DataSpec.Sql.DatabaseInformation "
        "(Host, Port) and that the database accepts connections from the snapshot job",
        field="DataSpec.Sql.DatabaseInformation",
    )


def _query_failed(params: SnapshotParams, detail: str) -> DataSourceError:
    return DataSourceError(
        f"data source {params.data_source}: the query failed on {params.engine} "
        f"{_where(params)}/{params.database}: {detail}; fix DataSpec.Sql.SelectSqlQuery",
        field="DataSpec.Sql.SelectSqlQuery",
    )


def _pg_error(params: SnapshotParams, user: str, e: Exception) -> DataSourceError:
    text = str(e).strip()
    detail = text.splitlines()[-1] if text else type(e).__name__
    if re.search(
        r"password authentication failed|role .* does not exist|no password supplied|"
        r"authentication failed|SASL",
        text,
    ):
        return _connect_error(params, user, "auth", detail, "PostgreSQL")
    if re.search(r"database .* does not exist", text):
        return _connect_error(params, user, "database", detail, "PostgreSQL")
    return _connect_error(params, user, "unreachable", detail, "PostgreSQL")


def _query_error(params: SnapshotParams, e: Exception) -> DataSourceError:
    diag = getattr(e, "diag", None)
    return _query_failed(params, (getattr(diag, "message_primary", None) or str(e)).strip())


def _read_postgresql(
    params: SnapshotParams, username: str, password: str, batch_rows: int
) -> tuple[list[Column], Iterator[pa.RecordBatch]]:
    import psycopg
    from psycopg.types.numeric import FloatLoader
    from psycopg.types.string import TextLoader

    try:
        conn = psycopg.connect(
            host=params.host,
            port=params.port,
            dbname=params.database,
            user=username,
            password=password,
            connect_timeout=params.connect_timeout,
            application_name=APPLICATION_NAME,
        )
    except psycopg.Error as e:
        raise _pg_error(params, username, e) from None
    conn.adapters.register_loader("numeric", FloatLoader)
    conn.adapters.register_loader("numeric", _numeric_float_binary_loader())
    for name in ("uuid", "json", "jsonb", "inet", "cidr"):
        conn.adapters.register_loader(name, TextLoader)
    conn.read_only = True
    cursor = conn.cursor(name=CURSOR_NAME, withhold=False)
    cursor.itersize = batch_rows
    try:
        try:
            cursor.execute(_statement(params))
        except psycopg.Error as e:
            raise _query_error(params, e) from None
        description = cursor.description or []
        unknown = [d.type_code for d in description if d.type_code not in _PG_TYPES]
        with conn.cursor() as lookup:
            user_types = _pg_user_types(lookup, sorted(set(unknown)))
        columns: list[Column] = []
        for d in description:
            known = _PG_TYPES.get(d.type_code)
            if known is not None:
                columns.append(Column(d.name, known[0], known[1]))
                continue
            user = user_types.get(d.type_code)
            # An enum or a string-category extension type (citext, ...) is text as it is.
            if user is not None and (user[1] == "e" or user[2] == "S"):
                columns.append(Column(d.name, pa.string(), f"{user[0]} (as text)"))
                continue
            name = user[0] if user is not None else _pg_type_name(d.type_code)
            raise _fix(params, d.name, name)
        _check_unique(params, columns)
        if COPY_FAST_PATH and all(d.type_code not in _PG_NOT_CSV for d in description):
            cursor.close()
            return columns, _copy_batches(params, conn, columns)
        if all(d.type_code in _PG_BINARY_SAFE for d in description):
            # Binary rows load 2.5x faster than text (no number parsing): declared again in
            # binary (planned twice, run once: a declared cursor runs only when fetched).
            cursor.close()
            cursor = conn.cursor(name=CURSOR_NAME, withhold=False, binary=True)
            cursor.itersize = batch_rows
            try:
                cursor.execute(_statement(params))
            except psycopg.Error as e:
                raise _query_error(params, e) from None
    except BaseException:
        conn.close()
        cursor.close()  # after the connection: nothing to send, only marked closed
        raise

    def rows() -> Iterator[list[tuple[Any, ...]]]:
        try:
            while True:
                try:
                    chunk = cursor.fetchmany(batch_rows)
                except psycopg.Error as e:
                    raise _query_error(params, e) from None
                if not chunk:
                    break
                yield chunk
            cursor.close()
            conn.rollback()  # read only: nothing to commit
        finally:
            conn.close()
            cursor.close()

    return columns, _batches(params, columns, rows())


# --- MySQL / MariaDB ---------------------------------------------------------------------------

_BINARY_CHARSET = 63  # MySQL's "binary" collation: the bytes are not text


def _bit_to_int(value: Any) -> Any:
    return None if value is None else int.from_bytes(value, "big")


def _bit_to_bool(value: Any) -> Any:
    return None if value is None else value != b"\x00"


def _mysql_column(params: SnapshotParams, field: Any) -> Column:
    from pymysql.constants import FIELD_TYPE, FLAG

    t, name = int(field.type_code), str(field.name)
    unsigned = bool(int(field.flags) & FLAG.UNSIGNED)
    binary = int(field.charsetnr) == _BINARY_CHARSET
    suffix = " unsigned" if unsigned else ""
    integers = {
        FIELD_TYPE.TINY: ("tinyint", pa.int8(), pa.int16()),
        FIELD_TYPE.SHORT: ("smallint", pa.int16(), pa.int32()),
        FIELD_TYPE.INT24: ("mediumint", pa.int32(), pa.int32()),
        FIELD_TYPE.LONG: ("int", pa.int32(), pa.int64()),
        FIELD_TYPE.LONGLONG: ("bigint", pa.int64(), pa.uint64()),
    }
    if t in integers:
        label, signed_type, unsigned_type = integers[t]
        return Column(name, unsigned_type if unsigned else signed_type, label + suffix)
    if t == FIELD_TYPE.YEAR:
        return Column(name, pa.int16(), "year")
    if t == FIELD_TYPE.FLOAT:
        return Column(name, pa.float32(), "float")
    if t == FIELD_TYPE.DOUBLE:
        return Column(name, pa.float64(), "double")
    if t in (FIELD_TYPE.DECIMAL, FIELD_TYPE.NEWDECIMAL):
        return Column(name, pa.float64(), "decimal (read as float64)")
    if t == FIELD_TYPE.BIT:
        if int(field.length) == 1:
            return Column(name, pa.bool_(), "bit(1)", _bit_to_bool)
        return Column(name, pa.int64(), f"bit({field.length})", _bit_to_int)
    if t in (FIELD_TYPE.DATE, FIELD_TYPE.NEWDATE):
        return Column(name, pa.date32(), "date")
    if t in (FIELD_TYPE.DATETIME, FIELD_TYPE.TIMESTAMP):
        return Column(
            name, pa.timestamp("us"), "datetime" if t == FIELD_TYPE.DATETIME else "timestamp"
        )
    if t in (FIELD_TYPE.ENUM, FIELD_TYPE.SET):
        return Column(name, pa.string(), "enum" if t == FIELD_TYPE.ENUM else "set")
    if t == FIELD_TYPE.JSON:
        return Column(name, pa.string(), "json (as text)")
    if t == FIELD_TYPE.NULL:
        return Column(name, pa.string(), "null")
    texts = {
        FIELD_TYPE.VARCHAR: ("varchar", "varbinary"),
        FIELD_TYPE.VAR_STRING: ("varchar", "varbinary"),
        FIELD_TYPE.STRING: ("char", "binary"),
        FIELD_TYPE.TINY_BLOB: ("tinytext", "tinyblob"),
        FIELD_TYPE.MEDIUM_BLOB: ("mediumtext", "mediumblob"),
        FIELD_TYPE.LONG_BLOB: ("longtext", "longblob"),
        FIELD_TYPE.BLOB: ("text", "blob"),
    }
    if t in texts:
        text_name, binary_name = texts[t]
        if binary:
            raise _fix(params, name, f"{binary_name} (binary)")
        return Column(name, pa.string(), text_name)
    names = {FIELD_TYPE.TIME: "time", FIELD_TYPE.GEOMETRY: "geometry"}
    raise _fix(params, name, names.get(t, f"MySQL field type {t}"))


def _mysql_error(params: SnapshotParams, user: str, e: Exception) -> DataSourceError:
    code = e.args[0] if e.args and isinstance(e.args[0], int) else 0
    text = str(e.args[1]) if len(e.args) > 1 else str(e)
    kind = "auth" if code in (1044, 1045, 1698) else "database" if code == 1049 else "unreachable"
    detail = f"MySQL {code}" if kind == "auth" else f"MySQL {code}: {text}"
    return _connect_error(params, user, kind, detail, "MySQL")


def _mysql_query_error(params: SnapshotParams, e: Exception) -> DataSourceError:
    code = e.args[0] if e.args and isinstance(e.args[0], int) else 0
    text = str(e.args[1]) if len(e.args) > 1 else str(e)
    return _query_failed(params, f"({code}) {text}")


def _read_mysql(
    params: SnapshotParams, username: str, password: str, batch_rows: int
) -> tuple[list[Column], Iterator[pa.RecordBatch]]:
    import pymysql
    import pymysql.converters
    from pymysql.constants import FIELD_TYPE

    conversions = dict(pymysql.converters.conversions)
    conversions[FIELD_TYPE.NEWDECIMAL] = float
    conversions[FIELD_TYPE.DECIMAL] = float
    try:
        conn = pymysql.connect(
            host=params.host,
            port=params.port,
            user=username,
            password=password,
            database=params.database,
            connect_timeout=params.connect_timeout,
            # The handshake too is bounded (a host that accepts the connection and then says
            # nothing would hang it); the limits are lifted once connected, below.
            read_timeout=params.connect_timeout,
            write_timeout=params.connect_timeout,
            charset="utf8mb4",
            conv=conversions,
            program_name=APPLICATION_NAME,
            cursorclass=pymysql.cursors.SSCursor,
        )
    except pymysql.err.MySQLError as e:
        raise _mysql_error(params, username, e) from None
    # A query may run long before its first row: no read limit from here on (PyMySQL applies
    # these before each read; it has no public setter).
    conn._read_timeout = conn._write_timeout = None
    cursor = conn.cursor()
    try:
        cursor.execute("START TRANSACTION READ ONLY")
        try:
            cursor.execute(params.query or "")
        except pymysql.err.MySQLError as e:
            raise _mysql_query_error(params, e) from None
        # PyMySQL's description lacks the charset that tells a blob from a text: its fields
        # have it (the unbuffered result's ``fields``).
        fields = list(getattr(cursor._result, "fields", None) or [])
        columns = [_mysql_column(params, f) for f in fields]
        _check_unique(params, columns)
    except BaseException:
        _abandon(conn, cursor)
        raise

    def rows() -> Iterator[list[tuple[Any, ...]]]:
        try:
            while True:
                try:
                    chunk = cursor.fetchmany(batch_rows)
                except pymysql.err.MySQLError as e:
                    raise _mysql_query_error(params, e) from None
                if not chunk:
                    break
                yield list(chunk)
            cursor.close()
            conn.rollback()
        finally:
            _abandon(conn, cursor)

    return columns, _batches(params, columns, rows())


def _abandon(conn: Any, cursor: Any) -> None:
    """Close the connection without draining an unfinished unbuffered result (PyMySQL's
    cursor.close would read every remaining row; its result would try to, when collected)."""
    result = getattr(cursor, "_result", None)
    if result is not None:
        result.unbuffered_active = False
    if conn.open:
        conn.close()


# --- both ------------------------------------------------------------------------------------


def _batches(
    params: SnapshotParams, columns: list[Column], chunks: Iterator[list[tuple[Any, ...]]]
) -> Iterator[pa.RecordBatch]:
    """Row tuples into record batches, column by column."""
    schema = pa.schema([pa.field(c.name, c.type) for c in columns])
    for chunk in chunks:
        arrays = []
        for column, values in zip(columns, zip(*chunk, strict=True), strict=True):
            data: Sequence[Any] = values
            if column.convert is not None:
                data = [column.convert(v) for v in values]
            try:
                arrays.append(pa.array(data, type=column.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError) as e:
                raise DataSourceError(
                    f"data source {params.data_source}: column {column.name!r} "
                    f"({column.source_type}) holds a value that does not fit {column.type}: "
                    f"{e}; cast it in the query (e.g. CAST({column.name} AS "
                    f"{'text' if params.engine == 'postgresql' else 'char'}))",
                    field="DataSpec.Sql.SelectSqlQuery",
                ) from None
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)


def read_query(
    params: SnapshotParams,
    username: str,
    password: str,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> tuple[pa.Schema, dict[str, str], Iterator[pa.RecordBatch]]:
    """The query's Arrow schema, each column's database type, and its rows as batches.

    Connecting and the first fetch happen here (so errors surface before any file is written);
    the batches stream from the server, ``batch_rows`` at a time."""
    if params.engine == "postgresql":
        columns, chunks = _read_postgresql(params, username, password, batch_rows)
    elif params.engine == "mysql":
        columns, chunks = _read_mysql(params, username, password, batch_rows)
    else:
        raise DataSourceError(f"data source {params.data_source}: no engine {params.engine!r}")
    schema = pa.schema([pa.field(c.name, c.type) for c in columns])
    return schema, {c.name: c.source_type for c in columns}, chunks
