"""Read a modelfleet registry over plain S3: the client API and its CLI commands."""
