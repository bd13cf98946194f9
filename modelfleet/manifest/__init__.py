"""The manifest and its validation: the `modelfleet/v1` format, parsing, merging, checks."""
