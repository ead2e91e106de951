"""Training data: records -> exchanges, token-by-token masking, truncation, images, batches, the sampler, configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from inference import prompt
from inference.imageprep import normalise, prepare
from tests.support.training_data import build_pubmedvision
from training.config import ConfigError, DatasetSpec, load_config
from training.data import (
    DataError,
    Exchange,
    RecordStore,
    StepSampler,
    SupervisedDataset,
    collate,
    conversation,
    encode,
    load_tokenizer,
)
from training.model import IGNORE_INDEX, IMAGE_TOKEN_INDEX

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"


@pytest.fixture(scope="module", params=["qwen2", "llama"])
def tokenizer(request, tiny_checkpoints):
    folder = tiny_checkpoints(request.param, "original")
    eos = json.loads((folder / "config.json").read_text())["eos_token_id"]
    return load_tokenizer(folder, request.param, eos)


def _runs(labels: list[int]) -> list[tuple[int, int]]:
    """(start, stop) of each stretch of learned positions."""
    runs, start = [], None
    for i, label in enumerate([*labels, IGNORE_INDEX]):
        if label != IGNORE_INDEX and start is None:
            start = i
        elif label == IGNORE_INDEX and start is not None:
            runs.append((start, i))
            start = None
    return runs


def test_masking_token_by_token(tokenizer):
    exchanges = [Exchange("What is shown?", 2, "A round lesion."), Exchange("Where is it?", 0, "On the left.")]
    n_image = 5
    enc = encode(exchanges, tokenizer, n_image, max_length=4096)
    ids, labels = enc.input_ids, enc.labels
    assert len(ids) == len(labels) and enc.n_images == 2

    # Every position is either masked or learns its own token; image positions are all masked.
    for token, label in zip(ids, labels, strict=True):
        assert label in (IGNORE_INDEX, token)
        if token == IMAGE_TOKEN_INDEX:
            assert label == IGNORE_INDEX
    assert ids.count(IMAGE_TOKEN_INDEX) == 2 * n_image

    # Exactly the two answers are learned, each closed as the prompt format closes it; the last one with EOS.
    runs = _runs(labels)
    assert len(runs) == 2
    first, second = ([ids[i] for i in range(a, b)] for a, b in runs)
    closing = prompt.assistant_turn("")[len(prompt.ASSISTANT_TAG):]  # " \n"
    assert second[-1] == tokenizer.eos_id and ids[-1] == tokenizer.eos_id
    assert tokenizer.decode(first).strip() == "A round lesion."
    assert tokenizer.decode(second[:-1]).strip() == "On the left."

    # Everything else is the prompt in the inference format, tokenized in the same chunks (split at images).
    segments, current = [], []
    for token, label in zip(ids, labels, strict=True):
        if label == IGNORE_INDEX and token != IMAGE_TOKEN_INDEX:
            current.append(token)
        elif current:
            segments.append(current)
            current = []
    turn1 = (prompt.user_turn("What is shown?", 2) + prompt.ASSISTANT_TAG).split(prompt.IMAGE_PLACEHOLDER)
    turn2 = prompt.user_turn("Where is it?", 0) + prompt.ASSISTANT_TAG
    assert segments == [tokenizer.encode(piece) for piece in [*turn1, turn2]]
    assert [ids[i] for i in range(*runs[0])] == tokenizer.encode("A round lesion." + closing)


def test_first_turn_is_tokenized_as_at_inference(tokenizer):
    """The prompt of a one-image question is the same token sequence the engine and verify build."""
    enc = encode([Exchange("Describe the image.", 1, "A chest film.")], tokenizer, 3, 4096)
    before, after = prompt.render([prompt.Turn("Describe the image.", n_images=1)]).split(prompt.IMAGE_PLACEHOLDER)
    expected = tokenizer.encode(before) + [IMAGE_TOKEN_INDEX] * 3 + tokenizer.encode(after)
    assert enc.input_ids[: len(expected)] == expected
    assert all(label == IGNORE_INDEX for label in enc.labels[: len(expected)])
    assert enc.labels[len(expected)] != IGNORE_INDEX


def test_truncation_counts_image_tokens_and_drops_a_cut_image(tokenizer):
    exchanges = [Exchange("Compare the three views.", 3, "They agree. " * 20)]
    full = encode(exchanges, tokenizer, 64, 4096)
    assert len(full.input_ids) > 3 * 64 and full.n_images == 3
    # A limit that falls inside the second image keeps only the first, whole.
    start_second = [i for i, t in enumerate(full.input_ids) if t == IMAGE_TOKEN_INDEX][64]
    cut = encode(exchanges, tokenizer, 64, start_second + 10)
    assert cut.n_images == 1
    assert cut.input_ids == full.input_ids[:start_second]
    assert len(cut.input_ids) <= start_second + 10
    # A limit in the answer cuts it at exactly the limit, counted after image expansion.
    limit = len(full.input_ids) - 7
    text_cut = encode(exchanges, tokenizer, 64, limit)
    assert len(text_cut.input_ids) == limit and text_cut.n_images == 3
    assert text_cut.labels == full.labels[:limit]


def test_images_are_placed_as_the_paper_does():
    where = "data.json: record 0"
    pubmedvision = {"image": ["a.png", "b.png"], "conversations": [
        {"from": "human", "value": "What modality is this?"}, {"from": "gpt", "value": "CT."}]}
    exchanges, images = conversation(pubmedvision, where)
    assert images == ["a.png", "b.png"]
    assert exchanges == [Exchange("What modality is this?", 2, "CT.")]

    llava = {"image": "coco/1.jpg", "conversations": [
        {"from": "human", "value": "Describe the photo briefly.\n<image>"}, {"from": "gpt", "value": "A dog."},
        {"from": "human", "value": "What colour?"}, {"from": "gpt", "value": "Brown."}]}
    exchanges, images = conversation(llava, where)
    assert exchanges == [Exchange("Describe the photo briefly.", 1, "A dog."), Exchange("What colour?", 0, "Brown.")]
    assert images == ["coco/1.jpg"]

    text_only = {"conversations": [{"from": "gpt", "value": "Hello."}, {"from": "human", "value": "Hi"},
                                   {"from": "gpt", "value": "How can I help?"}]}
    assert conversation(text_only, where) == ([Exchange("Hi", 0, "How can I help?")], [])


@pytest.mark.parametrize("record,message", [
    ({"image": ["a.png"], "conversations": [{"from": "human", "value": "<image>\n<image>\nx"},
                                            {"from": "gpt", "value": "y"}]}, "2 <image> tags but 1 images"),
    ({"conversations": [{"from": "human", "value": "x"}]}, "alternating human/gpt"),
    ({"conversations": [{"from": "human", "value": "x"}, {"from": "human", "value": "y"}]}, "from gpt"),
    ({"image": 5, "conversations": [{"from": "human", "value": "x"}, {"from": "gpt", "value": "y"}]}, "path"),
])
def test_bad_records_are_named(record, message):
    with pytest.raises(DataError, match=message):
        conversation(record, "pubmedvision.json: record 7")


def test_bad_files_are_named(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("[{")
    with pytest.raises(DataError, match="broken.json: not valid JSON"):
        RecordStore([DatasetSpec(json=str(broken))])
    with pytest.raises(DataError, match="missing.json: no such data file"):
        RecordStore([DatasetSpec(json=str(tmp_path / "missing.json"))])
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([{"id": 1}]))
    with pytest.raises(DataError, match="rows.json: record 0 has no 'conversations'"):
        RecordStore([DatasetSpec(json=str(rows))])


def test_dataset_reads_records_and_images_lazily(tmp_path, tiny_checkpoints):
    folder = tiny_checkpoints("qwen2", "original")
    tokenizer = load_tokenizer(folder, "qwen2", json.loads((folder / "config.json").read_text())["eos_token_id"])
    data = build_pubmedvision(tmp_path / "pmv", n_records=8, multi_image_every=4)
    store = RecordStore([DatasetSpec(json=str(data), images=str(data.parent))], max_images=None)
    assert len(store) == 8
    dataset = SupervisedDataset(store, tokenizer, n_image_tokens=64, image_size=112, max_length=4096)
    sample = dataset[3]  # every fourth record has two images
    assert sample["pixel_values"].shape == (2, 3, 112, 112)
    assert int((sample["input_ids"] == IMAGE_TOKEN_INDEX).sum()) == 2 * 64
    row, _ = store[3]
    with Image.open(data.parent / row["image"][1]) as image:
        expected = torch.from_numpy(normalise(prepare(image, 112)))  # the official preprocessing
    assert torch.equal(sample["pixel_values"][1], expected)

    assert len(RecordStore([DatasetSpec(json=str(data), images=str(data.parent))], max_images=1)) == 6
    (data.parent / row["image"][0]).unlink()
    with pytest.raises(DataError, match=r"000003_0\.png: image file not found"):
        dataset[3]


def _sample(n: int, start: int) -> dict:
    ids = torch.arange(start, start + n)
    return {"input_ids": ids, "labels": ids.clone(), "pixel_values": None}


def test_packed_batch_restarts_positions_and_never_predicts_across_samples():
    samples = [_sample(4, 10), _sample(3, 20), _sample(5, 30)]
    packed = collate(samples, packing=True, pad_id=0)
    assert packed["input_ids"].shape == (1, 12) and packed["attention_mask"] is None
    assert packed["position_ids"].tolist() == [[0, 1, 2, 3, 0, 1, 2, 0, 1, 2, 3, 4]]
    labels = packed["labels"][0].tolist()
    assert [labels[i] for i in (0, 4, 7)] == [IGNORE_INDEX] * 3  # each sample's first token is no target
    padded = collate(samples, packing=False, pad_id=0)
    assert padded["input_ids"].shape == (3, 5)
    assert padded["attention_mask"].sum(1).tolist() == [4, 3, 5]
    assert padded["labels"][1, 3:].tolist() == [IGNORE_INDEX, IGNORE_INDEX]
    assert packed["lengths"] == padded["lengths"] == [4, 3, 5]


def test_sampler_splits_each_global_batch_and_resumes_exactly():
    def micro_batches(rank: int, start: int = 0) -> list[list[int]]:
        return list(StepSampler(40, global_batch=8, micro_batch=2, world_size=2, rank=rank, seed=3,
                                total_steps=10, start_step=start))

    rank0, rank1 = micro_batches(0), micro_batches(1)
    assert len(rank0) == len(rank1) == 10 * 2
    for step in range(10):
        share0 = sum(rank0[2 * step : 2 * step + 2], [])
        share1 = sum(rank1[2 * step : 2 * step + 2], [])
        assert len(set(share0) | set(share1)) == 8  # disjoint halves of one global batch
    epoch0 = sum(rank0[:10] + rank1[:10], [])
    assert sorted(epoch0) == list(range(40))  # one epoch = every record once
    assert sum(rank0[10:] + rank1[10:], []) != epoch0  # the next epoch is reshuffled
    assert micro_batches(0, start=6) == rank0[12:]  # resuming at step 6 continues identically


def test_stage_configs_follow_the_paper(monkeypatch):
    for name in ("HUATUO_DATA", "HUATUO_MODELS", "HUATUO_RUNS"):
        monkeypatch.setenv(name, f"/{name.lower()}")
    stage1, stage2 = load_config(CONFIGS / "stage1_7b.yaml"), load_config(CONFIGS / "stage2_7b.yaml")
    assert (stage1.stage, stage1.trainable, stage1.train.learning_rate, stage1.train.global_batch_size) == (
        1, ("projector",), 1e-3, 256)
    assert (stage2.stage, stage2.trainable, stage2.train.learning_rate, stage2.train.global_batch_size) == (
        2, ("projector", "llm"), 2e-5, 128)
    assert stage1.gradient_accumulation(8) == 2 and stage2.gradient_accumulation(8) == 4
    assert stage1.data.datasets[1].json == "/huatuo_data/PubMedVision/PubMedVision_Alignment_VQA.json"
    for name in ("stage1_34b", "stage2_34b"):
        config = load_config(CONFIGS / f"{name}.yaml")
        assert config.gradient_accumulation(16) * 16 * config.train.micro_batch_size == config.train.global_batch_size
    with pytest.raises(ConfigError, match="not a multiple of micro_batch_size 4 x 6 ranks"):
        stage2.gradient_accumulation(6)
    assert load_config(CONFIGS / "stage2_7b.yaml", ["train.max_steps=5"]).train.max_steps == 5


def test_config_errors_name_the_file_and_key(tmp_path, monkeypatch):
    monkeypatch.delenv("HUATUO_NOT_SET", raising=False)
    path = tmp_path / "bad.yaml"
    path.write_text("stage: 1\nrun_dir: r\nmodel: {base_llm: a, vision_tower: b}\ntrain: {lr: 1}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key train.lr"):
        load_config(path)
    path.write_text("stage: 3\nrun_dir: r\nmodel: {base_llm: a, vision_tower: b}\n")
    with pytest.raises(ConfigError, match="stage must be 1"):
        load_config(path)
    path.write_text("stage: 1\nrun_dir: ${HUATUO_NOT_SET}/r\nmodel: {base_llm: a, vision_tower: b}\n")
    with pytest.raises(ConfigError, match="environment variable"):
        load_config(path)
    path.write_text("stage: 1\nrun_dir: r\nmodel: {base_llm: a, vision_tower: b}\ntrain: {micro_batch_size: two}\n")
    with pytest.raises(ConfigError, match="bad.yaml: train.micro_batch_size must be a whole number, not 'two'"):
        load_config(path)
    path.write_text("stage: 1\nrun_dir: r\nmodel: {base_llm: a, vision_tower: b}\ntrain: {adam_betas: [0.9]}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: train.adam_betas must be a list of 2 numbers, not \[0.9\]"):
        load_config(path)
    path.write_text("stage: 1\nrun_dir: r\nmodel: {base_llm: a, vision_tower: b}\ndata: {datasets: [{images: i}]}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: data.datasets\[0\].json is required"):
        load_config(path)
    path.write_text("stage: 1\nrun_dir: r\nmodel: {base_llm: a}\n")
    with pytest.raises(ConfigError, match="bad.yaml: model needs base_llm and vision_tower"):
        load_config(path)
    path.write_text("stage: 1\nrun_dir: r\nmodel: {base_llm: a, vision_tower: b}\nsystem: {precision: fp8}\n")
    with pytest.raises(ConfigError, match="bad.yaml: system.precision must be bf16 or fp32"):
        load_config(path)
    path.write_text("stage: 1\nmodel: {base_llm: a, vision_tower: b}\n")
    with pytest.raises(ConfigError, match="bad.yaml: run_dir is required"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"bad.yaml: override train.lr.x: lr is not a section"):
        load_config(path, ["run_dir=r", "train.lr=1", "train.lr.x=2"])
    assert load_config(path, ["run_dir=r", "train.adam_betas=[0.8, 0.9]"]).train.adam_betas == (0.8, 0.9)
