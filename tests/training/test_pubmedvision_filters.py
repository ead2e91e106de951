"""The local stages of the PubMedVision pipeline on a generated corpus with planted problems: each survivor and
each rejection reason is known in advance."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from PIL import Image

from tests.support.loopback_server import LoopbackChatServer
from tests.support.pubmedvision_corpus import NON_MEDICAL, draw_image, medical_caption, save_image
from training.pubmedvision.config import load_config
from training.pubmedvision.lexicon import Lexicon
from training.pubmedvision.pipeline import Pipeline
from training.pubmedvision.records import read_jsonl
from training.pubmedvision.stage import StageError
from training.typed_config import ConfigError

LEXICON = Lexicon.from_file(Path(__file__).resolve().parents[2] / "resources" / "medical_terms.txt")
FIVE_TERM_CAPTION = "Axial CT of the liver shows a lesion near the kidney (arrow)."  # ct, liver, lesion, kidney + axial
GOOD = [f"good-{i}" for i in range(8)]


def reject_charts(image: Image.Image) -> bool:
    """The image classifier hook of the test configuration: 512 px wide images are 'charts'."""
    return image.width != 512


def build_corpus(root: Path) -> Path:
    rng = random.Random(7)
    images = root / "images"

    def image(name: str, seed: int, size=(384, 384), fmt="PNG", **kwargs) -> str:
        save_image(draw_image(seed, size), images / name, fmt, **kwargs)
        return f"images/{name}"

    captions = {}
    lines = []

    def add(record_id: str, image_paths, caption: str, **extra) -> None:
        captions[record_id] = caption
        lines.append(json.dumps({"id": record_id, "image": image_paths, "caption": caption, **extra}))

    for i, record_id in enumerate(GOOD):
        caption = medical_caption(rng)
        assert LEXICON.count(caption) > 5, caption  # so that each original outranks its planted duplicate
        add(record_id, [image(f"{record_id}.png", seed=i)], caption, inline_mentions=[f"Figure {i} shows it."])
    add("multi-good", [image("multi-a.png", 60), image("multi-b.jpg", 61, fmt="JPEG", quality=90)],
        medical_caption(rng))
    # The same picture re-encoded as JPEG and resized, with its own caption: a duplicate image.
    save_image(draw_image(0, (384, 384)).resize((352, 352), Image.Resampling.BICUBIC), images / "dup0.jpg", "JPEG",
               quality=70)
    add("good-0-reencoded", ["images/dup0.jpg"], FIVE_TERM_CAPTION)
    # A byte-identical copy of another image under another name.
    shutil.copy(images / "good-3.png", images / "copy3.png")
    add("good-3-copy", ["images/copy3.png"], "Coronal MRI of the brain: edema around the tumor.")
    # A near-identical caption (case, punctuation, one number) on a different image.
    near = captions["good-1"].upper().replace(",", " ;").replace("CASE", "case no.")
    add("good-1-recaptioned", [image("other1.png", 101)], near)
    add("nonmedical-0", [image("nm0.png", 201)], NON_MEDICAL[0])
    add("nonmedical-1", [image("nm1.png", 202)], NON_MEDICAL[2], mentions=["A bar chart of monthly downloads."])
    add("tiny", [image("tiny.png", 301, size=(200, 200))], medical_caption(rng))
    add("short", [image("short.png", 302, size=(400, 300))], medical_caption(rng))
    add("multi-tiny", [image("multi-c.png", 62), image("multi-d.png", 63, size=(120, 400))], medical_caption(rng))
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(random.Random(1).randbytes(2000)))
    add("broken", ["images/broken.png"], medical_caption(rng))
    full = (images / "good-5.png").read_bytes()
    (images / "truncated.png").write_bytes(full[: len(full) // 2])
    add("truncated", ["images/truncated.png"], medical_caption(rng))
    add("missing", ["images/does-not-exist.png"], medical_caption(rng))
    add("chart", [image("chart.png", 401, size=(512, 400))], medical_caption(rng))
    lines.append('{"id": "malformed", "image": ["images/good-0.png"], "caption": ')  # cut-off line
    lines.append(json.dumps({"id": "no-caption", "image": "images/good-0.png"}))
    lines.append(json.dumps({"id": "good-2", "image": "images/good-2.png", "caption": "a second record good-2"}))
    path = root / "records.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


EXPECTED = {
    "ingest": {"malformed_json": 1, "missing_caption": 1, "duplicate_id": 1},
    "text": {"too_few_medical_terms": 2},
    "image": {"image_too_small": 3, "image_unreadable": 2, "image_missing": 1, "classifier_rejected": 1},
    "dedup": {"duplicate_image": 2, "duplicate_caption": 1},
}
SURVIVORS = set(GOOD) | {"multi-good"}
REJECTED = {
    "nonmedical-0": "too_few_medical_terms", "nonmedical-1": "too_few_medical_terms", "tiny": "image_too_small",
    "short": "image_too_small", "multi-tiny": "image_too_small", "broken": "image_unreadable",
    "truncated": "image_unreadable", "missing": "image_missing", "chart": "classifier_rejected",
    "good-0-reencoded": "duplicate_image", "good-3-copy": "duplicate_image", "good-1-recaptioned": "duplicate_caption",
}


def write_config(root: Path, **settings: object) -> Path:
    settings = {"input": "records.jsonl", "work_dir": "work", "num_proc": 2,
                "image_filter": f"{{classifier: '{__name__}:reject_charts'}}", **settings}
    lines = [f"{k}: {v}" for k, v in settings.items()]
    path = root / "pipeline.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    build_corpus(root)
    return root


def rejections(shard_dir: Path) -> dict[str, str]:
    found = {}
    for stage in ("ingest", "text", "image", "dedup"):
        for row in read_jsonl(shard_dir / f"{stage}.rejected.jsonl"):
            if row["id"] is not None:
                found.setdefault(row["id"], row["reason"])
    return found


def test_filters_and_dedup_keep_exactly_the_expected_records(corpus: Path) -> None:
    config = load_config(write_config(corpus))
    logged: list[str] = []
    pipeline = Pipeline(config, progress=False, log=logged.append)
    results = pipeline.run(["ingest", "text", "image", "dedup", "reformat", "export"])

    assert list(results) == ["ingest", "text", "image", "dedup"]  # no server configured: stops before reformat
    assert any("no 'reformat' section" in line for line in logged)
    for stage, reasons in EXPECTED.items():
        assert results[stage]["rejected"] == reasons, stage
        assert results[stage]["records_in"] - results[stage]["records_out"] == sum(reasons.values())
    shard = pipeline.paths.dir
    assert {r["id"] for r in read_jsonl(shard / "dedup.jsonl")} == SURVIVORS
    found = rejections(shard)
    assert {k: v for k, v in found.items() if k != "good-2"} == REJECTED
    assert found["good-2"] == "duplicate_id"

    details = {r["id"]: r for stage in ("image", "dedup") for r in read_jsonl(shard / f"{stage}.rejected.jsonl")}
    assert "(minimum 336×336)" in details["tiny"]["detail"] and "200×200" in details["tiny"]["detail"]
    assert details["good-0-reencoded"]["detail"] == "duplicate of good-0"
    assert details["good-1-recaptioned"]["detail"] == "duplicate of good-1"
    malformed = [r for r in read_jsonl(shard / "ingest.rejected.jsonl") if r["reason"] == "malformed_json"]
    assert malformed[0]["where"].endswith("records.jsonl:22")

    survivors = {r["id"]: r for r in read_jsonl(shard / "dedup.jsonl")}
    assert survivors["multi-good"]["images"] == ["images/multi-a.png", "images/multi-b.jpg"]
    assert len(survivors["multi-good"]["image_hashes"]) == 2
    assert survivors["good-0"]["mentions"] == ["Figure 0 shows it."]
    assert all(r["medical_terms"] >= 5 for r in survivors.values())

    # A second run finds every stage up to date and rewrites nothing.
    stamp = (shard / "dedup.jsonl").stat().st_mtime_ns
    again = Pipeline(config, progress=False, log=logged.append).run(["ingest", "text", "image", "dedup"])
    assert all(r["skipped"] for r in again.values())
    assert (shard / "dedup.jsonl").stat().st_mtime_ns == stamp

    # A stricter text threshold reruns the text stage and everything after it.
    strict = load_config(write_config(corpus, text_filter="{min_terms: 6}"))
    rerun = Pipeline(strict, progress=False, log=logged.append).run(["ingest", "text", "image", "dedup"])
    assert [s for s, r in rerun.items() if not r["skipped"]] == ["text", "image", "dedup"]
    assert rerun["text"]["rejected"]["too_few_medical_terms"] > 2
    shutil.rmtree(config.work_dir)


def test_shards_split_the_records_and_dedup_across_them(corpus: Path) -> None:
    config = load_config(write_config(corpus, work_dir="work-sharded", num_proc=1))
    shards = [Pipeline(config, shard_index=i, num_shards=2, progress=False, log=lambda _: None) for i in range(2)]
    shards[0].run(["ingest", "text", "image"])
    with pytest.raises(StageError, match="image-filter output of every shard"):
        shards[0].run(["dedup"])
    shards[1].run(["ingest", "text", "image"])
    results = [s.run(["dedup"])["dedup"] for s in shards]

    kept = [{r["id"] for r in read_jsonl(s.paths.output("dedup"))} for s in shards]
    assert kept[0] and kept[1] and not kept[0] & kept[1]
    assert kept[0] | kept[1] == SURVIVORS  # duplicates across shards are found too
    assert sum(sum(r["rejected"].values()) for r in results) == sum(EXPECTED["dedup"].values())
    ingest = [json.loads(s.paths.stats("ingest").read_text()) for s in shards]
    # Lines without a usable id are counted once, by shard 0.
    assert ingest[0]["rejected"].get("malformed_json") == 1 and "malformed_json" not in ingest[1]["rejected"]
    all_ids = [{r["id"] for r in read_jsonl(s.paths.output("ingest"))} for s in shards]
    assert not all_ids[0] & all_ids[1]
    shutil.rmtree(config.work_dir)


def test_lexicon_counts_words_plurals_phrases_and_chinese() -> None:
    lex = Lexicon(["CT", "lymph node", "lymph", "nodule", "T2-weighted", "肺", "肺结节"])
    assert lex.find("Contrast CT: two nodules and an enlarged lymph node on T2-weighted images.") == [
        "ct", "nodules", "lymph node", "t2-weighted"]
    assert lex.count("CTA is not CT") == 1  # whole words only
    assert lex.count("右肺结节, 左肺正常") == 2  # longest match first: 肺结节 once, then 肺
    assert LEXICON.count(NON_MEDICAL[0]) < 5
    assert LEXICON.size > 300


@pytest.mark.parametrize(("text", "message"), [
    ("input: records.jsonl\n", r"work_dir is required \(the folder for stage outputs\)"),
    ("work_dir: w\n", r"input is required \(a JSONL file or a list of them\)"),
    ("input: nowhere.jsonl\nwork_dir: w\n", "input file .*nowhere.jsonl does not exist"),
    ("input: []\nwork_dir: w\n", "input must name at least one file"),
    ("input: records.jsonl\nwork_dir: w\nnum_proc: 0\n", "num_proc must be ≥ 1"),
    ("input: records.jsonl\nwork_dir: w\ntext_filter: {min_term: 5}\n",
     r"unknown key text_filter.min_term \(known: lexicon, min_terms\)"),
    ("input: records.jsonl\nwork_dir: w\ntext_filter: {min_terms: five}\n",
     "text_filter.min_terms must be a whole number, not 'five'"),
    ("input: records.jsonl\nwork_dir: w\ntext_filter: [5]\n", "text_filter must be a mapping of settings"),
    ("input: records.jsonl\nwork_dir: w\ndedup: {caption_threshold: 1.5}\n",
     r"dedup.caption_threshold must be in \(0, 1\]"),
    ("input: records.jsonl\nwork_dir: w\nreformat: {model: m}\n", "reformat.base_url is required"),
    ("input: records.jsonl\nwork_dir: w\nreformat: {base_url: localhost:8080, model: m}\n",
     "reformat.base_url must start with http://"),
    ("input: records.jsonl\nwork_dir: ${PUBMEDVISION_NOT_SET}/w\n",
     "work_dir names the environment variable PUBMEDVISION_NOT_SET, which is not set"),
    ("input: [records.jsonl\n", "not valid YAML"),
    ("- input\n", "expected a mapping of settings at the top level"),
    ("input: records.jsonl\nwork_dir: w\ntext_filter: {lexicon: terms.txt}\n",
     "text_filter.lexicon file .*terms.txt does not exist"),
])
def test_bad_configuration_is_named(tmp_path: Path, monkeypatch, text: str, message: str) -> None:
    monkeypatch.delenv("PUBMEDVISION_NOT_SET", raising=False)
    (tmp_path / "records.jsonl").write_text("")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: ")


def test_configuration_paths_and_defaults(tmp_path: Path, monkeypatch) -> None:
    """Paths are taken from the file's folder (or the environment), empty sections take their defaults and a
    missing reformat section means nothing is sent anywhere."""
    monkeypatch.setenv("PUBMEDVISION_DATA", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "b.jsonl").write_text("")
    (tmp_path / "a.jsonl").write_text("")
    path = tmp_path / "c.yaml"
    path.write_text("input: [a.jsonl, '${PUBMEDVISION_DATA}/b.jsonl']\nwork_dir: out\ntext_filter:\n"
                    "dedup: {caption_threshold: 1}\n")
    config = load_config(path)
    assert config.input == [tmp_path / "a.jsonl", tmp_path / "data" / "b.jsonl"]
    assert config.work_dir == tmp_path / "out" and config.source == path
    assert config.text_filter.min_terms == 5 and config.dedup.caption_threshold == 1.0
    assert config.reformat is None and config.cache_path == tmp_path / "out" / "reformat-cache.sqlite"


def test_a_corpus_with_nothing_medical_ends_with_empty_outputs(tmp_path: Path) -> None:
    save_image(draw_image(1), tmp_path / "a.png")
    lines = [json.dumps({"id": f"r{i}", "image": "a.png", "caption": text}) for i, text in enumerate(NON_MEDICAL)]
    (tmp_path / "records.jsonl").write_text("\n".join(lines) + "\n")
    with LoopbackChatServer() as server:
        (tmp_path / "c.yaml").write_text("input: records.jsonl\nwork_dir: work\n"
                                         f"reformat: {{base_url: '{server.base_url}', model: loopback}}\n")
        pipeline = Pipeline(load_config(tmp_path / "c.yaml"), progress=False, log=lambda _: None)
        results = pipeline.run(["ingest", "text", "image", "dedup", "reformat", "export"])
    assert results["text"]["rejected"] == {"too_few_medical_terms": len(NON_MEDICAL)}
    assert [results[s]["records_out"] for s in ("text", "image", "dedup", "reformat", "export")] == [0] * 5
    assert results["reformat"]["complete"] and server.requests == 0
    assert (pipeline.paths.dir / "alignment.jsonl").read_text() == ""
