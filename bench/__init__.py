"""The benchmark harness of `make bench` (bench/README.md), one module per concern.

- `run.py`: the entry point (`python bench/run.py`, what the Makefile runs);
- `cli.py`: the options, the run of every backend asked for, RESULTS.md and the JSON written;
- `common.py`: paths, the benchmark tenant's names and keys, the log, BenchError;
- `tools.py`: wrk, and what is installed for the benchmark only (granian, py-spy);
- `dataset.py`: the databases: created, migrated, provisioned, seeded (`opencams dev seed`);
- `servers.py`: `opencams serve` (or granian) as a subprocess, until it answers;
- `scenarios.py`: what is measured: each scenario's request and the check of its answer;
- `load.py`: signed requests written ahead, wrk replaying them, the figures of a run;
- `procfs.py`: CPU and memory of the processes involved, from /proc;
- `suite.py`: the runs on one database, in order;
- `profiling.py`: py-spy on the server, the store calls timed one by one, the query plans;
- `report.py`: RESULTS.md: the tables, the targets, the profile.
"""
