"""Only what every side truly shares: atomic files, the clock, DuckDB connections, Excel-safe CSV.
"""
