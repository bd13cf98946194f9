"""How `promote` and `rollback` scale with the size of the manifest: 10 to 500 models.

For each size, a repository is made in a temporary folder with a manifest of that
many models (one of them with two candidates) and two commits; then the text edit
alone (`promote_text`, `rollback_text`) and the whole `rollback` step (read the
ref, edit, validate every environment, diff, write) are timed in this process.
Prints figures; asserts nothing.

    venv/bin/python benchmarks/rollout_scale.py [--sizes 10 100 500] [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from modelfleet.rollout.edit import compose  # noqa: E402
from modelfleet.rollout.promote import promote_text  # noqa: E402
from modelfleet.rollout.rollback import rollback_text  # noqa: E402
from modelfleet.rollout.step import rollback  # noqa: E402
from tests.gitrepo import GitRepo  # noqa: E402

IMAGE = "registry.example/m@sha256:" + "ab" * 32
CANDIDATES = """\
      candidates:               # a canary and a shadow
        - {name: canary, version: 1.1.0, artifact: {uri: "s3://t/canary"}, weight: 10}
        - {name: shadow, version: 1.2.0, artifact: {uri: "s3://t/shadow"}, mirror: 100}
"""


def manifest(models: int, version: str = "1.0.0") -> str:
    lines = ["# a fleet for the benchmark", "apiVersion: modelfleet/v1", "models:"]
    for index in range(models):
        lines.append(f"""\
  # model {index}
  - name: model-{index:04d}
    team: team-{index % 7}
    version: {version if index == models // 2 else "1.0.0"}   # the served version
    artifact: {{uri: "s3://training/model-{index:04d}/model.joblib"}}
    image: {{ref: "{IMAGE}"}}
    serving:
      port: 8080
{CANDIDATES if index == models // 2 else ""}    environments:
      prod: {{serving: {{replicas: {{min: 3, max: 30}}}}}}
""")
    return "\n".join(lines)


def best(repeat: int, action: Callable[[], object]) -> float:
    """Fastest of `repeat` runs, in milliseconds, each with nothing parsed beforehand."""
    times = []
    for _ in range(repeat):
        compose.cache_clear()
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return min(times)


def measure(size: int, repeat: int) -> tuple[float, float, float]:
    """Milliseconds: promote_text, rollback_text, and the whole rollback step."""
    old, new = manifest(size), manifest(size, version="1.0.1")
    middle = f"model-{size // 2:04d}"
    with tempfile.TemporaryDirectory() as folder:
        repo = GitRepo(Path(folder) / "repo")
        file = repo.write("models.yaml", old)
        repo.commit("fleet")
        file.write_text(new)
        repo.commit("bump the middle model")

        def step() -> None:
            file.write_text(new)
            rollback(file, middle, "HEAD~1")

        return (best(repeat, lambda: promote_text(new, "m", middle, "canary")),
                best(repeat, lambda: rollback_text(new, "m", old, "old", middle)),
                best(repeat, step))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 500])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{'models':>7} {'bytes':>8} {'promote_text ms':>16} {'rollback_text ms':>17} "
          f"{'rollback step ms':>17}")
    for size in args.sizes:
        print(f"{size:>7} {len(manifest(size)):>8} " + " ".join(
            f"{figure:>{width}.1f}" for figure, width in zip(measure(size, args.repeat),
                                                             (16, 17, 17), strict=True)))


if __name__ == "__main__":
    main()
