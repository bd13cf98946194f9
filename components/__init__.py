"""Pulumi ComponentResources, one concern per module.

Components know validated manifest objects (`modelfleet.manifest.schema.ModelSpec`) and
stack settings; they know nothing of YAML, git or files.
"""
