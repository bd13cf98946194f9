"""`promote MODEL CANDIDATE`: the candidate's version, artifact and image become the model's.

Only the model's own `version`, `artifact` and (when the candidate has one) `image`
values are replaced, each by the candidate's text as written, and the candidate's
lines are removed (the `candidates` key too, with the last candidate). Everything
else in the model and in the file stays as written.
"""

from __future__ import annotations

import copy
from typing import Any

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode

from modelfleet.rollout.edit import (
    Edited,
    RolloutError,
    Splice,
    apply,
    check_result,
    compose,
    delete_item,
    find_entry,
    get,
    item_data,
    model_names,
    models_sequence,
    named_items,
    scalar,
    shift,
    value_of,
    value_region,
)

PROMOTED = ("version", "artifact", "image")
"""What a candidate hands to its model, in this order; `image` only if the candidate sets it."""


def promote_text(text: str, where: str, model: str, candidate: str) -> Edited:
    """The manifest with `candidate` promoted into `model`; `RolloutError` if it cannot be.

    `where` names the file in messages. Refused: an unknown model or candidate, a
    candidate declared only in an environment override (promotion changes the model
    in every environment), or one an override declares again (it would outlive the
    promotion there). Overrides that set the model's `version`, `artifact` or `image`
    still win in their environment: each gives a warning.
    """
    models = models_sequence(compose(text, where), where)
    entry = find_entry(text, models, model)
    if entry is None:
        known = ", ".join(model_names(models)) or "none"
        raise RolloutError(f"model '{model}' is not in {where} (models: {known})")
    serving = value_of(entry.node, "serving")
    candidates = value_of(serving, "candidates")
    listed = dict(named_items(candidates))
    overrides = _overrides(entry.node)
    if candidate not in listed:
        _refuse_unknown(model, candidate, list(listed), overrides)
    for env, override in overrides:
        if _declares(override, candidate):
            raise RolloutError(
                f"model '{model}': environments.{env}.serving.candidates also declares "
                f"'{candidate}'; remove it there first, so that the promotion means the same "
                "in every environment")
    chosen = listed[candidate]
    splices = [_take(text, entry.node, chosen, key, model, candidate) for key in PROMOTED
               if get(chosen, key) is not None or key != "image"]
    splices.append(_remove(text, serving, candidates, chosen))
    if any(s.start < entry.start or s.end > entry.end for s in splices):
        raise AssertionError(f"an edit of model '{model}' reaches outside its entry")
    result = apply(text, splices)
    block = isinstance(serving, MappingNode) and not serving.flow_style
    written = item_data(text, entry.start, entry.end, model)
    if not isinstance(written, dict):
        raise RolloutError(f"model '{model}' could not be read back from {where}; "
                           "edit it by hand")
    expected = _promoted(written, candidate, None if block else {})
    check_result(text, result, entry.start, entry.end, model, expected)
    version = scalar(value_of(chosen, "version"))
    return Edited(result,
                  f"promoted candidate '{candidate}' of model '{model}' to version {version}",
                  tuple(_shadowing(overrides, chosen, model) + _unserved(chosen, model)))


def _promoted(written: dict[str, Any], candidate: str,
              emptied_to: dict[str, Any] | None) -> dict[str, Any]:
    """The model's entry as the promotion should leave it, as plain data.

    `emptied_to`: what `serving` reads as once its last key is gone (`serving:` alone
    in block style is null, which means "serve, with the defaults").
    """
    entry = copy.deepcopy(written)
    serving = entry["serving"]
    chosen = next(c for c in serving["candidates"] if c.get("name") == candidate)
    for key in PROMOTED:
        if key in chosen:
            entry[key] = chosen[key]
    serving["candidates"] = [c for c in serving["candidates"] if c is not chosen]
    if not serving["candidates"]:
        del serving["candidates"]
    if not serving:
        entry["serving"] = emptied_to
    return entry


def _overrides(entry: Node) -> list[tuple[str, Node]]:
    environments = value_of(entry, "environments")
    if not isinstance(environments, MappingNode):
        return []
    return [(str(key.value), value) for key, value in environments.value]


def _declares(override: Node, candidate: str) -> bool:
    """Whether an environment override lists `candidate` in its own `serving.candidates`."""
    return candidate in dict(named_items(value_of(value_of(override, "serving"), "candidates")))


def _refuse_unknown(model: str, candidate: str, listed: list[str],
                    overrides: list[tuple[str, Node]]) -> None:
    for env, override in overrides:
        if _declares(override, candidate):
            raise RolloutError(
                f"candidate '{candidate}' of model '{model}' is declared only in "
                f"environments.{env}; promotion changes the model in every environment, so "
                "declare the candidate under the model's serving.candidates first")
    known = f"its candidates: {', '.join(listed)}" if listed else "it has none"
    raise RolloutError(f"model '{model}' has no candidate '{candidate}' in serving.candidates "
                       f"({known})")


def _take(text: str, entry: Node, chosen: MappingNode, key: str, model: str,
          candidate: str) -> Splice:
    """Replace the model's value of `key` with the candidate's, re-indented to fit."""
    theirs = get(chosen, key)
    if theirs is None:
        raise RolloutError(f"candidate '{candidate}' of model '{model}' has no `{key}`")
    ours = get(entry, key)
    if ours is None:
        raise RolloutError(f"model '{model}' has no `{key}` to replace; "
                           "run `python -m modelfleet validate`")
    start, end = value_region(text, *ours)
    their_start, their_end = value_region(text, *theirs)
    columns = ours[0].start_mark.column - theirs[0].start_mark.column
    return Splice(start, end, shift(text[their_start:their_end], columns, first_line=False))


def _remove(text: str, serving: Node | None, candidates: Node | None,
            chosen: MappingNode) -> Splice:
    """Remove the candidate, or the whole `candidates` key when it is the last one."""
    assert isinstance(serving, MappingNode)
    assert candidates is not None
    if len(candidates.value) > 1:
        return delete_item(text, candidates, candidates.value.index(chosen))
    keys = [key.value if isinstance(key, ScalarNode) else None for key, _ in serving.value]
    return delete_item(text, serving, keys.index("candidates"))


def _unserved(chosen: MappingNode, model: str) -> list[str]:
    """A shadow's answers were discarded: promoting it sends it all traffic untried."""
    mirror = scalar(value_of(chosen, "mirror"))
    if mirror is None:
        return []
    name = scalar(value_of(chosen, "name"))
    return [f"model '{model}': candidate '{name}' was a shadow (mirror {mirror}%): it saw live "
            "requests but none of its answers was served; this promotion gives it all traffic "
            "at once (a `weight` step first would serve some of them)"]


def _shadowing(overrides: list[tuple[str, Node]], chosen: MappingNode,
               model: str) -> list[str]:
    """Warnings for environment overrides that keep their own version, artifact or image."""
    warnings = []
    for env, override in overrides:
        for key in PROMOTED:
            if key == "image" and get(chosen, key) is None:
                continue
            value = value_of(override, key)
            if value is not None:
                shown = f" {scalar(value)}" if scalar(value) is not None else ""
                warnings.append(
                    f"model '{model}': environments.{env} sets its own {key}{shown}, so "
                    f"{env} does not get the promoted {key}; edit or remove that override")
    return warnings
