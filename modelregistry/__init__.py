"""Read a modelfleet registry over plain S3: the client API (its commands: `cli/registry.py`)."""
