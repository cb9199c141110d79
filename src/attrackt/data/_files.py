"""Parquet files that carry attrackt's own metadata (what kind of table, its meta)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from attrackt.errors import InputError
from attrackt.io.atomic import atomic_path

_META_KEY = b"attrackt"


def read_parquet(path: str | Path):  # -> tuple[pyarrow.Table, dict]
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise InputError(path, f"not a readable parquet file ({err})") from err
    raw = (table.schema.metadata or {}).get(_META_KEY)
    meta = json.loads(raw) if raw else {}
    return table, meta


def write_parquet(path: str | Path, table, meta: dict[str, Any]) -> None:
    import pyarrow.parquet as pq

    schema_meta = dict(table.schema.metadata or {})
    schema_meta[_META_KEY] = json.dumps(meta).encode()
    table = table.replace_schema_metadata(schema_meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
