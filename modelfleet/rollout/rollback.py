"""`rollback MODEL --to REF`: the model's entry as it was written at a git ref.

The whole list item is taken from the file at REF, with its comments, and put
in place of the model's current item (re-indented if the list's indentation
changed since). A model removed since REF is put back after the model it
followed at REF, or at the end of the list, with the comment (and blank) lines
that stood directly above it.
"""

from __future__ import annotations

from ruamel.yaml.nodes import SequenceNode

from modelfleet.rollout.edit import (
    Edited,
    Entry,
    RolloutError,
    Splice,
    apply,
    check_result,
    compose,
    entry_of,
    find_entry,
    item_data,
    line_start,
    model_names,
    models_sequence,
    shift,
)


def entry_text(text: str, where: str, model: str) -> str | None:
    """The lines of model `model`'s entry as written, or None when the model is absent."""
    entry = find_entry(text, models_sequence(compose(text, where), where), model)
    return text[entry.start:entry.end] if entry else None


def rollback_text(text: str, where: str, old_text: str, old_where: str, model: str) -> Edited:
    """`text` with the entry of `model` as written in `old_text` (the file at a ref).

    `where` and `old_where` name the two texts in messages. `RolloutError` when the
    model is not in `old_text`.
    """
    old_models = models_sequence(compose(old_text, old_where), old_where)
    old = find_entry(old_text, old_models, model)
    if old is None:
        raise RolloutError(f"model '{model}' is not in {old_where}; there is nothing to "
                           "roll back to")
    block = old_text[old.start:old.end]
    expected = item_data(old_text, old.start, old.end, model)
    models = models_sequence(compose(text, where), where)
    current = find_entry(text, models, model)
    if current is not None:
        splice = Splice(current.start, current.end, shift(block, current.indent - old.indent))
        edited = apply(text, [splice])
        check_result(text, edited, current.start, current.end, model, expected)
        if edited == text:
            return Edited(text, f"model '{model}' is already as in {old_where}")
        return Edited(edited, f"restored model '{model}' as in {old_where}")
    after = _insert_after(text, models, model_names(old_models), model)
    newline = "\r\n" if "\r\n" in text else "\n"
    block = old_text[_lines_above(old_text, old.start):old.end]  # its comments come back too
    splice = Splice(after.end, after.end, newline + shift(block, after.indent - old.indent))
    edited = apply(text, [splice])
    check_result(text, edited, after.end, after.end, model, expected)
    return Edited(edited,
                  f"restored model '{model}' (removed since) as in {old_where}")


def _lines_above(text: str, start: int) -> int:
    """Where the comment and blank lines directly above offset `start` (a line's start)
    begin: the comments a team writes above a model belong to it."""
    begin = start
    while begin > 0:
        previous = line_start(text, begin - 1)
        if text[previous:begin].strip() and not text[previous:begin].lstrip().startswith("#"):
            break
        begin = previous
    return begin


def _insert_after(text: str, models: SequenceNode, old_order: list[str], model: str) -> Entry:
    """The entry to put a removed model after: the nearest model before it at the ref
    that is still there, else the last one."""
    before = old_order[:old_order.index(model)]
    for name in reversed(before):
        entry = find_entry(text, models, name)
        if entry is not None:
            return entry
    return entry_of(text, models.value[-1])
