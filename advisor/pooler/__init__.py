"""Connection poolers in front of the server: config parsers, live consoles, sizing.

One module per pooler (`pgbouncer`, `pgpool`) plus its sizing arithmetic (`*_sizing`). Nothing
here is imported on the offline `advisor explain` path; psycopg and pydantic load inside the
functions that read a live console.
"""
