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

Relative paths are relative to the configuration file's folder; paths and text may name environment variables
(``${DATA}/pmc``). Without a ``reformat`` section the pipeline stops after deduplication: nothing is sent over
the network unless the configuration names a server. Read by training/typed_config.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from training.typed_config import build, read_yaml, require

DEFAULT_LEXICON = Path(__file__).resolve().parents[2] / "resources" / "medical_terms.txt"


@dataclass(frozen=True)
class TextFilterConfig:
    lexicon: Path = DEFAULT_LEXICON
    min_terms: int = 5  # the paper's threshold

    def check(self) -> None:
        require(self.min_terms >= 0, "min_terms", "must be ≥ 0")
        require(self.lexicon.is_file(), "lexicon", f"file {self.lexicon} does not exist")


@dataclass(frozen=True)
class ImageFilterConfig:
    min_width: int = 336  # the vision encoder's input size
    min_height: int = 336
    classifier: str | None = None  # "package.module:function" or "package.module.function", called with a PIL image

    def check(self) -> None:
        require(self.min_width >= 1, "min_width", "must be ≥ 1")
        require(self.min_height >= 1, "min_height", "must be ≥ 1")
        if self.classifier is not None:
            module, sep, name = self.classifier.partition(":")
            if not sep:
                module, _, name = self.classifier.rpartition(".")
            require(bool(module.strip() and name.strip()), "classifier",
                    "must name a module and a function, such as 'mypkg.filters:is_medical'")


@dataclass(frozen=True)
class DedupConfig:
    scope: str = "global"  # "global": across all shards (needs every shard's image-filter output); "shard"
    hash_size: int = 8  # perceptual hash of hash_size² bits
    max_hamming: int = 4  # images whose hashes differ in at most this many bits are duplicates
    caption_threshold: float = 0.8  # character-shingle Jaccard similarity at or above which captions are duplicates
    shingle_size: int = 5
    num_perm: int = 128  # MinHash permutations for the candidate search

    def check(self) -> None:
        require(self.scope in ("global", "shard"), "scope", "must be 'global' or 'shard'")
        require(2 <= self.hash_size <= 32, "hash_size", "must be between 2 and 32")
        require(0 <= self.max_hamming < self.hash_size**2, "max_hamming",
                f"must be between 0 and {self.hash_size**2 - 1}")
        require(0.0 < self.caption_threshold <= 1.0, "caption_threshold", "must be in (0, 1]")
        require(self.shingle_size >= 1, "shingle_size", "must be ≥ 1")
        require(16 <= self.num_perm <= 1024, "num_perm", "must be between 16 and 1024")


@dataclass(frozen=True)
class ReformatConfig:
    base_url: str = field(metadata={"help": "the OpenAI-compatible server, such as https://api.openai.com/v1"})
    model: str = field(metadata={"help": "the model the server is asked to use"})
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

    def check(self) -> None:
        require(self.base_url.startswith(("http://", "https://")), "base_url", "must start with http:// or https://")
        require(bool(self.model.strip()), "model", "must not be empty")
        require(1 <= self.concurrency <= 256, "concurrency", "must be between 1 and 256")
        require(self.timeout_s > 0, "timeout_s", "must be > 0")
        require(self.max_retries >= 0, "max_retries", "must be ≥ 0")
        require(self.backoff_initial_s >= 0, "backoff_initial_s", "must be ≥ 0")
        require(self.backoff_max_s >= self.backoff_initial_s, "backoff_max_s", "must be ≥ backoff_initial_s")
        require(self.max_reasks >= 0, "max_reasks", "must be ≥ 0")
        require(self.max_tokens >= 16, "max_tokens", "must be ≥ 16")
        require(self.image_detail in (None, "low", "high", "auto"), "image_detail",
                "must be 'low', 'high' or 'auto'")
        require(self.max_image_side >= 32, "max_image_side", "must be ≥ 32")
        for key in ("price_input_per_mtok", "price_output_per_mtok", "image_tokens", "expected_output_tokens"):
            require(getattr(self, key) >= 0, key, "must be ≥ 0")


@dataclass(frozen=True)
class OutputConfig:
    # Released PubMedVision rows carry no tag (the loader puts one per image); True writes LLaVA-style tags.
    image_tags: bool = False


@dataclass(frozen=True)
class PipelineConfig:
    input: list[Path] = field(metadata={"help": "a JSONL file or a list of them"})
    work_dir: Path = field(metadata={"help": "the folder for stage outputs"})
    image_root: Path | None = None
    num_proc: int = 1
    text_filter: TextFilterConfig = field(default_factory=TextFilterConfig)
    image_filter: ImageFilterConfig = field(default_factory=ImageFilterConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    reformat: ReformatConfig | None = None
    output: OutputConfig = field(default_factory=OutputConfig)
    source: Path | None = None  # the file it was read from

    def check(self) -> None:
        require(bool(self.input), "input", "must name at least one file")
        for p in self.input:
            require(p.is_file(), "input", f"file {p} does not exist")
        require(self.num_proc >= 1, "num_proc", "must be ≥ 1")

    @property
    def cache_path(self) -> Path:
        if self.reformat is not None and self.reformat.cache is not None:
            return self.reformat.cache
        return self.work_dir / "reformat-cache.sqlite"


def load_config(path: str | Path) -> PipelineConfig:
    path = Path(path)
    return config_from_dict(read_yaml(path), base=path.resolve().parent, source=path)


def config_from_dict(raw: dict, base: Path, source: Path | None = None) -> PipelineConfig:
    if isinstance(raw.get("input"), str):  # one file, or a list of them
        raw = {**raw, "input": [raw["input"]]}
    return build(PipelineConfig, raw, source or "configuration", base=base, given={"source": source})
