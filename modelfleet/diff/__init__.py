"""The semantic diff of two manifests, and its report as text, Markdown or JSON."""
