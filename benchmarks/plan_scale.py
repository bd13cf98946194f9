"""How the offline plan scales: time and peak memory for fleets of 10 to 500 models.

For each size, a repository is made in a temporary folder with a manifest of that
many models (half serving, a quarter batch, a quarter both) and a history of
commits that each bump one model's version (the provenance walk reads them all);
then `plan --stack dev` runs in a fresh process. Prints figures; asserts nothing.

    venv/bin/python benchmarks/plan_scale.py [--sizes 10 100 500] [--commits 50]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.gitrepo import GitRepo  # noqa: E402

DIGEST = "ab" * 32


def manifest(models: int, bumped: int = -1, version: str = "1.0.0") -> str:
    lines = ["apiVersion: modelfleet/v1", "models:"]
    for index in range(models):
        sections = ["serving: {}", "batch: {}", "serving: {}\n    batch: {}",
                    "serving: {replicas: {min: 1, max: 3}}"][index % 4]
        lines.append(f"""\
  - name: model-{index:04d}
    team: team-{index % 7}
    version: {version if index == bumped else "1.0.0"}
    stage: approved
    artifact: {{uri: "s3://training/model-{index:04d}/model.joblib"}}
    image: {{ref: "registry.example/model-{index:04d}@sha256:{DIGEST}"}}
    {sections}""")
    return "\n".join(lines) + "\n"


def build(folder: Path, models: int, commits: int) -> GitRepo:
    repo = GitRepo(folder)
    shutil.copy2(ROOT / "Pulumi.yaml", folder / "Pulumi.yaml")
    shutil.copytree(ROOT / "stacks", folder / "stacks")
    repo.write("models.yaml", manifest(models))
    repo.commit("fleet")
    for commit in range(commits):
        repo.write("models.yaml", manifest(models, commit % models, f"1.0.{commit + 1}"))
        repo.commit(f"bump {commit}")
    return repo


PROBE = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from planner.plan import plan_stack
started = time.perf_counter()
plan = plan_stack(Path.cwd(), "dev")
elapsed = time.perf_counter() - started
print(json.dumps({{"seconds": elapsed, "resources": len(plan.head.registrations),
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 500])
    parser.add_argument("--commits", type=int, default=50)
    args = parser.parse_args()
    print(f"plan --stack dev, {args.commits} commits of history; a fresh process per size")
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as folder:
            made = time.perf_counter()
            repo = build(Path(folder) / "project", size, args.commits)
            setup = time.perf_counter() - made
            result = subprocess.run([sys.executable, "-c", PROBE.format(root=str(ROOT))],
                                    cwd=repo.root, capture_output=True, text=True, check=True)
            figures = json.loads(result.stdout.strip().splitlines()[-1])
            per = 1000 * figures["seconds"] / figures["resources"]
            print(f"{size:>5} models: {figures['resources']:>6} resources in "
                  f"{figures['seconds']:6.2f} s ({per:5.2f} ms each), "
                  f"peak memory {figures['peak_mb']:7.1f} MB  (repository made in {setup:.1f} s)")


if __name__ == "__main__":
    main()
