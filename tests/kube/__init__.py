"""A real Kubernetes API server for tests: the control plane, kubectl, and the shared cluster."""
