"""What the national coordinator runs: the store (one DuckDB file) with its migrations, hash-chained ledger and
registry, the admission rules and merge, the archive, budget reports, the national table, its rendering and the report.
"""
