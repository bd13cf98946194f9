"""The GitHub workflows: schema-valid, and wired the way the README says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from modelfleet.stacks.config import list_stacks
from tests.conftest import PROJECT

WORKFLOWS = PROJECT / ".github/workflows"


def workflow(name: str) -> dict[Any, Any]:
    return dict(yaml.safe_load((WORKFLOWS / name).read_text()))


def steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [step for step in job["steps"] if str(step.get("uses", "")).startswith(action)]


def runs(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) for step in job["steps"])


def test_workflows_match_githubs_schema() -> None:
    checker = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run([str(checker), "--builtin-schema", "vendor.github-workflows",
                             *map(str, sorted(WORKFLOWS.glob("*.yml")))],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_preview_comments_the_diff_plans_offline_and_previews_affected_stacks() -> None:
    jobs = workflow("preview.yml")["jobs"]
    manifest = jobs["manifest"]
    assert "modelfleet diff" in runs(manifest)
    assert "--format markdown" in runs(manifest)
    assert "modelfleet stacks --affected" in runs(manifest)
    plan = jobs["plan"]
    assert "fromJSON(needs.manifest.outputs.stacks)" in plan["strategy"]["matrix"]["stack"]
    assert "modelfleet plan --stack" in runs(plan)
    assert "--base" in runs(plan)
    assert "if" not in plan or "head.repo" not in plan["if"], "forks get the offline plan"
    preview = jobs["preview"]
    assert "head.repo.full_name == github.repository" in preview["if"]
    (pulumi,) = steps_using(preview, "pulumi/actions@")
    assert pulumi["with"]["command"] == "preview"
    assert pulumi["with"]["comment-on-pr"] is True
    assert pulumi["with"]["policyPacks"] == "policy"
    assert pulumi["with"]["stack-name"] == "${{ matrix.stack }}"


def test_the_plan_comment_leads_with_summary_and_risks_and_danger_fails_the_job() -> None:
    steps = workflow("preview.yml")["jobs"]["plan"]["steps"]
    names = [step.get("name") or step.get("uses", "") for step in steps]
    (planning,) = [s for s in steps if "modelfleet plan" in str(s.get("run", ""))]
    command = planning["run"]
    assert "--format markdown" in command  # summary and risks open the Markdown
    assert "--fail-on danger" in command
    assert "> plan.md" in command
    assert "set +e" in command, "the gate must not stop the comment from being posted"
    assert 'echo "status=$status" >> "$GITHUB_OUTPUT"' in command
    (comment,) = steps_using({"steps": steps}, "marocchino/sticky-pull-request-comment@")
    assert comment["with"]["path"] == "plan.md"
    (gate,) = [s for s in steps if "steps.plan.outputs.status" in str(s.get("if", ""))]
    assert planning["id"] == "plan"
    assert names.index(planning["name"]) < names.index(comment["uses"]) < names.index(
        gate["name"]), "plan, then comment, then the gate"
    assert "exit 1" in gate["run"]


def test_deploy_runs_up_for_every_stack_with_approval_for_production() -> None:
    document = workflow("deploy.yml")
    assert document[True]["push"]["branches"] == ["main"]  # YAML reads `on` as true
    jobs = document["jobs"]
    deployed: dict[str, str] = {}
    for job in jobs.values():
        for entry in job.get("strategy", {}).get("matrix", {}).get("include", []):
            deployed[entry["stack"]] = entry["environment"]
            (pulumi,) = steps_using(job, "pulumi/actions@")
            assert pulumi["with"]["command"] == "up"
            assert job["environment"] == "${{ matrix.environment }}"
    assert sorted(deployed) == list_stacks(PROJECT)
    assert {stack for stack, env in deployed.items() if env == "production"} == {
        "prod", "risk-prod"}
    assert jobs["up-production"]["needs"] == "up"


def test_the_scripts_the_workflows_run_exist() -> None:
    for script in ("scripts/install", "scripts/test"):
        assert (PROJECT / script).stat().st_mode & 0o111, f"{script} is not executable"
