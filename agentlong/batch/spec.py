"""The batch job spec: a YAML or TOML file validated by pydantic (unknown keys are errors).

Relative paths in a spec file (inputs, output, schema files) are relative to the spec's folder.

>>> spec = BatchSpec.model_validate({"inputs": ["docs/*.txt"], "tasks": [{"type": "summarize", "words": 20}]})
>>> spec.tasks[0].type, spec.concurrency, spec.executor
('summarize', 4, 'local')
>>> try:
...     parse_spec({"inputs": ["a.txt"], "tasks": [{"type": "ask"}]}, "spec.yaml")
... except Exception as exc:
...     print(exc.message)
spec.yaml: tasks[0]: an ask task needs `question:` or `questions:`
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, field_validator, model_validator

from ..errors import ConfigError, InputError

__all__ = [
    "BatchSpec", "SummarizeTask", "AskTask", "ExtractTask", "WriteTask", "Task", "FakeOptions",
    "load_spec", "parse_spec", "format_errors", "split_secrets",
]

STRATEGIES = ("auto", "full", "rtr", "coa", "mapreduce")
Strategy = Literal["auto", "full", "rtr", "coa", "mapreduce"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _TaskBase(_Strict):
    name: str | None = Field(None, description="label used in results; defaults to the task type (+ its index when repeated)")


class SummarizeTask(_TaskBase):
    """Summarize each document in about ``words`` words."""

    type: Literal["summarize"]
    words: int = Field(150, ge=5, le=20000, description="target length of each summary in words")
    strategy: Strategy | None = Field(None, description="override the job's strategy for this task")


class AskTask(_TaskBase):
    """Ask one or more questions of each document (one result per question)."""

    type: Literal["ask"]
    question: str | None = Field(None, description="one question")
    questions: list[str] | None = Field(None, description="several questions; each gives its own result")
    strategy: Strategy | None = Field(None, description="override the job's strategy for this task")

    @model_validator(mode="after")
    def _one_of(self) -> "AskTask":
        if self.question is None and not self.questions:
            raise ValueError("an ask task needs `question:` or `questions:`")
        if self.question is not None and self.questions:
            raise ValueError("give either `question:` or `questions:`, not both")
        if any(not q.strip() for q in self.all_questions()):
            raise ValueError("a question is empty")
        return self

    def all_questions(self) -> list[str]:
        return [self.question] if self.question is not None else list(self.questions or [])


class ExtractTask(_TaskBase):
    """Extract structured data from each document into a user-given JSON schema."""

    type: Literal["extract"]
    json_schema: dict[str, Any] | None = Field(None, alias="schema", description="the JSON schema of one result")
    schema_file: str | None = Field(None, description="a .json file holding the schema (relative to the spec)")
    instructions: str = Field("", description="extra guidance for the model, e.g. what a field means")
    max_tokens: int | None = Field(None, ge=16, le=32768, description="output tokens per call; default derived from the schema")

    @model_validator(mode="after")
    def _one_schema(self) -> "ExtractTask":
        if (self.json_schema is None) == (self.schema_file is None):
            raise ValueError("an extract task needs exactly one of `schema:` (inline) or `schema_file:`")
        return self


class WriteTask(_TaskBase):
    """Write a text of about ``words`` words per document, grounded on that document."""

    type: Literal["write"]
    instruction: str = Field(description="what to write; `{document}` is replaced by the document's file name")
    words: int = Field(500, ge=50, le=100000, description="target length in words")

    @field_validator("instruction")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the instruction is empty")
        return value


Task = Annotated[SummarizeTask | AskTask | ExtractTask | WriteTask, Field(discriminator="type")]
TASK_TYPES = ("summarize", "ask", "extract", "write")


class FakeOptions(_Strict):
    """How the offline ``fake`` model behaves (ignored by other models)."""

    mode: Literal["echo", "keyed"] = Field("echo", description="echo the prompt, or answer by substring key")
    responses: dict[str, Any] = Field(default_factory=dict, description="keyed mode: prompt substring -> answer")
    default: Any = Field("", description="keyed mode: the answer when no key matches")
    delay_s: float = Field(0.0, ge=0, le=60, description="seconds each call takes (for demos and tests)")


class BatchSpec(_Strict):
    """A batch job: which documents, which tasks, which model, how to run and where results go."""

    inputs: list[str] = Field(default_factory=list, description="files, folders or globs (relative to the spec)")
    corpus: str | None = Field(None, description="name of an indexed corpus whose documents are inputs too")
    tasks: list[Task] = Field(min_length=1, description="what to do with each document")
    model: str | None = Field(None, description="model string; None = the configured default")
    strategy: Strategy = Field("auto", description="ask/summarize strategy: auto, full, rtr, coa or mapreduce")
    concurrency: int = Field(4, ge=1, le=1024, description="documents processed at once")
    executor: Literal["local", "ray"] = Field("local", description="local threads, or Ray tasks")
    ray_address: str | None = Field(None, description="join this Ray cluster (e.g. ray://host:10001); None = start a local one")
    ray_workers: int | None = Field(None, ge=1, description="Ray worker actors; None = one per CPU, at most `concurrency`")
    ray_ship_files: bool | None = Field(None, description="send file bytes to Ray workers; None = only when joining a cluster")
    output: str | None = Field(None, description="results JSONL; None = <spec name>.results.jsonl beside the spec")
    retries: int = Field(2, ge=0, le=20, description="retries of a failing document before it is recorded as failed")
    backoff_s: float = Field(1.0, ge=0, le=600, description="first retry delay; doubles on each retry")
    settings: dict[str, Any] = Field(default_factory=dict, description="agentlong settings overrides (e.g. llama: {n_ctx: 4096})")
    fake: FakeOptions = Field(default_factory=FakeOptions, description="behaviour of the `fake` model")

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _source: str = PrivateAttr(default="<spec>")

    @field_validator("inputs", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("settings", mode="after")
    @classmethod
    def _secrets(cls, value: dict[str, Any]) -> dict[str, Any]:
        from ..settings import Settings

        return _hide_secrets(value, Settings)

    @model_validator(mode="after")
    def _check(self) -> "BatchSpec":
        if not self.inputs and not self.corpus:
            raise ValueError("give `inputs:` (files, folders, globs) or `corpus:`")
        return self

    # -- derived ---------------------------------------------------------------
    @property
    def base_dir(self) -> Path:
        return self._base_dir

    @property
    def source(self) -> str:
        return self._source

    def with_base(self, base_dir: Path, source: str) -> "BatchSpec":
        self._base_dir = base_dir.resolve()
        self._source = source
        return self

    def resolve(self, path: str) -> Path:
        """A spec path made absolute against the spec's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self._base_dir / p

    def output_path(self) -> Path:
        if self.output:
            return self.resolve(self.output)
        stem = Path(self._source).stem if self._source != "<spec>" else "batch"
        return self._base_dir / f"{stem}.results.jsonl"

    def task_names(self) -> list[str]:
        """Unique task labels: the given name, else the type, suffixed with its index when repeated."""
        types = [t.type for t in self.tasks]
        names = []
        for i, task in enumerate(self.tasks):
            names.append(task.name or (task.type if types.count(task.type) == 1 else f"{task.type}{i}"))
        if len(set(names)) != len(names):
            raise ConfigError(f"{self._source}: tasks: two tasks share the name {_dupe(names)!r}",
                              hint="give each task a distinct `name:`")
        return names

    def fingerprint(self) -> str:
        """What defines the results: model, strategy and tasks (not concurrency, retries or inputs)."""
        blob = json.dumps({"model": self.model, "strategy": self.strategy, "settings": self.settings,
                           "tasks": [t.model_dump(mode="json", by_alias=True) for t in self.tasks],
                           "fake": self.fake.model_dump(mode="json", exclude={"delay_s"})},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def load_schema(self, task: ExtractTask) -> dict[str, Any]:
        """The extract schema, read from ``schema_file`` when not inline."""
        if task.json_schema is not None:
            return task.json_schema
        path = self.resolve(task.schema_file or "")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise InputError(f"{self._source}: cannot read schema_file {path}: {exc.strerror}",
                             hint="check the path (relative to the spec's folder)") from exc
        except ValueError as exc:
            raise ConfigError(f"{self._source}: schema_file {path} is not valid JSON: {exc}",
                              hint="fix the JSON schema file") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{self._source}: schema_file {path} must hold a JSON object", hint="fix the schema file")
        return data


def _dupe(names: list[str]) -> str:
    return next(n for n in names if names.count(n) > 1)


# -- loading -----------------------------------------------------------------------


def format_errors(exc: ValidationError, source: str, prefix: str = "") -> str:
    """``spec.yaml: tasks[0].question: field required; ...`` (union tags dropped from the path)."""
    parts = []
    for err in exc.errors()[:5]:
        path = prefix
        for item in err["loc"]:
            if isinstance(item, int):
                path += f"[{item}]"
            elif item in TASK_TYPES or str(item).startswith("function-"):
                continue
            else:
                path += f".{item}" if path else str(item)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling and indentation)"
        msg = msg[:1].lower() + msg[1:]
        parts.append(f"{path}: {msg}" if path else msg)
    more = len(exc.errors()) - 5
    return f"{source}: " + "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def parse_spec(data: Any, source: str = "<spec>", base_dir: Path | None = None) -> BatchSpec:
    """Validate a spec mapping; errors become one ConfigError naming the bad field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the spec must be a mapping of keys (inputs, tasks, ...)",
                          hint="run `agentlong batch init` for a commented example")
    try:
        spec = BatchSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, source), hint="fix the spec; `agentlong batch init` writes an example") from exc
    spec.with_base(base_dir or Path.cwd(), source)
    spec.task_names()
    _check_settings(spec)
    _check_schemas(spec)
    return spec


def load_spec(path: str | Path) -> BatchSpec:
    """Read and validate a ``.yaml``/``.yml``/``.toml``/``.json`` spec file.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "job.yaml"
    >>> _ = p.write_text("inputs: [a.txt]\\ntasks:\\n  - type: summarize\\n    words: 30\\n")
    >>> load_spec(p).output_path().name
    'job.results.jsonl'
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"spec file {p} does not exist" if not p.exists() else f"spec {p} is not a file",
                         hint="give the path of a job spec; `agentlong batch init job.yaml` writes one")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read spec {p}: {exc}", hint="give a UTF-8 YAML or TOML file") from exc
    data = _parse_text(text, p)
    return parse_spec(data, p.name, p.parent)


def _parse_text(text: str, p: Path) -> Any:
    if p.suffix.lower() == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p.name}: invalid TOML: {exc}", hint="fix the TOML syntax") from exc
    if p.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{p.name}: invalid JSON: {exc}", hint="fix the JSON syntax") from exc
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{p.name}{where}: invalid YAML: {problem}", hint="fix the YAML syntax (indentation, colons)") from exc
    if data is None:
        raise ConfigError(f"{p.name}: the spec is empty", hint="run `agentlong batch init` for a commented example")
    return data


def _hide_secrets(data: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """``data`` with the values of the model's ``SecretStr`` fields wrapped in ``SecretStr``: they stay
    out of the spec's repr, its fingerprint (rotating a key does not block a resume) and its results,
    while ``Settings`` still receives them.

    >>> from agentlong.settings import Settings
    >>> _hide_secrets({"openai": {"api_key": "sk-1", "timeout_s": 5}}, Settings)
    {'openai': {'api_key': SecretStr('**********'), 'timeout_s': 5}}
    """
    out: dict[str, Any] = {}
    for key, value in data.items():
        field = model.model_fields.get(key)
        kind = field.annotation if field else None
        inner = [a for a in (getattr(kind, "__args__", None) or (kind,)) if isinstance(a, type)]
        if isinstance(value, str) and SecretStr in inner:
            value = SecretStr(value)
        elif isinstance(value, dict) and inner and issubclass(inner[0], BaseModel):
            value = _hide_secrets(value, inner[0])
        out[key] = value
    return out


def split_secrets(data: dict[str, Any], prefix: str = "AGENTLONG_") -> tuple[dict[str, Any], dict[str, str]]:
    """Settings overrides without their secrets, and the secrets as the environment variables that
    ``Settings`` reads (how they reach Ray workers: in the runtime env, never in the shipped spec).

    >>> split_secrets({"openai": {"api_key": SecretStr("sk-1"), "timeout_s": 5}})
    ({'openai': {'timeout_s': 5}}, {'AGENTLONG_OPENAI__API_KEY': 'sk-1'})
    """
    public: dict[str, Any] = {}
    env: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, SecretStr):
            env[f"{prefix}{key}".upper()] = value.get_secret_value()
        elif isinstance(value, dict):
            public[key], more = split_secrets(value, f"{prefix}{key}__")
            env.update(more)
        else:
            public[key] = value
    return public, env


def _check_settings(spec: BatchSpec) -> None:
    """Settings overrides are validated now, so a typo fails before any work."""
    from ..settings import Settings

    try:
        Settings(**{**spec.settings, **({"model": spec.model} if spec.model else {})})
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, spec.source, prefix="settings"), hint="see docs/models.md for settings") from exc


def _check_schemas(spec: BatchSpec) -> None:
    from .extract import check_schema

    for i, task in enumerate(spec.tasks):
        if isinstance(task, ExtractTask):
            problem = check_schema(spec.load_schema(task))
            if problem:
                raise ConfigError(f"{spec.source}: tasks[{i}].schema: {problem}", hint="give a valid JSON Schema")
