"""`opencams dev seed`: realistic chat groups written straight into the database, for benchmarks
and development databases (it bypasses Meta, which would have to confirm every group).

`generate`: what rows to make (deterministic for a random seed); `bulk`: how they are written.
"""
