"""The manifest in git: its text at any ref, a model's history, which commit set each version."""
