"""The one-condition filter of `lake show --where`: small on purpose, so it needs no parser and
every accepted expression has one obvious meaning."""
from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from datalake.errors import BadInput
from datalake.layout import PARTITION_COLUMNS

_EQUALS = re.compile(r"\s*(\w+)\s*=\s*(.*?)\s*")
_CONTAINS = re.compile(r"\s*(\w+)\s+contains\s+(.*?)\s*")


@dataclass(frozen=True)
class Where:
    HELP = ("COLUMN=VALUE on a text column or dt/hour (e.g. lang=en, author_username=foo, hour=07), or "
            "LIST contains VALUE on a list-of-text column (e.g. topics contains ai); exact, case-sensitive")

    column: str
    value: str
    contains: bool

    @classmethod
    def parse(cls, expression: str, schema: pa.Schema) -> "Where":
        """Check `expression` against the bronze schema; anything else is a clear BadInput."""
        for pattern, contains in ((_CONTAINS, True), (_EQUALS, False)):
            match = pattern.fullmatch(expression)
            if match:
                column, value = match.group(1), _unquote(match.group(2))
                break
        else:
            raise BadInput(f"--where {expression!r}: expected COLUMN=VALUE or LIST contains VALUE")
        if not value:
            raise BadInput(f"--where {expression!r}: the value is empty")
        text = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        lists = [f.name for f in schema if pa.types.is_list(f.type) and pa.types.is_string(f.type.value_type)]
        allowed = lists if contains else text + list(PARTITION_COLUMNS)
        if column not in allowed:
            kind = "list-of-text columns" if contains else "text columns"
            raise BadInput(f"--where {expression!r}: {column!r} is not one of the {kind}: {', '.join(allowed)}")
        if column == "hour" and value.isdigit():
            value = f"{int(value):02d}"  # the folders say hour=07
        return cls(column, value, contains)

    @property
    def on_partition(self) -> bool:
        return self.column in PARTITION_COLUMNS

    def keeps_partition(self, values: dict[str, str]) -> bool:
        return not self.on_partition or values.get(self.column) == self.value

    def mask(self, table: pa.Table) -> pa.Array:
        """True for the rows of `table` that satisfy the condition (null is never a match)."""
        column = table.column(self.column).combine_chunks()
        if not self.contains:
            return pc.fill_null(pc.equal(column, self.value), False)
        hits = pc.filter(pc.list_parent_indices(column), pc.equal(pc.list_flatten(column), self.value))
        return pc.is_in(pa.array(range(table.num_rows), pa.int64()), value_set=hits.cast(pa.int64()))


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value
