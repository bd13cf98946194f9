"""Release steps as reviewed git changes: `promote` a candidate, `rollback` a model to a ref.

Each step edits the manifest in place, only inside the one model it concerns,
so the pull request that carries it shows nothing else; it never commits and
never applies.
"""
