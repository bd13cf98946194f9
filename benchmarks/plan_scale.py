"""How the offline plan scales, and what it costs beside the bare Pulumi SDK.

For each size, a repository is made in a temporary folder with a manifest of that
many models (half serving, a quarter batch, a quarter both) and a history of
commits that each bump one model's version (the provenance walk reads them all);
then `plan --stack dev` runs in a fresh process. Prints figures; asserts nothing.

The ratio: `python -m modelfleet plan --stack dev` on a fleet of `--ratio-models`
models, against a process of the same venv that registers as many bare ConfigMaps
(`pulumi_kubernetes.core.v1.ConfigMap`, one data key each) under the SDK's own mock
runtime with its defaults, as a preview. Both are whole processes (start-up and
imports included), run alternately `--rounds` times so that both see the same load;
the median CPU time (user + system, from the kernel's accounting of the child) and
wall time of each are printed, and their ratios.

    venv/bin/python benchmarks/plan_scale.py [--sizes 10 100 500] [--commits 50]
                                             [--ratio-models 192] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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

CONFIGMAPS = """
import sys
import pulumi
import pulumi_kubernetes as k8s
from pulumi.runtime import settings
from pulumi.runtime.stack import run_in_stack
from pulumi.runtime.sync_await import _sync_await

class Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args):
        return f"{{args.name}}-id", dict(args.inputs)
    def call(self, args):
        return {{}}

def program():
    for index in range({count}):
        k8s.core.v1.ConfigMap(f"config-{{index}}", data={{"key": f"value-{{index}}"}})

pulumi.runtime.set_mocks(Mocks(), project="baseline", stack="dev", preview=True)
settings.ROOT.set(None)  # run_in_stack makes the root stack, as the plan's simulation does
_sync_await(run_in_stack(program))
"""


@dataclass(frozen=True)
class Run:
    cpu: float
    """User plus system CPU seconds of the process."""
    wall: float


def timed(command: list[str], cwd: Path) -> Run:
    """A whole process: its wall time and the CPU time the kernel accounted to it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    error = process.stderr.read().decode() if process.stderr else ""
    if process.stderr:
        process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{error}")
    return Run(usage.ru_utime + usage.ru_stime, wall)


def scaling(sizes: list[int], commits: int) -> None:
    print(f"plan --stack dev, {commits} commits of history; a fresh process per size")
    for size in sizes:
        with tempfile.TemporaryDirectory() as folder:
            made = time.perf_counter()
            repo = build(Path(folder) / "project", size, commits)
            setup = time.perf_counter() - made
            result = subprocess.run([sys.executable, "-c", PROBE.format(root=str(ROOT))],
                                    cwd=repo.root, capture_output=True, text=True, check=True)
            figures = json.loads(result.stdout.strip().splitlines()[-1])
            per = 1000 * figures["seconds"] / figures["resources"]
            print(f"{size:>5} models: {figures['resources']:>6} resources in "
                  f"{figures['seconds']:6.2f} s ({per:5.2f} ms each), "
                  f"peak memory {figures['peak_mb']:7.1f} MB  (repository made in {setup:.1f} s)")


def ratio(models: int, commits: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        repo = build(Path(folder) / "project", models, commits)
        counted = subprocess.run([sys.executable, "-c", PROBE.format(root=str(ROOT))],
                                 cwd=repo.root, capture_output=True, text=True, check=True)
        count = int(json.loads(counted.stdout.strip().splitlines()[-1])["resources"])
        plan = [sys.executable, "-m", "modelfleet", "plan", "--stack", "dev"]
        bare = [sys.executable, "-c", CONFIGMAPS.format(count=count)]
        plans: list[Run] = []
        baselines: list[Run] = []
        for _ in range(rounds):
            plans.append(timed(plan, repo.root))
            baselines.append(timed(bare, repo.root))
    print(f"\n{models} models ({count} registrations, {commits} commits of history) against "
          f"{count} bare ConfigMaps, whole processes, {rounds} alternating rounds (medians):")
    for label, runs in (("plan", plans), ("ConfigMaps", baselines)):
        print(f"  {label:<11} cpu {statistics.median(r.cpu for r in runs):6.2f} s   "
              f"wall {statistics.median(r.wall for r in runs):6.2f} s   "
              f"(cpu per round: {', '.join(f'{r.cpu:.2f}' for r in runs)})")
    cpu = statistics.median(r.cpu for r in plans) / statistics.median(r.cpu for r in baselines)
    wall = statistics.median(r.wall for r in plans) / statistics.median(r.wall for r in baselines)
    print(f"  ratio       cpu {cpu:.2f}x   wall {wall:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10, 100, 500])
    parser.add_argument("--commits", type=int, default=50)
    parser.add_argument("--ratio-models", type=int, default=192,
                        help="fleet size of the ratio to bare ConfigMaps (0: skip it)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.sizes:
        scaling(args.sizes, args.commits)
    if args.ratio_models:
        ratio(args.ratio_models, args.commits, args.rounds)


if __name__ == "__main__":
    main()
