"""A partitioned run ends with exactly one `_SUCCESS.json`; `runs status` follows it.

The real model server runs each partition as its own process (as each pod of an
Indexed Job does), against S3 served by moto on 127.0.0.1.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cli.main import main
from modelfleet.release import layout
from tests.modelserver_support import free_port, save_model, server_env, trained_model
from tests.registry_world import moto_s3, s3, versioned_bucket

BUCKET = "registry-runs"
MODEL, RUN, PARTITIONS = "churn", "backfill", 3
ROWS_PER_OBJECT, OBJECTS = 3, 5


@dataclass
class Run:
    env: dict[str, str]
    model_uri: str
    input_uri: str
    output_uri: str


@pytest.fixture(scope="module")
def run_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    with moto_s3() as env:
        versioned_bucket(BUCKET)  # as the registry is: a second PUT would be a second version
        model = save_model(trained_model(), tmp_path_factory.mktemp("model"))
        key = layout.artifact_prefix(MODEL, "1.2.0") + "model.joblib"
        s3().upload_file(str(model), BUCKET, key)
        rng = np.random.default_rng(7)
        for i in range(OBJECTS):
            rows = rng.normal(size=(ROWS_PER_OBJECT, 4))
            body = "\n".join(json.dumps({"id": f"{i}:{j}", "features": row.tolist()})
                             for j, row in enumerate(rows))
            s3().put_object(Bucket=BUCKET, Key=f"inputs/{MODEL}/2026-10/part-{i}.jsonl",
                            Body=body.encode())
        yield Run(env, f"s3://{BUCKET}/{key}", f"s3://{BUCKET}/inputs/{MODEL}/2026-10/",
                  f"s3://{BUCKET}/{layout.run_prefix(MODEL, RUN)}")


def partition(world: Run, index: int, tmp_path: Path) -> str:
    """One pod of the Indexed Job: `python -m modelserver` in job mode; its log."""
    env = server_env(world.model_uri, free_port(), MODEL_MODE="job", INPUT_URI=world.input_uri,
                     OUTPUT_URI=world.output_uri, PARTITIONS=str(PARTITIONS),
                     JOB_COMPLETION_INDEX=str(index),
                     MODEL_CACHE_DIR=str(tmp_path / f"cache-{index}"), **world.env)
    done = subprocess.run([sys.executable, "-m", "modelserver"], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stderr


def status(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    code = main(["runs", "status", MODEL, RUN, "--bucket", BUCKET, *extra])
    out, err = capsys.readouterr()
    return code, out, err


def summary_versions() -> list[dict[str, Any]]:
    listed = s3().list_object_versions(Bucket=BUCKET, Prefix=layout.success_key(MODEL, RUN))
    return list(listed.get("Versions", []))


def test_partitions_in_any_order_one_twice_end_in_exactly_one_summary(
        run_world: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    partition(run_world, 2, tmp_path)
    partition(run_world, 0, tmp_path)
    again = partition(run_world, 2, tmp_path)
    assert "partition 2 of 3 is already done" in again
    assert summary_versions() == []

    code, out, err = status(capsys)
    assert code == 1
    assert out.splitlines() == [f"run {RUN} of {MODEL}: under way, 2 of 3 partition(s) written",
                                "  done     0, 2", "  missing  1"]
    assert err == (f"error: run '{RUN}' of model '{MODEL}' is not finished: 1 of 3 "
                   "partition(s) missing\n")

    last = partition(run_world, 1, tmp_path)
    assert "run: all 3 partitions written; summary" in last
    assert len(summary_versions()) == 1, "exactly one summary, and one version of it"
    partition(run_world, 0, tmp_path)  # a retried pod after the run is done
    assert len(summary_versions()) == 1

    summary = json.loads(s3().get_object(Bucket=BUCKET, Key=layout.success_key(MODEL, RUN))[
        "Body"].read())
    total = ROWS_PER_OBJECT * OBJECTS
    assert {k: summary[k] for k in ("model", "version", "run", "partitions", "rowsIn",
                                    "rowsOut")} == {
        "model": MODEL, "version": "1.2.0", "run": RUN, "partitions": PARTITIONS,
        "rowsIn": total, "rowsOut": total}
    parts = s3().list_objects_v2(Bucket=BUCKET, Prefix=layout.run_prefix(MODEL, RUN) + "part-")
    assert [(p["partition"], p["key"], p["size"]) for p in summary["parts"]] == [
        (i, item["Key"], item["Size"]) for i, item in enumerate(parts["Contents"])]
    assert [p["rowsIn"] for p in summary["parts"]] == [6, 6, 3], "objects dealt round-robin"
    assert summary["started"] <= summary["finished"]

    code, out, err = status(capsys)
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == (f"run {RUN} of {MODEL} (version 1.2.0): done, 3 "
                                   f"partition(s), {total} rows in, {total} rows out")
    code, out, _ = status(capsys, "--format", "json")
    assert json.loads(out)["summary"] == summary
    assert json.loads(out)["missing"] == []


def test_a_pod_that_loses_the_race_writes_no_second_summary(
        run_world: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two pods find the run complete at once: the conditional PUT lets only one write."""
    from modelserver import batch, storage
    from modelserver.settings import Settings

    run = "race"
    output = f"s3://{BUCKET}/{layout.run_prefix(MODEL, run)}"
    storage.s3.cache_clear()  # a client for this module's S3 server
    try:
        for index in range(PARTITIONS):
            record = layout.PartRecord(index=index, key=layout.part_key(MODEL, run, index),
                                       size=2, rows_in=1, rows_out=1,
                                       started="2026-11-29T10:00:00.000Z",
                                       finished="2026-11-29T10:00:01.000Z",
                                       partitions=PARTITIONS)
            storage.write_bytes(f"s3://{BUCKET}/{record.key}", b"{}",
                                metadata=record.object_metadata())
        settings = Settings(model_name=MODEL, model_version="1.2.0",
                            model_uri=run_world.model_uri, mode="job",
                            input_uri=run_world.input_uri, output_uri=output,
                            partitions=PARTITIONS)
        # Both pods look before either writes: neither sees a summary.
        monkeypatch.setattr(batch, "exists", lambda uri: False)
        outcomes = [batch.finish_run(settings), batch.finish_run(settings)]
    finally:
        storage.s3.cache_clear()
    assert outcomes == [True, False]
    listed = s3().list_object_versions(Bucket=BUCKET, Prefix=layout.success_key(MODEL, run))
    assert len(listed["Versions"]) == 1


def test_an_unknown_run_is_one_line(run_world: Run, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["runs", "status", MODEL, "nightly", "--bucket", BUCKET])
    out, err = capsys.readouterr()
    assert (code, out) == (1, "")
    assert err == (f"error: no run 'nightly' of model '{MODEL}' in s3://{BUCKET} (nothing below "
                   f"outputs/{MODEL}/nightly/)\n")
