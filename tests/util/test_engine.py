"""engine.py: the organisation's DuckDB connection keeps rows in file order, so error row numbers are right."""

from __future__ import annotations

import duckdb

from aggregator.util.engine import connect
from aggregator.organisation.readers import read_export


def test_row_numbers_follow_the_file_on_a_large_parallel_read(tmp_path):
    """30 MB is enough for DuckDB's parallel CSV reader; without insertion order most rows got another row's number."""
    path = tmp_path / "wide.csv"
    duckdb.execute(
        f"""
        COPY (SELECT i AS n, md5(i::VARCHAR) AS a, md5((i + 1)::VARCHAR) AS b, md5((i + 2)::VARCHAR) AS c
              FROM range(300000) t(i))
        TO '{path}' (HEADER, DELIMITER ',')
        """
    )
    con = connect()
    info = read_export(con, path)
    assert info.rows == 300_000
    wrong = con.execute("SELECT count(*) FROM export_raw WHERE __row <> CAST(n AS BIGINT) + 2").fetchone()[0]
    assert wrong == 0
