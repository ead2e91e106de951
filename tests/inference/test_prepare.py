"""Preparing a conversation while the question is typed: the question then costs only its own tokens, and the
answer is the one it would have been without the preparation (greedy, F32 cache, both text-model flavours)."""

from __future__ import annotations

import pytest

from conversion.verify import sample_image
from inference.engine import Engine, EngineSettings
from inference.prompt import Turn
from inference.sampling import SamplingSettings

GREEDY = SamplingSettings.greedy_decoding(16)
Q1 = "What does this image show? 这张图像显示了什么？"
Q2 = "Is there a pleural effusion? 是否有胸腔积液？"


def _open(converted, flavour="qwen2", layout="original", **settings):
    return Engine.from_folder(converted(flavour, layout, "F32"), EngineSettings(n_ctx=1024, kv_f32=True, **settings))


def _prepared(engine, turns, images) -> dict:
    *_, done = engine.events(engine.prepare(turns, images))
    return done


def _switch_away(engine):
    """Another conversation in between, so that the next request finds none of its own in the cache."""
    engine.ask([Turn("Hello.")], [], SamplingSettings.greedy_decoding(2))


@pytest.mark.parametrize("flavour,layout", [("qwen2", "original"), ("llama", "hf")])
def test_a_prepared_question_processes_only_its_own_tokens(converted, flavour, layout):
    with _open(converted, flavour, layout) as engine:
        image, second = engine.prepare_image(sample_image()), engine.prepare_image(sample_image((300, 200)))
        cold = engine.ask([Turn(Q1, 1)], [image], GREEDY)
        _switch_away(engine)

        done = _prepared(engine, [Turn("", 1)], [image])
        assert done["finish"] == "prepared" and done["timings"]["images_decoded"] == 1
        answer = engine.ask([Turn(Q1, 1)], [image], GREEDY)
        assert answer.token_ids == cold.token_ids
        t = answer.timings
        assert t["images_encoded"] == t["images_decoded"] == 0
        assert t["reused_tokens"] == done["timings"]["n_past"]  # everything the preparation processed
        # what is left is the question's own tokens: the cold question's prompt minus the prepared part
        assert t["prompt_tokens"] == cold.timings["reused_tokens"] + cold.timings["prompt_tokens"] - t["reused_tokens"]
        assert 0 < t["prompt_tokens"] < engine.pair.image_tokens

        # A follow-up with a new image: the earlier turn, its answer and the image are prepared, in the worker.
        history = [answer.as_history(Q1, 1)]
        cold_follow = engine.ask(history + [Turn(Q2, 1)], [image, second], GREEDY)
        _switch_away(engine)
        engine.ask(history[:0] + [Turn(Q1, 1)], [image], GREEDY)  # the cache holds the first question again
        done = _prepared(engine, history + [Turn("", 1)], [image, second])
        assert done["timings"]["images_encoded"] == 0 and done["timings"]["images_decoded"] == 1
        follow = engine.ask(history + [Turn(Q2, 1)], [image, second], GREEDY)
        assert follow.token_ids == cold_follow.token_ids
        assert follow.timings["images_decoded"] == 0 and follow.timings["reused_tokens"] == done["timings"]["n_past"]


def test_a_send_during_the_preparation_continues_from_where_it_got(converted):
    with _open(converted, n_batch=8) as engine:
        images = [engine.prepare_image(sample_image((260 + i, 300))) for i in range(2)]
        rid = engine.prepare([Turn("", 2)], images)
        for event in engine.events(rid):
            if event["type"] == "progress":  # the first image is being encoded: it will be finished and kept
                break
        answer = engine.ask([Turn(Q1, 2)], images, GREEDY)
        assert answer.timings["images_encoded"] <= 1  # never encoded twice: the send continued the preparation
        _switch_away(engine)
        again = engine.ask([Turn(Q1, 2)], images, GREEDY)
        assert again.timings["images_encoded"] == 0
        assert answer.token_ids == again.token_ids

        # A send right behind a preparation nobody followed: the preparation gives way at once.
        fresh = engine.prepare_image(sample_image((333, 222)))
        engine.prepare([Turn("", 1)], [fresh])
        assert engine.ask([Turn(Q2, 1)], [fresh], GREEDY).finish in ("stop", "length")


def test_a_detached_or_changed_image_is_never_answered_from_the_preparation(converted):
    with _open(converted) as engine:
        first, other = engine.prepare_image(sample_image()), engine.prepare_image(sample_image((180, 240)))
        cold_text = engine.ask([Turn(Q1)], [], GREEDY)
        cold_other = engine.ask([Turn(Q1, 1)], [other], GREEDY)
        _switch_away(engine)

        _prepared(engine, [Turn("", 1)], [first])
        detached = engine.ask([Turn(Q1)], [], GREEDY)  # sent without the image after all
        assert detached.token_ids == cold_text.token_ids

        _prepared(engine, [Turn("", 1)], [first])
        done = _prepared(engine, [Turn("", 1)], [other])  # the image was changed while the question was typed
        assert done["timings"]["images_decoded"] == 1
        changed = engine.ask([Turn(Q1, 1)], [other], GREEDY)
        assert changed.token_ids == cold_other.token_ids and changed.timings["images_decoded"] == 0


def test_nothing_to_prepare_keeps_the_cache(converted):
    with _open(converted) as engine:
        image = engine.prepare_image(sample_image())
        first = engine.ask([Turn(Q1, 1)], [image], GREEDY)
        done = _prepared(engine, [Turn("")], [])  # a new conversation's first question has nothing before it
        assert done["finish"] == "prepared" and done["timings"]["prompt_tokens"] == 0
        follow = engine.ask([first.as_history(Q1, 1), Turn(Q2)], [image], GREEDY)
        assert follow.timings["reused_tokens"] == first.timings["n_past"]


def test_a_stopped_preparation_keeps_the_worker_and_the_encoded_image(converted):
    with _open(converted) as engine:
        engine.start()
        pid = engine.pid
        image = engine.prepare_image(sample_image((250, 250)))
        for event in engine.events(engine.prepare([Turn("", 1)], [image])):
            if event["type"] == "progress" and event["stage"] == "image":
                engine.cancel(encoder_grace_s=None)  # a question came: the encoder is left to finish
            last = event
        assert last["finish"] in ("cancelled", "prepared")
        answer = engine.ask([Turn(Q1, 1)], [image], GREEDY)
        assert engine.pid == pid and answer.timings["images_encoded"] == 0
