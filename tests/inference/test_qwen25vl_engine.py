"""The engine with a tiny converted Qwen2.5-VL (HuatuoGPT-Vision-7B-Qwen2.5VL's architecture): the release's chat
template, images at their own size, greedy answers identical to transformers across turns, preparations, saved
states, the context counted in KV cells, cancel."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from conversion.qwen25vl import Qwen25VLCheckpoint
from conversion.verify import sample_image
from inference.engine import ContextFull, Engine, EngineSettings
from inference.families import QWEN25VL
from inference.prompt import Turn
from inference.sampling import SamplingSettings
from inference.worker import ImageUnit, conversation_pieces

GREEDY = SamplingSettings.greedy_decoding(16)
Q1 = "What does this image show? 请描述这张图像。"
Q2 = "Compare these two images with the first one. 这两张图像有什么不同？"
# Originals of different shapes: one inside the pixel budget, a non-square one, one the budget shrinks.
ORIGINALS = [(300, 220), (280, 196), (900, 700)]


def _settings(**kwargs):
    return EngineSettings(**{"n_ctx": 2048, "kv_f32": True, **kwargs})


@pytest.fixture(scope="module")
def engine(qwen25vl_converted):
    with Engine.from_folder(qwen25vl_converted, _settings()) as e:
        yield e


@pytest.fixture(scope="module")
def images(engine):
    return [engine.prepare_image(sample_image(size)) for size in ORIGINALS]


@pytest.fixture(scope="module")
def reference(qwen25vl_checkpoint, engine):
    """transformers' greedy answer to a conversation, from its turns as the engine receives them."""
    from transformers import AutoTokenizer

    from conversion.qwen25vl_reference import load_reference
    from conversion.qwen25vl_verify import greedy_reference
    from inference.native import NativeModel

    ckpt = Qwen25VLCheckpoint(qwen25vl_checkpoint)
    model = load_reference(ckpt)
    tokenizer = AutoTokenizer.from_pretrained(ckpt.path)
    native = NativeModel(str(engine.pair.text_path), None, n_ctx=64)
    try:
        eos = [t for t in range(native.n_vocab) if native.is_end_of_generation(t)]
    finally:
        native.close()
    render = QWEN25VL.renderer(ckpt.chat_template)

    def answer(turns: list[Turn], originals: list[Image.Image]) -> list[int]:
        wire = [{"question": t.question, "images": ["x"] * t.n_images, "answer": t.answer,
                 "answer_tokens": t.answer_tokens} for t in turns]
        pieces = [None if isinstance(p, ImageUnit) else p for p in conversation_pieces(wire, True, render)]
        return greedy_reference(model, ckpt, tokenizer, pieces, originals, GREEDY.max_new_tokens, eos)

    return answer


def _size(prepared) -> tuple[int, int]:
    return Image.open(io.BytesIO(prepared.png)).size


def test_images_are_prepared_at_their_own_size_within_the_budget(engine, images):
    assert engine.family is QWEN25VL and engine.image_tokens == 192
    for prepared, original in zip(images, ORIGINALS, strict=True):
        width, height = _size(prepared)
        assert width % 28 == 0 and height % 28 == 0 and width * height <= 420 * 360
        assert abs(width / height - original[0] / original[1]) < 0.15  # the aspect ratio is kept, not a square
    assert _size(images[2]) != (900, 700)  # the budget shrank it
    with pytest.raises(ValueError, match="between 4 and 1024"):
        Engine(engine.pair, _settings(image_max_tokens=4096))
    small = Engine(engine.pair, _settings(image_max_tokens=64)).prepare_image(sample_image((900, 700)))
    assert _size(small)[0] * _size(small)[1] <= 64 * 28 * 28


def test_first_question_and_two_image_follow_up_equal_transformers(engine, images, reference):
    originals = [sample_image(size) for size in ORIGINALS]
    first = engine.ask([Turn(Q1, 1)], images[:1], GREEDY)
    assert first.token_ids and first.token_ids == reference([Turn(Q1, 1)], originals[:1])

    turns = [first.as_history(Q1, 1), Turn(Q2, 2)]
    follow = engine.ask(turns, images, GREEDY)
    assert follow.token_ids == reference(turns, originals)
    t = follow.timings
    assert t["images_encoded"] == 2 and t["images_decoded"] == 2  # the new images only, the first is not redone
    assert t["reused_tokens"] == first.timings["n_past"]  # the whole first turn, its answer's own ids included
    # M-RoPE: an image advances the position by one side of its grid but takes a cell per image token.
    assert t["n_cells"] > t["n_past"]


def test_a_preparation_then_send_gives_the_same_answer(engine, images):
    cold = engine.ask([Turn(Q1, 1)], images[1:2], GREEDY)
    engine.ask([Turn("Hello.")], [], SamplingSettings.greedy_decoding(2))  # another conversation in between
    *_, done = engine.events(engine.prepare([Turn("", 1)], images[1:2]))
    assert done["finish"] == "prepared" and done["timings"]["images_decoded"] == 1
    answer = engine.ask([Turn(Q1, 1)], images[1:2], GREEDY)
    assert answer.token_ids == cold.token_ids
    assert answer.timings["images_encoded"] == answer.timings["images_decoded"] == 0
    assert answer.timings["reused_tokens"] == done["timings"]["n_past"]


def test_a_saved_state_is_restored_in_a_new_worker(qwen25vl_converted, engine, images, tmp_path):
    first = engine.ask([Turn(Q1, 1)], images[:1], GREEDY)
    follow = engine.ask([first.as_history(Q1, 1), Turn(Q2, 2)], images, GREEDY)
    states = tmp_path / "states"
    with Engine.from_folder(qwen25vl_converted, _settings(), state_dir=states) as saving:
        assert saving.ask([Turn(Q1, 1)], images[:1], GREEDY).token_ids == first.token_ids
    with Engine.from_folder(qwen25vl_converted, _settings(), state_dir=states) as restarted:
        again = restarted.ask([first.as_history(Q1, 1), Turn(Q2, 2)], images, GREEDY)
    assert again.token_ids == follow.token_ids
    assert again.timings["restored_tokens"] == first.timings["n_past"] and again.timings["images_encoded"] == 2
    assert again.timings["n_cells"] == follow.timings["n_cells"]  # the restored cells were counted


def test_context_full_is_counted_in_cells_and_refused_before_decoding(qwen25vl_converted, images):
    six = [images[i % 3] for i in range(6)]
    sizes = [_size(image) for image in six]
    cells = sum(w * h // 28**2 for w, h in sizes)
    positions = sum(max(w, h) // 28 for w, h in sizes)
    with Engine.from_folder(qwen25vl_converted, _settings(n_ctx=512)) as engine:
        n_ctx = engine.start()["n_ctx"]
        assert positions + 100 < n_ctx < cells  # by positions it would fit, by cells it does not
        events = []
        with pytest.raises(ContextFull, match="no image or turn was dropped"):
            for event in engine.generate([Turn(Q1, 6)], six, GREEDY):
                events.append(event)
        assert not [e for e in events if e["type"] == "progress" and e["stage"] == "prompt"]  # nothing decoded
        answer = engine.ask([Turn(Q1, 1)], images[:1], GREEDY)  # the worker goes on
        assert answer.finish in ("stop", "length") and answer.timings["n_cells"] <= n_ctx


def test_cancel_during_generation_keeps_the_partial_answer(engine, images):
    # A long answer: the tiny model streams in batches, and a short one could end before the cancel reaches it.
    greedy_long = SamplingSettings.greedy_decoding(256)
    full = engine.ask([Turn(Q2, 1)], images[:1], greedy_long)
    assert len(full.token_ids) > 16
    pieces, done = [], None
    for event in engine.generate([Turn(Q2, 1)], images[:1], greedy_long):
        if event["type"] == "tokens":
            pieces.append(event["text"])
            if len(pieces) == 2:
                engine.cancel()
        if event["type"] == "done":
            done = event
    assert done["finish"] == "cancelled"
    assert 2 <= len(done["token_ids"]) < len(full.token_ids)
    assert done["token_ids"] == full.token_ids[: len(done["token_ids"])]
    follow = engine.ask([Turn(Q2, 1, done["text"], tuple(done["token_ids"])), Turn("Go on.")], images[:1], GREEDY)
    assert follow.finish in ("stop", "length") and follow.timings["images_encoded"] == 0
