"""The engine on tiny F32 models: parity with transformers across turns, rollback, cancellation, crashes."""

import os
import signal
from pathlib import Path

import pytest

from conversion.checkpoint import Checkpoint
from conversion.reference import greedy_reference, load_reference
from conversion.tokenizer import reference_tokenizer
from conversion.verify import sample_image
from inference.engine import ContextFull, Engine, EngineCrashed, EngineError, EngineSettings
from inference.imageprep import prepare
from inference.prompt import Turn
from inference.sampling import SamplingSettings
from inference.worker import ImageUnit, conversation_pieces

GREEDY = SamplingSettings.greedy_decoding(16)
Q1 = "What does this image show? 这张图像显示了什么？"
Q2 = "Is there a pleural effusion? 是否有胸腔积液？"


@pytest.fixture(scope="module")
def engine(converted):
    with Engine.from_folder(converted("qwen2", "original", "F32"), EngineSettings(n_ctx=1024, kv_f32=True)) as e:
        yield e


@pytest.fixture(scope="module")
def image(engine):
    return engine.prepare_image(sample_image())


def _reference_answer(checkpoint, turns, pil_image, eos_ids, keep_answer_tokens, repetition_penalty=1.0):
    """transformers' greedy answer to the conversation, built exactly as the official code builds it
    (earlier answers as their generated ids where the engine keeps those)."""
    ckpt = Checkpoint(checkpoint)
    tokenize, _, _ = reference_tokenizer(ckpt.path, ckpt.text.family)
    model = load_reference(ckpt)
    wire = [{"question": t.question, "images": ["x"] * t.n_images, "answer": t.answer,
             "answer_tokens": t.answer_tokens} for t in turns]
    pieces = [pil_image if isinstance(p, ImageUnit) else p for p in conversation_pieces(wire, keep_answer_tokens)]
    return greedy_reference(model, pieces, tokenize, GREEDY.max_new_tokens, eos_ids, repetition_penalty)


def test_repetition_penalty_sees_only_the_answer_as_the_official_code(tiny_checkpoints, engine, image):
    """The official generate() gets embeddings only: its penalty covers generated tokens, not the prompt."""
    pil = prepare(sample_image(), engine.pair.image_size)
    penalised = SamplingSettings(greedy=True, repetition_penalty=1.5, max_new_tokens=GREEDY.max_new_tokens)
    answer = engine.ask([Turn(Q1, 1)], [image], penalised)
    want = _reference_answer(tiny_checkpoints("qwen2", "original"), [Turn(Q1, 1)], pil, _eos_ids(engine), False, 1.5)
    assert answer.token_ids == want
    assert answer.token_ids != engine.ask([Turn(Q1, 1)], [image], GREEDY).token_ids  # the penalty did act


@pytest.mark.parametrize("flavour,layout,history", [
    ("qwen2", "original", "token ids"), ("qwen2", "original", "text"), ("llama", "hf", "token ids"),
])
def test_first_and_follow_up_answers_equal_transformers(tiny_checkpoints, converted, flavour, layout, history):
    with Engine.from_folder(converted(flavour, layout, "F32"), EngineSettings(n_ctx=1024, kv_f32=True)) as engine:
        image = engine.prepare_image(sample_image())
        pil = prepare(sample_image(), engine.pair.image_size)
        checkpoint = tiny_checkpoints(flavour, layout)
        eos = _eos_ids(engine)
        first = engine.ask([Turn(Q1, 1)], [image], GREEDY)
        assert first.token_ids == _reference_answer(checkpoint, [Turn(Q1, 1)], pil, eos, False)
        earlier = first.as_history(Q1, 1) if history == "token ids" else Turn(Q1, 1, first.text)
        turns = [earlier, Turn(Q2)]
        second = engine.ask(turns, [image], GREEDY)
        # Byte-level BPE keeps the generated ids; SentencePiece re-tokenizes the text, as the official code.
        keep = history == "token ids" and flavour == "qwen2"
        assert second.token_ids == _reference_answer(checkpoint, turns, pil, eos, keep)
        # The follow-up did not re-encode the image, nor re-process the first question.
        assert second.timings["images_encoded"] == 0
        assert second.timings["reused_tokens"] >= first.timings["prompt_tokens"] - 1
        if keep:  # and with the answer's own ids, not even the first answer
            assert second.timings["reused_tokens"] == first.timings["n_past"]


def _eos_ids(engine):
    from inference.native import NativeModel

    model = NativeModel(engine.pair.text_path, None, n_ctx=64)
    try:
        return [t for t in range(model.n_vocab) if model.is_end_of_generation(t)]
    finally:
        model.close()


def test_regenerate_and_edit_equal_a_fresh_conversation(converted, engine, image):
    first = engine.ask([Turn(Q1, 1)], [image], GREEDY)
    history = [first.as_history(Q1, 1)]
    answer = engine.ask(history + [Turn(Q2)], [image], GREEDY)
    regenerated = engine.ask(history + [Turn(Q2)], [image], GREEDY)
    assert regenerated.token_ids == answer.token_ids
    assert regenerated.timings["prompt_tokens"] <= 2  # rolled back to the open assistant turn, not restarted
    edited = engine.ask(history + [Turn("Where is the lesion?")], [image], GREEDY)
    assert edited.timings["images_encoded"] == 0

    with Engine.from_folder(converted("qwen2", "original", "F32"), EngineSettings(n_ctx=1024, kv_f32=True)) as fresh:
        assert fresh.ask(history + [Turn(Q2)], [image], GREEDY).token_ids == answer.token_ids
        assert fresh.ask(history + [Turn("Where is the lesion?")], [image], GREEDY).token_ids == edited.token_ids


def test_editing_an_early_turn_rolls_back_past_the_image_without_re_encoding(engine, image):
    first = engine.ask([Turn(Q1)], [], GREEDY)
    engine.ask([first.as_history(Q1), Turn(Q2, 1)], [image], GREEDY)
    edited = engine.ask([Turn("Describe the chest.")], [], GREEDY)
    again = engine.ask([edited.as_history("Describe the chest."), Turn(Q2, 1)], [image], GREEDY)
    assert edited.timings["reused_tokens"] < 10  # rolled back to the start of the first question
    assert again.timings["images_encoded"] == 0  # the image went back in from its kept embeddings


def test_cancel_during_generation_keeps_the_partial_answer(engine, image):
    full = engine.ask([Turn(Q2, 1)], [image], GREEDY)
    pieces = []
    for event in engine.generate([Turn(Q2, 1)], [image], GREEDY):
        if event["type"] == "tokens":
            pieces.append(event["text"])
            if len(pieces) == 3:
                engine.cancel()
        if event["type"] == "done":
            done = event
    assert done["finish"] == "cancelled"
    assert 3 <= len(done["token_ids"]) < len(full.token_ids)
    assert done["token_ids"] == full.token_ids[: len(done["token_ids"])]
    # the partial answer continues as history
    partial = Turn(Q2, 1, done["text"], tuple(done["token_ids"]))
    follow = engine.ask([partial, Turn("Go on.")], [image], GREEDY)
    assert follow.timings["reused_tokens"] == full.timings["n_past"] - len(full.token_ids) + len(done["token_ids"])
    assert follow.finish in ("stop", "length") and follow.timings["images_encoded"] == 0


def test_cancel_during_prompt_processing(converted, image):
    settings = EngineSettings(n_ctx=1024, n_batch=8)
    with Engine.from_folder(converted("qwen2", "original", "F32"), settings) as engine:
        events = []
        for event in engine.generate([Turn(Q1 * 4, 1)], [image], GREEDY):
            events.append(event)
            if event["type"] == "progress" and event["stage"] == "prompt":
                engine.cancel()
        assert events[-1]["finish"] == "cancelled" and events[-1]["token_ids"] == []
        assert engine.ask([Turn(Q1, 1)], [image], GREEDY).finish in ("stop", "length")


def test_cancel_during_image_encoding_kills_and_restarts_the_worker(converted, image):
    with Engine.from_folder(converted("qwen2", "original", "F32"), EngineSettings(n_ctx=1024)) as engine:
        engine.start()
        first_pid = engine.pid
        for event in engine.generate([Turn(Q1, 1)], [image], GREEDY):
            if event["type"] == "progress" and event["stage"] == "image":
                engine.cancel(encoder_grace_s=0)
            last = event
        assert last["finish"] == "cancelled"
        assert engine.ask([Turn(Q1, 1)], [image], GREEDY).token_ids
        assert engine.pid != first_pid


def test_a_killed_worker_is_reported_and_restarted(converted, image):
    with Engine.from_folder(converted("qwen2", "original", "F32"), EngineSettings(n_ctx=1024)) as engine:
        loaded = engine.start()
        # where the load's time went, for the benchmark's breakdown: the text model, then the vision encoder
        assert set(loaded["load_timings"]) == {"text_s", "vision_s"}
        assert all(seconds > 0 for seconds in loaded["load_timings"].values())
        os.kill(engine.pid, signal.SIGKILL)
        with pytest.raises(EngineCrashed, match="killed"):
            engine.ask([Turn(Q1, 1)], [image], GREEDY)
        assert engine.ask([Turn(Q1, 1)], [image], GREEDY).token_ids  # restarted


def test_context_full_is_said_and_nothing_is_dropped(converted, image):
    with Engine.from_folder(converted("qwen2", "original", "F32"), EngineSettings(n_ctx=128)) as engine:
        n_ctx = engine.start()["n_ctx"]  # llama.cpp may round the context up
        n_images = n_ctx // 64 + 1
        others = [engine.prepare_image(sample_image((200 + i, 300))) for i in range(n_images - 1)]
        with pytest.raises(ContextFull, match="no image or turn was dropped"):
            engine.ask([Turn(Q1, n_images)], [image, *others], GREEDY)
        answer = engine.ask([Turn("Short?", 1)], [image], SamplingSettings.greedy_decoding(200))
        assert answer.finish in ("stop", "context_full")


def test_too_many_images_are_refused(engine, image):
    with pytest.raises(EngineError, match="at most 6 images"):
        engine.ask([Turn(Q1, 7)], [image] * 7, GREEDY)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads the worker's memory map from /proc")
def test_both_model_files_are_used_in_place_not_copied_into_memory(engine, image):
    """On a CPU the weights of both files stay in the files' pages, mapped (llama.cpp maps the text model; our patch
    maps the vision projector, native/llama-cpp/): loading copies nothing into freshly cleared memory, and every
    process that loads the same files shares their pages. The parity tests in this file encode images from them."""
    maps = Path(f"/proc/{engine.pid}/maps").read_text()
    mapped = {line.split(maxsplit=5)[5] for line in maps.splitlines() if len(line.split(maxsplit=5)) == 6}
    assert str(engine.pair.text_path.resolve()) in mapped
    assert str(engine.pair.mmproj_path.resolve()) in mapped


def test_an_answer_reports_llama_cpps_own_time_for_decoding_its_tokens(engine, image):
    answer = engine.ask([Turn(Q1, 1)], [image], GREEDY)
    generated = answer.timings["generated_tokens"]
    assert generated >= 2
    # every sampled token but the last is decoded and timed by llama.cpp (the last one may still be computing)
    assert generated - 1 <= answer.timings["llama_decoded_tokens"] <= generated
    assert answer.timings["llama_decode_ms"] > 0
