"""`python -m modelfleet`: the command line, above everything it dispatches to.

Each module adds one group of commands and formats what they return; the work is
done by `modelfleet` (manifest, git, diff, release steps), `planner` (the offline
plan) and `modelregistry` (the registry client). Exit status: 0 success, 1 a
problem with the input (every message on stderr), 2 a usage error, 3 a plan risk
at or above `--fail-on`.
"""
