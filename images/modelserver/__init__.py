"""modelfleet's generic model server: the Open Inference Protocol, queues and runs."""
