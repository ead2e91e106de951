"""Saved conversation states: restored in a new worker process (as after a restart) instead of recomputed, with the
same greedy answer; never for another model, image or prefix; damaged files skipped; bounded; removable."""

from __future__ import annotations

import hashlib
import json
import stat
import struct

import pytest

from conversion.verify import sample_image
from inference.engine import Engine, EngineSettings
from inference.kv_states import MAGIC, SUFFIX, clear_states, remove_states_with_images
from inference.prompt import Turn
from inference.sampling import SamplingSettings

GREEDY = SamplingSettings.greedy_decoding(16)
Q1 = "What does this image show? 这张图像显示了什么？"
Q2 = "Is there a pleural effusion? 是否有胸腔积液？"
SETTINGS = EngineSettings(n_ctx=1024, kv_f32=True)


def _engine(converted, states=None, flavour="qwen2", layout="original", **kwargs):
    return Engine.from_folder(converted(flavour, layout, "F32"), SETTINGS, state_dir=states, **kwargs)


def _files(folder):
    return sorted(folder.glob(f"*{SUFFIX}"))


@pytest.fixture(scope="module")
def reference(converted):
    """Answers of an engine that never saves nor restores anything."""
    with _engine(converted) as engine:
        image = engine.prepare_image(sample_image())
        first = engine.ask([Turn(Q1, 1)], [image], GREEDY)
        follow = engine.ask([first.as_history(Q1, 1), Turn(Q2)], [image], GREEDY)
    return image, first, follow


def test_a_reopened_conversation_is_restored_in_a_new_worker(converted, reference, tmp_path):
    image, first, follow = reference
    states = tmp_path / "states"
    with _engine(converted, states) as engine:
        answer = engine.ask([Turn(Q1, 1)], [image], GREEDY)
    assert answer.token_ids == first.token_ids
    [saved] = _files(states)
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600

    with _engine(converted, states) as restarted:  # the app restarted: a new process, an empty cache
        again = restarted.ask([answer.as_history(Q1, 1), Turn(Q2)], [image], GREEDY)
        t = again.timings
        assert again.token_ids == follow.token_ids
        assert t["restored_tokens"] == first.timings["n_past"] and t["reused_tokens"] == t["restored_tokens"]
        assert t["images_encoded"] == t["images_decoded"] == 0  # no image was processed
        # Regenerating the first answer: the prefix before it was never saved on its own, so it is computed.
        assert restarted.ask([Turn(Q1, 1)], [image], GREEDY).token_ids == first.token_ids


def test_a_prepared_image_is_restored_after_a_restart(converted, reference, tmp_path):
    image, first, _ = reference
    states = tmp_path / "states"
    with _engine(converted, states) as engine:
        *_, done = engine.events(engine.prepare([Turn("", 1)], [image]))
        assert done["finish"] == "prepared"
    with _engine(converted, states) as restarted:
        answer = restarted.ask([Turn(Q1, 1)], [image], GREEDY)
    assert answer.token_ids == first.token_ids
    assert answer.timings["restored_tokens"] == done["timings"]["n_past"]
    assert answer.timings["images_encoded"] == answer.timings["images_decoded"] == 0


def test_another_image_prefix_or_model_never_uses_a_saved_state(converted, reference, tmp_path):
    image, first, _ = reference
    states = tmp_path / "states"
    with _engine(converted, states) as engine:
        engine.ask([Turn(Q1, 1)], [image], GREEDY)
        other = engine.prepare_image(sample_image((200, 320)))
    with _engine(converted, states) as restarted:
        changed = restarted.ask([Turn(Q1, 1)], [other], GREEDY)  # another image
        assert changed.timings["restored_tokens"] == 0 and changed.timings["images_encoded"] == 1
        edited = restarted.ask([Turn("Another first question", 1)], [image], GREEDY)
        assert edited.timings["restored_tokens"] == 0  # the saved conversation differs after the image
    with _engine(converted, states, "qwen2", "hf") as another_model:  # other files, other hashes
        answer = another_model.ask([first.as_history(Q1, 1), Turn(Q2)], [image], GREEDY)
        assert answer.timings["restored_tokens"] == 0 and answer.timings["images_encoded"] == 1


def _rewrite(path, blob_change):
    """Rewrite a state file with its blob changed and a header that still describes the new blob."""
    data = path.read_bytes()
    (size,) = struct.unpack("<I", data[len(MAGIC):len(MAGIC) + 4])
    header = json.loads(data[len(MAGIC) + 4:len(MAGIC) + 4 + size])
    blob = blob_change(data[len(MAGIC) + 4 + size:])
    header.update(blob_bytes=len(blob), blob_sha256=hashlib.sha256(blob).hexdigest())
    encoded = json.dumps(header).encode()
    path.write_bytes(MAGIC + struct.pack("<I", len(encoded)) + encoded + blob)


@pytest.mark.parametrize("damage", ["truncated file", "flipped byte", "refused by llama.cpp"])
def test_a_damaged_state_is_skipped_removed_and_the_answer_is_still_right(converted, reference, tmp_path, capfd,
                                                                          damage):
    image, first, follow = reference
    states = tmp_path / "states"
    with _engine(converted, states) as engine:
        engine.ask([Turn(Q1, 1)], [image], GREEDY)
    [saved] = _files(states)
    data = saved.read_bytes()
    if damage == "truncated file":
        saved.write_bytes(data[: len(data) - 100])
    elif damage == "flipped byte":
        saved.write_bytes(data[:-50] + bytes([data[-50] ^ 0xFF]) + data[-49:])
    else:  # whole and hashed as written, but not a state llama.cpp can load (as from another build)
        _rewrite(saved, lambda blob: blob[: len(blob) // 2])
    with _engine(converted, states) as restarted:
        answer = restarted.ask([first.as_history(Q1, 1), Turn(Q2)], [image], GREEDY)
    assert answer.token_ids == follow.token_ids
    assert answer.timings["restored_tokens"] == 0 and answer.timings["images_encoded"] == 1
    assert not saved.exists()
    assert "a saved state was skipped and removed" in capfd.readouterr().err


def test_a_failing_disk_while_saving_never_affects_the_answer(converted, reference, tmp_path):
    image, first, _ = reference
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the state folder should be")
    with _engine(converted, blocked / "states") as engine:
        assert engine.ask([Turn(Q1, 1)], [image], GREEDY).token_ids == first.token_ids
        assert engine.ask([Turn(Q1, 1)], [image], GREEDY).token_ids == first.token_ids


def test_states_are_bounded_least_recently_used_first(converted, tmp_path):
    states = tmp_path / "states"
    with _engine(converted, states) as engine:
        images = [engine.prepare_image(sample_image((220 + 10 * i, 300))) for i in range(3)]
        engine.ask([Turn(Q1, 1)], [images[0]], SamplingSettings.greedy_decoding(1))
    [one] = _files(states)  # saved after the answer, before the worker ended
    limit = int(one.stat().st_size * 2.5)  # room for two states of this size
    with _engine(converted, states, state_limit_bytes=limit) as engine:
        for image in images[1:]:
            engine.ask([Turn(Q1, 1)], [image], SamplingSettings.greedy_decoding(1))
    kept = _files(states)
    assert len(kept) == 2 and one not in kept and sum(p.stat().st_size for p in kept) <= limit


def test_removing_a_conversations_images_removes_its_states_and_clear_removes_all(converted, tmp_path):
    states = tmp_path / "states"
    with _engine(converted, states) as engine:
        images = [engine.prepare_image(sample_image((240 + 10 * i, 300))) for i in range(2)]
        for image in images:
            engine.ask([Turn(Q1, 1)], [image], SamplingSettings.greedy_decoding(1))
    assert len(_files(states)) == 2
    assert remove_states_with_images(states, [images[0].sha256]) == 1
    [left] = _files(states)
    assert images[1].sha256 in left.read_bytes()[:4096].decode("utf-8", "replace")
    assert clear_states(states) == 1 and _files(states) == []
