"""The training model against transformers' LLaVA reference, packing, text-only batches, weight sources."""

from __future__ import annotations

import json

import pytest
import torch

from conversion.checkpoint import Checkpoint
from conversion.reference import image_features as reference_image_features
from conversion.reference import load_reference
from conversion.verify import sample_image
from inference import prompt
from inference.imageprep import normalise, prepare
from tests.support.training_data import build_pubmedvision, split_parts
from training.config import DatasetSpec, ModelSection
from training.data import RecordStore, SupervisedDataset, collate, load_tokenizer
from training.model import IMAGE_TOKEN_INDEX, build_on_meta, materialize, resolve_spec


@pytest.fixture(scope="module")
def setup(tiny_checkpoints, tmp_path_factory):
    torch.set_num_threads(1)
    folder = tiny_checkpoints("qwen2", "original")
    spec = resolve_spec(ModelSection(init_checkpoint=str(folder)))
    model = build_on_meta(spec, ("projector", "llm"), torch.float32)
    materialize(model, torch.device("cpu"), spec, seed=0)
    model.eval()
    tokenizer = load_tokenizer(folder, "qwen2", spec.text_config.eos_token_id)
    data = build_pubmedvision(tmp_path_factory.mktemp("pmv"), n_records=6, multi_image_every=3)
    store = RecordStore([DatasetSpec(json=str(data), images=str(data.parent))])
    dataset = SupervisedDataset(store, tokenizer, spec.n_image_tokens, spec.image_size, 4096)
    return {"folder": folder, "spec": spec, "model": model, "tokenizer": tokenizer, "dataset": dataset,
            "reference": load_reference(Checkpoint(folder))}


def _loss(model, batch) -> torch.Tensor:
    total, count = model(batch["input_ids"], batch["labels"], batch["position_ids"], batch["attention_mask"],
                         batch["pixel_values"])
    return total / count


def test_loss_equals_the_transformers_reference(setup):
    """Image splice, layer -2 features without CLS, GELU projector, language model: the same numbers as
    transformers' LlavaForConditionalGeneration on the checkpoint's own weights."""
    model, reference = setup["model"], setup["reference"]
    for index in (0, 2):  # one image, then two images (every third record)
        batch = collate([setup["dataset"][index]], packing=True, pad_id=setup["tokenizer"].pad_id)
        ids = batch["input_ids"].clone()
        ids[ids == IMAGE_TOKEN_INDEX] = reference.config.image_token_index
        with torch.no_grad():
            expected = reference(input_ids=ids, pixel_values=batch["pixel_values"], labels=batch["labels"]).loss
            assert float(_loss(model, batch)) == pytest.approx(float(expected), rel=1e-5)


def test_image_features_are_layer_minus_two_without_cls(setup):
    image = prepare(sample_image(), setup["spec"].image_size)
    pixels = torch.from_numpy(normalise(image))[None]
    with torch.no_grad():
        ours = setup["model"].image_features(pixels)[0]
    expected = reference_image_features(setup["reference"], image)
    assert ours.shape == (setup["spec"].n_image_tokens, setup["spec"].text_config.hidden_size)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_packed_equals_unpacked_loss_and_gradients(setup):
    model, dataset = setup["model"], setup["dataset"]
    samples = [dataset[i] for i in range(4)]
    results = []
    for packing in (True, False):
        model.zero_grad(set_to_none=True)
        loss = _loss(model, collate(samples, packing=packing, pad_id=setup["tokenizer"].pad_id))
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((loss.detach(), grads))
    model.zero_grad(set_to_none=True)
    (packed, packed_grads), (unpacked, unpacked_grads) = results
    torch.testing.assert_close(packed, unpacked, rtol=1e-5, atol=1e-6)
    assert packed_grads.keys() == unpacked_grads.keys() and "projector.0.weight" in packed_grads
    for name in packed_grads:
        torch.testing.assert_close(packed_grads[name], unpacked_grads[name], rtol=1e-4, atol=1e-6, msg=name)
    assert not any(n.startswith("vision.") for n in packed_grads)  # the tower is frozen


def test_text_only_batch_learns_and_keeps_the_projector_in_the_graph(setup):
    model, tokenizer = setup["model"], setup["tokenizer"]
    question = tokenizer.encode(prompt.user_turn("Hello") + prompt.ASSISTANT_TAG)
    answer = tokenizer.encode("Hi there. \n") + [tokenizer.eos_id]
    ids = torch.tensor(question + answer)
    labels = torch.tensor([-100] * len(question) + answer)
    batch = collate([{"input_ids": ids, "labels": labels, "pixel_values": None}], packing=True, pad_id=0)
    assert batch["pixel_values"] is None
    loss = _loss(model, batch)
    with torch.no_grad():
        expected = setup["reference"](input_ids=ids[None], labels=batch["labels"]).loss
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)
    model.zero_grad(set_to_none=True)
    loss.backward()
    projector_grad = model.projector[0].weight.grad
    assert projector_grad is not None and float(projector_grad.abs().sum()) == 0.0
    model.zero_grad(set_to_none=True)


def test_parts_give_the_same_weights_as_the_checkpoint(setup, tmp_path):
    llm, clip = split_parts(setup["folder"], tmp_path)
    spec = resolve_spec(ModelSection(base_llm=str(llm), vision_tower=str(clip)))
    assert spec.family == "qwen2" and spec.n_image_tokens == setup["spec"].n_image_tokens
    from_parts = build_on_meta(spec, ("projector",), torch.float32)
    materialize(from_parts, torch.device("cpu"), spec, seed=5)
    reference = dict(setup["model"].named_parameters())
    for name, param in from_parts.named_parameters():
        if name.startswith("projector."):  # a new projector: LLaVA's default init, the same on every rank
            assert not torch.equal(param, reference[name])
        else:
            assert torch.equal(param, reference[name]), name
    assert [n for n, p in from_parts.named_parameters() if p.requires_grad] == [
        "projector.0.weight", "projector.0.bias", "projector.2.weight", "projector.2.bias"]
    config = json.loads((llm / "config.json").read_text())
    assert config["model_type"] == "qwen2" and "mm_projector_type" not in config


def test_model_flops_of_the_7b():
    """6N per token when the language model trains, 4N when frozen (backward still runs through it); the
    output layer only on label tokens; plus attention, the tower's used layers and the projector."""
    from training.metrics import FlopCounter, peak_flops
    from training.model import spec_from_shapes

    model = build_on_meta(spec_from_shapes("qwen2-7b"), ("projector", "llm"), torch.bfloat16)  # no memory
    stage2, stage1 = FlopCounter(model, llm_trains=True), FlopCounter(model, llm_trains=False)
    assert stage2.n_llm == 7_615_616_512 - 2 * 152064 * 3584  # decoder layers and final norm
    assert stage2.n_output == 152064 * 3584
    lengths, n_targets = [1024, 2048], 512
    attention = 12 * 28 * 3584 * (1024**2 + 2048**2)
    image_part = stage2.step_flops(lengths, 2, n_targets) - stage2.step_flops(lengths, 0, n_targets)
    # 6 x (6,525,621,760 x 3,072 tokens + 544,997,376 x 512 targets) + attention 6,313,601,925,120 (stage 2: the LLM
    # trains, forward + backward); stage 1 (frozen LLM: forward + input gradients) 4 x (...) + attention
    assert attention == 6_313_601_925_120
    assert stage2.step_flops(lengths, 0, n_targets) == 128_268_094_144_512
    assert stage1.step_flops(lengths, 0, n_targets) == 87_616_596_738_048
    per_image = 2 * 0.29e9 * 577 + 6 * 16.5e6 * 576  # 23 CLIP layers forward, projector trained
    assert image_part / 2 == pytest.approx(per_image + 4 * 23 * 1024 * 577**2, rel=0.02)
    assert peak_flops(torch.device("cpu")) is None  # MFU on a CPU is reported as n/a
