"""The pipeline's YAML configuration, mirrored by dataclasses and checked with messages that name the key.

    input: pmc/records.jsonl          # one file or a list; JSONL with image paths, caption, mentions
    image_root: pmc/images            # image paths are relative to this (default: each input file's folder)
    work_dir: out/pubmedvision
    num_proc: 4
    text_filter: {lexicon: my_umls_terms.txt, min_terms: 5}
    image_filter: {min_width: 336, min_height: 336, classifier: mypkg.clip_filter:is_medical}
    dedup: {max_hamming: 4, caption_threshold: 0.8}
    reformat: {base_url: "https://api.openai.com/v1", model: gpt-4o, api_key_env: OPENAI_API_KEY}
    output: {image_tags: false}

Relative paths are relative to the configuration file's folder. Without a ``reformat`` section the pipeline
stops after deduplication: nothing is sent over the network unless the configuration names a server.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_LEXICON = Path(__file__).resolve().parents[2] / "resources" / "medical_terms.txt"


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or has a bad value; the message names the file and key."""


@dataclass(frozen=True)
class TextFilterConfig:
    lexicon: Path = DEFAULT_LEXICON
    min_terms: int = 5  # the paper's threshold

    def check(self, where: str) -> None:
        _require(self.min_terms >= 0, where, "min_terms", "must be ≥ 0")


@dataclass(frozen=True)
class ImageFilterConfig:
    min_width: int = 336  # the vision encoder's input size
    min_height: int = 336
    classifier: str | None = None  # "package.module:function" or "package.module.function", called with a PIL image

    def check(self, where: str) -> None:
        _require(self.min_width >= 1, where, "min_width", "must be ≥ 1")
        _require(self.min_height >= 1, where, "min_height", "must be ≥ 1")
        if self.classifier is not None:
            module, sep, name = self.classifier.partition(":")
            if not sep:
                module, _, name = self.classifier.rpartition(".")
            _require(bool(module.strip() and name.strip()), where, "classifier",
                     "must name a module and a function, such as 'mypkg.filters:is_medical'")


@dataclass(frozen=True)
class DedupConfig:
    scope: str = "global"  # "global": across all shards (needs every shard's image-filter output); "shard"
    hash_size: int = 8  # perceptual hash of hash_size² bits
    max_hamming: int = 4  # images whose hashes differ in at most this many bits are duplicates
    caption_threshold: float = 0.8  # character-shingle Jaccard similarity at or above which captions are duplicates
    shingle_size: int = 5
    num_perm: int = 128  # MinHash permutations for the candidate search

    def check(self, where: str) -> None:
        _require(self.scope in ("global", "shard"), where, "scope", "must be 'global' or 'shard'")
        _require(2 <= self.hash_size <= 32, where, "hash_size", "must be between 2 and 32")
        _require(0 <= self.max_hamming < self.hash_size**2, where, "max_hamming",
                 f"must be between 0 and {self.hash_size**2 - 1}")
        _require(0.0 < self.caption_threshold <= 1.0, where, "caption_threshold", "must be in (0, 1]")
        _require(self.shingle_size >= 1, where, "shingle_size", "must be ≥ 1")
        _require(16 <= self.num_perm <= 1024, where, "num_perm", "must be between 16 and 1024")


@dataclass(frozen=True)
class ReformatConfig:
    base_url: str
    model: str
    api_key: str | None = None  # prefer api_key_env: a key in a file is easily shared by mistake
    api_key_env: str | None = "OPENAI_API_KEY"
    concurrency: int = 8
    timeout_s: float = 120.0
    max_retries: int = 6
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    max_reasks: int = 2  # how often a malformed reply is answered with a request to fix it
    temperature: float = 0.7
    max_tokens: int = 1024
    json_mode: bool = False  # send response_format {"type": "json_object"} (OpenAI, llama.cpp server)
    image_detail: str | None = None  # OpenAI's image_url detail: "low", "high" or "auto"
    max_image_side: int = 1024  # larger images are downscaled before sending
    seed: int = 0  # picks each record's alignment question and role scenario
    cache: Path | None = None  # default: <work_dir>/reformat-cache.sqlite
    # Cost accounting and the --dry-run estimate.
    price_input_per_mtok: float = 0.0
    price_output_per_mtok: float = 0.0
    image_tokens: int = 765  # prompt tokens per image (OpenAI's figure for a 512-768 px image at high detail)
    expected_output_tokens: int = 400

    def check(self, where: str) -> None:
        _require(self.base_url.startswith(("http://", "https://")), where, "base_url",
                 "must start with http:// or https://")
        _require(bool(self.model.strip()), where, "model", "must not be empty")
        _require(1 <= self.concurrency <= 256, where, "concurrency", "must be between 1 and 256")
        _require(self.timeout_s > 0, where, "timeout_s", "must be > 0")
        _require(self.max_retries >= 0, where, "max_retries", "must be ≥ 0")
        _require(self.backoff_initial_s >= 0, where, "backoff_initial_s", "must be ≥ 0")
        _require(self.backoff_max_s >= self.backoff_initial_s, where, "backoff_max_s", "must be ≥ backoff_initial_s")
        _require(self.max_reasks >= 0, where, "max_reasks", "must be ≥ 0")
        _require(self.max_tokens >= 16, where, "max_tokens", "must be ≥ 16")
        _require(self.image_detail in (None, "low", "high", "auto"), where, "image_detail",
                 "must be 'low', 'high' or 'auto'")
        _require(self.max_image_side >= 32, where, "max_image_side", "must be ≥ 32")
        for key in ("price_input_per_mtok", "price_output_per_mtok", "image_tokens", "expected_output_tokens"):
            _require(getattr(self, key) >= 0, where, key, "must be ≥ 0")


@dataclass(frozen=True)
class OutputConfig:
    # Released PubMedVision rows carry no tag (the loader puts one per image); True writes LLaVA-style tags.
    image_tags: bool = False


@dataclass(frozen=True)
class PipelineConfig:
    input: list[Path]
    work_dir: Path
    image_root: Path | None = None
    num_proc: int = 1
    text_filter: TextFilterConfig = field(default_factory=TextFilterConfig)
    image_filter: ImageFilterConfig = field(default_factory=ImageFilterConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    reformat: ReformatConfig | None = None
    output: OutputConfig = field(default_factory=OutputConfig)
    source: Path | None = None  # the file it was read from

    @property
    def cache_path(self) -> Path:
        if self.reformat is not None and self.reformat.cache is not None:
            return self.reformat.cache
        return self.work_dir / "reformat-cache.sqlite"


_SECTIONS = {
    "text_filter": TextFilterConfig,
    "image_filter": ImageFilterConfig,
    "dedup": DedupConfig,
    "reformat": ReformatConfig,
    "output": OutputConfig,
}


def load_config(path: str | Path) -> PipelineConfig:
    import yaml  # here, so that the command line starts without it

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration {path}: {exc.strerror or exc}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return config_from_dict(raw, base=path.resolve().parent, source=path)


def config_from_dict(raw: dict, base: Path, source: Path | None = None) -> PipelineConfig:
    where = str(source or "configuration")
    raw = dict(raw)
    sections = {}
    for name, cls in _SECTIONS.items():
        value = raw.pop(name, None)
        if value is None:
            if name != "reformat":
                sections[name] = cls()
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: '{name}' must be a mapping of settings")
        sections[name] = _build(cls, value, base, f"{where}: {name}")
    if "input" not in raw:
        raise ConfigError(f"{where}: 'input' is required (a JSONL file or a list of them)")
    if "work_dir" not in raw:
        raise ConfigError(f"{where}: 'work_dir' is required (the folder for stage outputs)")
    inputs = raw.pop("input")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(p, str) for p in inputs):
        raise ConfigError(f"{where}: 'input' must be a path or a non-empty list of paths")
    top = _build(PipelineConfig, {**raw, "input": inputs, **sections}, base, where, skip=set(sections) | {"source"})
    config = dataclasses.replace(top, source=source)
    if config.num_proc < 1:
        raise ConfigError(f"{where}: 'num_proc' must be ≥ 1")
    for p in config.input:
        if not p.is_file():
            raise ConfigError(f"{where}: input file {p} does not exist")
    if not config.text_filter.lexicon.is_file():
        raise ConfigError(f"{where}: text_filter: lexicon file {config.text_filter.lexicon} does not exist")
    return config


def _build(cls, values: dict, base: Path, where: str, skip: set[str] = frozenset()):
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)} - {"source"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown setting '{unknown[0]}' (known: {', '.join(sorted(known))})")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{where}: '{f.name}' is required")
            continue
        value = values[f.name]
        kwargs[f.name] = value if f.name in skip else _coerce(value, hints[f.name], base, f"{where}: '{f.name}'")
    obj = cls(**kwargs)
    if hasattr(obj, "check"):
        obj.check(where)
    return obj


def _coerce(value, hint, base: Path, where: str):
    """Check a YAML value against a dataclass field's type; paths are resolved against the config's folder."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, base, where)
    if typing.get_origin(hint) is list:
        return [_coerce(v, args[0], base, where) for v in value]
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where} must be a path")
        p = Path(value).expanduser()
        return p if p.is_absolute() else base / p
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, not {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be a whole number, not {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number, not {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be text, not {value!r}")
        return value
    return value


def _require(ok: bool, where: str, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{where}: '{key}' {message}")
