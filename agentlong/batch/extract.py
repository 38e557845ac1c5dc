"""Extract structured data from a document into a user-given JSON schema.

The document is sized against the model's real window: one schema-constrained call when it fits,
else one call per chunk with a relaxed schema (nothing required, everything nullable) and the
parts merged in code (first value wins; lists are concatenated without duplicates), then checked
against the user's schema. String values found verbatim in the source become citations.

>>> check_schema({"type": "object", "properties": {"title": {"type": "string"}}}) is None
True
>>> check_schema({"type": "banana"}) is not None
True
>>> merge_parts({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "array"}}},
...             [{"a": None, "b": [1]}, {"a": "x", "b": [1, 2]}])
{'a': 'x', 'b': [1, 2]}
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import AgentlongError, ContextWindowExceeded, ParseError
from ..events import Emit, Notice
from ..packing import SAFETY, prompt_budget
from ..types import Citation, Evidence, Message, Usage

if TYPE_CHECKING:  # pragma: no cover
    from ..api import Agentlong
    from ..llm import LLM

__all__ = ["extract", "warm", "check_schema", "schema_problem", "relax", "merge_parts"]

PROMPT = "batch_extract"


def check_schema(schema: Any) -> str | None:
    """None when ``schema`` is a usable JSON Schema, else what is wrong with it."""
    if not isinstance(schema, dict) or not schema:
        return "the schema must be a non-empty mapping (a JSON Schema such as {type: object, properties: {...}})"
    try:
        import jsonschema
    except ImportError:  # the fallback validator below understands the common keywords
        return None if "type" in schema or "properties" in schema else "the schema needs `type:` or `properties:`"
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        return f"{exc.message}" + (f" (at {where})" if where else "")
    return None


def schema_problem(schema: dict[str, Any], data: Any) -> str | None:
    """None when ``data`` matches ``schema``, else the most relevant error as one line."""
    try:
        import jsonschema
    except ImportError:
        return _fallback_problem(schema, data, "$")
    validator = _validator(json.dumps(schema, sort_keys=True))
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is None:
        return None
    where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return f"{where}: {error.message}"


@lru_cache(maxsize=64)
def _validator(schema_json: str) -> Any:
    """One validator per schema (building one costs more than validating a small result)."""
    import jsonschema

    schema = json.loads(schema_json)
    return jsonschema.validators.validator_for(schema)(schema)


_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list,
          "object": dict, "null": type(None)}


def _fallback_problem(schema: dict[str, Any], data: Any, where: str) -> str | None:
    """Without jsonschema: type, enum, required, properties and items."""
    kinds = schema.get("type")
    if kinds is not None:
        kinds = kinds if isinstance(kinds, list) else [kinds]
        ok = any(isinstance(data, _TYPES.get(k, object)) and not (k in ("integer", "number") and isinstance(data, bool))
                 for k in kinds)
        if not ok:
            return f"{where}: expected {'/'.join(kinds)}"
    if "enum" in schema and data not in schema["enum"]:
        return f"{where}: not one of {schema['enum']}"
    if isinstance(data, dict):
        for key in schema.get("required", []):
            if key not in data:
                return f"{where}: {key!r} is a required property"
        for key, sub in schema.get("properties", {}).items():
            if key in data and (problem := _fallback_problem(sub, data[key], f"{where}.{key}")):
                return problem
    if isinstance(data, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(data):
            if problem := _fallback_problem(schema["items"], item, f"{where}[{i}]"):
                return problem
    return None


def relax(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema for one chunk: top-level properties optional and nullable."""
    if schema.get("type") != "object" or "properties" not in schema:
        return schema
    out = copy.deepcopy(schema)
    out.pop("required", None)
    out["properties"] = {k: {"anyOf": [v, {"type": "null"}]} for k, v in schema["properties"].items()}
    return out


def merge_parts(schema: dict[str, Any], parts: list[Any]) -> Any:
    """Combine per-chunk results: first non-empty value per field; arrays concatenated, deduplicated."""
    objects = [p for p in parts if isinstance(p, dict)]
    if schema.get("type") != "object" or not objects:
        return next((p for p in parts if p not in (None, "", [], {})), parts[0] if parts else None)
    merged: dict[str, Any] = {}
    for part in objects:
        for key, value in part.items():
            if value is None or value == "" or value == {}:
                continue
            if isinstance(value, list):
                seen = {json.dumps(v, sort_keys=True) for v in merged.get(key, [])}
                merged.setdefault(key, [])
                merged[key] += [v for v in value if json.dumps(v, sort_keys=True) not in seen]
            elif key not in merged:
                merged[key] = value
    order = [k for k in schema.get("properties", {}) if k in merged]
    return {**{k: merged[k] for k in order}, **{k: v for k, v in merged.items() if k not in order}}


def extract(
    app: "Agentlong", path: str | Path, schema: dict[str, Any], *, instructions: str = "", max_tokens: int | None = None,
    on_event: Emit | None = None,
) -> tuple[Any, list[dict[str, Any]], Usage]:
    """(data matching ``schema``, citations of verbatim string values, usage) for the file at ``path``.

    >>> import tempfile, pathlib
    >>> from agentlong import Agentlong
    >>> from agentlong.backends.fake import FakeBackend
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "memo.txt"
    >>> _ = p.write_text("Memo from Ada Lovelace about the engine.")
    >>> app = Agentlong(backend=FakeBackend(mode="keyed", default={"author": "Ada Lovelace"}), model="fake")
    >>> data, cites, usage = extract(app, p, {"type": "object", "properties": {"author": {"type": "string"}}})
    >>> data, cites[0]["evidence"]["char_start"], usage.calls
    ({'author': 'Ada Lovelace'}, 10, 1)
    """
    from ..documents import load_file
    from ..documents.walk import warning_line

    doc = load_file(path, app.settings)
    if (line := warning_line(doc)) and on_event is not None:  # a guessed encoding or a repair: say so
        on_event(Notice(level="warning", message=line))
    llm = app.llm(on_event)
    out_tokens = max_tokens or _default_max_tokens(llm, schema)
    vars_ = {"doc_name": Path(doc.source).name, "instructions": instructions.strip()}
    whole = llm.messages(PROMPT, schema=schema, document=doc.text, part=1, parts=1, **vars_)
    if sum(llm.tokens(m.content) + 8 for m in whole) + out_tokens <= int(llm.window * SAFETY):
        data = _call(llm, schema, out_tokens, whole)
    else:  # too long for one call: parts sized from the window minus instructions and output
        from ..documents import chunk_document

        loose = relax(schema)
        fixed = llm.fixed_tokens(PROMPT, document="", part=1, parts=2, schema=loose, **vars_)
        chunks = chunk_document(doc, prompt_budget(llm.window, fixed, out_tokens), llm.tokens)
        parts = [_call(llm, loose, out_tokens, llm.messages(PROMPT, schema=loose, document=c.text, part=i + 1,
                                                             parts=len(chunks), **vars_))
                 for i, c in enumerate(chunks)]
        data = merge_parts(schema, parts)
        problem = schema_problem(schema, data)
        if problem:
            raise ParseError(f"the values extracted from {len(chunks)} parts of {doc.source} do not fill the schema "
                             f"({problem})", hint="make fields optional in the schema, or give clearer instructions")
    return data, cite_values(doc, data), llm.usage


def warm(app: "Agentlong", schema: dict[str, Any], instructions: str = "") -> None:
    """Compile the prompt templates and the schema validators once (see ``tasks.prepare``)."""
    llm = app.llm()
    for sch in (schema, relax(schema)):
        llm.messages(PROMPT, schema=sch, document="", doc_name="", instructions=instructions, part=1, parts=2)
        schema_problem(sch, {})
    llm.render("json_repair", error="", schema=schema)


def _default_max_tokens(llm: "LLM", schema: dict[str, Any]) -> int:
    """Room for a filled-in copy of the schema: twice its size plus slack, within the output reserve."""
    need = 2 * llm.tokens(json.dumps(schema)) + 48
    return max(64, min(need, llm.settings.chunking.output_reserve, llm.window // 4))


def _call(llm: "LLM", schema: dict[str, Any], max_tokens: int, messages: list[Message]) -> Any:
    """One schema-constrained call, validated; one repair retry, then ParseError."""
    text = ""
    try:
        completion = llm.send(messages, step=PROMPT, max_tokens=max_tokens, schema=schema)
        text = completion.text
        return _validated(schema, completion)
    except ParseError as first:
        repair = messages + ([Message(role="assistant", content=text[:2000])] if text else []) + [
            Message(role="user", content=llm.render("json_repair", error=_short(first), schema=schema))]
        try:
            retry = llm.send(repair, step=f"{PROMPT}:repair", max_tokens=max_tokens, schema=schema)
            return _validated(schema, retry)
        except ContextWindowExceeded:
            raise first from None
        except ParseError as second:
            raise ParseError(f"step {PROMPT!r}: the model returned JSON that does not match the schema twice "
                             f"({_short(second)})") from second


def _validated(schema: dict[str, Any], completion: Any) -> Any:
    from ..backends.base import decode_json

    data = completion.parsed if completion.parsed is not None else decode_json(completion.text)
    problem = schema_problem(schema, data)
    if problem:
        raise ParseError(f"the JSON does not match the schema: {problem}")
    return data


def _short(exc: Exception) -> str:
    text = exc.message if isinstance(exc, AgentlongError) else str(exc)
    return " ".join(text.split())[:200]


def cite_values(doc: Any, data: Any) -> list[dict[str, Any]]:
    """Citations for string values (8+ characters) found in the source, with the field they fill."""
    from ..verify import line_of, locate

    out: list[dict[str, Any]] = []
    for field, value in _strings(data, "$"):
        hit = locate(value, doc.text)
        if hit is None:
            continue
        start, end, match = hit
        ev = Evidence(quote=doc.text[start:end], doc_id=doc.id, source=doc.source, char_start=start, char_end=end,
                      line_start=line_of(doc.text, start), line_end=line_of(doc.text, max(start, end - 1)), match=match)
        out.append({**Citation(n=len(out) + 1, evidence=ev).model_dump(mode="json"), "field": field})
    return out


def _strings(data: Any, where: str):
    if isinstance(data, str):
        yield where, data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _strings(value, f"{where}.{key}")
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _strings(value, f"{where}[{i}]")
