"""modelfleet's plain-Python core: the model manifest, its git history and its diff.

Nothing here knows of Pulumi or of any cloud; `components/` declares resources
from the validated objects this package produces. One subpackage per concern:
`manifest` (format and validation), `git`, `stacks`, `diff`, `release` (what a
stack deploys) and `rollout` (release edits: promote, rollback).
"""
