"""The Pulumi program: stack config -> validated manifest -> stack outputs.

Nothing is declared until the whole manifest has been validated for this
stack's environment; a bad manifest is reported, one line per problem, and
the update stops cleanly.
"""

from pathlib import Path

import pulumi

from modelfleet.load import load_resolution
from modelfleet.problems import ManifestError, SourceError
from modelfleet.settings import CONFIG_KEYS, NAMESPACE, StackSettings


def read_settings() -> StackSettings:
    config = pulumi.Config(NAMESPACE)
    values = {key: config.get(key) for key in CONFIG_KEYS}
    return StackSettings.parse(values, f"stacks/Pulumi.{pulumi.get_stack()}.yaml")


def main() -> None:
    try:
        settings = read_settings()
        source, resolution = load_resolution(Path(settings.manifest), settings.manifest_ref,
                                             settings.environment, display=settings.manifest)
        resolution = resolution.select(settings.team, settings.require_approved)
    except ManifestError as error:
        for problem in error.problems:
            pulumi.log.error(str(problem))
        raise pulumi.RunError(f"{len(error.problems)} problem(s); nothing was declared") from None
    except SourceError as error:
        raise pulumi.RunError(str(error)) from None
    pulumi.export("manifest", {
        "commit": source.commit.sha if source.commit else None,
        "digest": source.digest,
        "models": [model.name for model in resolution.models],
    })


main()
