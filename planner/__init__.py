"""Runs the Pulumi program in-process under Pulumi's mock runtime and records what it declares.

Used by `python -m modelfleet plan` and by the tests: both see exactly the
resources, inputs and options that `pulumi up` would send to the engine.
"""
