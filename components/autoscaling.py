"""What every autoscaler of a model shares, so that a stack can switch between them in one update.

A Deployment is scaled either by a HorizontalPodAutoscaler we declare (CPU) or by a KEDA
ScaledObject (queue depth, request load), whose HPA KEDA makes itself. Pulumi creates the
new autoscaler before it deletes the old one, so for a moment both exist. KEDA's admission
webhook refuses a ScaledObject whose target another HPA already scales, unless that HPA
opts out with `validations.keda.sh/hpa-ownership: "false"` (KEDA 2.15+,
`apis/keda/v1alpha1/scaledobject_webhook.go`): every HPA we declare carries it, so the
switch CPU -> KEDA passes; the switch back needs nothing (no webhook guards HPAs). During
the moment both exist, the HPA controller sees two autoscalers for one target and leaves
the replica count as it is (condition `AmbiguousSelector`) until the old one is deleted.
"""

from __future__ import annotations

KEDA_API = "keda.sh/v1alpha1"
KEDA_HPA_OWNERSHIP = "validations.keda.sh/hpa-ownership"
SWITCHABLE = {KEDA_HPA_OWNERSHIP: "false"}
"""Annotations of every HPA we declare: KEDA may take over its target in the same update."""
