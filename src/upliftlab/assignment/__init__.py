"""The assignment, one job per module: `formula` (the pure hash, design and quotas), `sql` (the
formula's SQL, written once), `engine` (the DuckDB run over a pool), `experiment` (a spec's
assignment and checks in the store), `export` (the contact lists). `upliftlab.assign` re-exports
the public names.
"""
