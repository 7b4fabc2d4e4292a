"""Where the telemetry files live: the `telemetry` storage (local `var/telemetry/`, or an
S3-compatible bucket through django-storages; settings block "Telemetry")."""

import io
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages


def storage() -> Storage:
    return storages["telemetry"]


def partition(dataset: str, date: str, hour: int) -> str:
    return f"{dataset}/date={date}/hour={hour}"


def write_table(name: str, table: pa.Table) -> None:
    """Write (or replace: a batch read again after a crash writes the same name) one file."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    store = storage()
    if store.exists(name):
        store.delete(name)
    store.save(name, ContentFile(buffer.getvalue()))


def read_table(name: str) -> pa.Table:
    with storage().open(name, "rb") as handle:
        return pq.read_table(io.BytesIO(handle.read()))


def walk(prefix: str = "") -> Iterator[str]:
    """Every Parquet file under `prefix` (dataset/date=.../hour=.../part-....parquet)."""
    store = storage()
    if prefix and not store.exists(prefix):
        return
    try:
        directories, names = store.listdir(prefix)
    except FileNotFoundError:
        return
    for name in sorted(names):
        if name.endswith(".parquet"):
            yield f"{prefix}/{name}" if prefix else name
    for directory in sorted(directories):
        yield from walk(f"{prefix}/{directory}" if prefix else directory)
