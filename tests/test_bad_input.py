"""No traceback on any bad input: bad paths, refs, URLs and names each get one line and exit 1.

Each case runs the command line in-process: an exception that escapes `main` (what a
user would see as a traceback) fails the test with that exception.
"""

from __future__ import annotations

import pytest

from cli.main import main
from tests.gitrepo import GitRepo

REF = "registry.example/fraud@sha256:" + "e" * 64
PROJECT_FILE = "name: modelfleet\nruntime: python\nstackConfigDir: stacks\n"
STACK = """\
config:
  aws:region: eu-west-1
  modelfleet:environment: dev
  modelfleet:namespace: models
  modelfleet:oidcProviderArn: arn:aws:iam::123456789012:oidc-provider/example
  modelfleet:oidcProviderUrl: oidc.example/id/1
"""
MANIFEST = f"""\
apiVersion: modelfleet/v1
models:
  - name: fraud
    team: risk
    version: 1.0.0
    artifact: {{uri: "s3://training/fraud/model"}}
    image: {{ref: "{REF}"}}
    batch: {{}}
"""
OFFLINE = ["--bucket", "models", "--endpoint-url", "http://127.0.0.1:1"]
"""A registry endpoint nothing listens on: every request is refused at once."""

CASES = {
    # paths
    "a folder as FILE": (["validate", "adir"], "adir: cannot be read"),
    "a file that is not UTF-8": (["validate", "binary.yaml"], "binary.yaml: cannot be read"),
    "a NUL in FILE": (["validate", "models.yaml\0x"], "a path cannot hold a NUL character"),
    "a missing FILE": (["diff", "nosuch.yaml"], "nosuch.yaml: no such file"),
    "a FILE outside git": (["history", "fraud", "/"], "not inside a git repository"),
    "--render onto a file": (["plan", "--stack", "dev", "--render", "notes.txt"],
                             "notes.txt: exists and is not a folder"),
    "--render where nothing can be written": (["plan", "--stack", "dev", "--render",
                                               "/proc/modelfleet"], "cannot write the render"),
    "a stack file that is a folder": (["plan", "--stack", "odd"],
                                      "stacks/Pulumi.odd.yaml: cannot be read"),
    "schema --write with no schema folder": (["schema", "--write"],
                                             "schema/manifest.schema.json: cannot be written"),
    # refs
    "an unknown ref": (["diff", "--base", "nosuch"], "unknown git ref 'nosuch'"),
    "a ref past the first commit": (["diff", "--base", "HEAD~9"], "unknown git ref 'HEAD~9'"),
    "a previous-checkout ref": (["diff", "--base", "@{-1}"], "unknown git ref '@{-1}'"),
    "a reflog index too far": (["diff", "--base", "HEAD@{99999}"], "unknown git ref"),
    "an upstream ref with no upstream": (["rollback", "fraud", "--to", "main@{upstream}"],
                                         "unknown git ref"),
    "a range": (["stacks", "--affected", "main..HEAD"], "unknown git ref 'main..HEAD'"),
    "a tree, not a commit": (["plan", "--stack", "dev", "--base", "HEAD^{tree}"],
                             "unknown git ref 'HEAD^{tree}'"),
    # names
    "a model name with a slash": (["history", "a/b"], "model 'a/b' does not appear"),
    "a model name with shell characters": (["rollback", "$(x)", "--to", "HEAD"],
                                           "model '$(x)' is not in models.yaml"),
    "an unknown candidate": (["promote", "fraud", "x y"], "has no candidate 'x y'"),
    "a stack name with a path": (["plan", "--stack", "../dev"], "no stack '../dev'"),
    "a registry reference": (["registry", "show", "@@", *OFFLINE], "'@@' is not NAME"),
    # URLs
    "an endpoint that is not a URL": (["registry", "list", "--bucket", "models",
                                       "--endpoint-url", "not a url"],
                                      "--endpoint-url 'not a url' is not a URL"),
    "an endpoint nothing listens on": (["registry", "list", *OFFLINE],
                                       "Could not connect to the endpoint URL"),
    "a bucket name with a space": (["registry", "list", "--bucket", "my models",
                                    "--endpoint-url", "http://127.0.0.1:1"],
                                   "Invalid bucket name \"my models\""),
}


@pytest.fixture
def project(repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> GitRepo:
    repo.write("Pulumi.yaml", PROJECT_FILE)
    repo.write("stacks/Pulumi.dev.yaml", STACK)
    repo.write("models.yaml", MANIFEST)
    repo.commit("one model")
    repo.write("notes.txt", "mine\n")
    (repo.root / "stacks/Pulumi.odd.yaml").mkdir()
    (repo.root / "adir").mkdir()
    (repo.root / "binary.yaml").write_bytes(b"\xff\xfe\x00")
    monkeypatch.chdir(repo.root)
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_MAX_ATTEMPTS": "1", "AWS_REGION": "eu-west-1"}.items():
        monkeypatch.setenv(key, value)
    return repo


@pytest.mark.parametrize(("args", "said"), list(CASES.values()), ids=list(CASES))
def test_bad_input_gets_one_line_and_exit_1(
        project: GitRepo, capsys: pytest.CaptureFixture[str], args: list[str],
        said: str) -> None:
    code = main(args)
    err = capsys.readouterr().err
    assert code == 1, err
    assert len(err.splitlines()) == 1, err
    assert said in err
