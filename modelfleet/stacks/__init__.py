"""Stacks: their config files, their typed `modelfleet:*` settings, which ones a change affects."""
