"""The reformat and export stages over real HTTP against a local OpenAI-compatible server that rate-limits,
fails, answers garbage or slowly; the reply cache; resuming after a kill; the dry-run estimate."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from inference.prompt import IMAGE_PLACEHOLDER
from tests.support.loopback_server import LoopbackChatServer
from tests.support.pubmedvision_corpus import draw_image, save_image, write_corpus
from training.pubmedvision import cli
from training.pubmedvision.chat_client import retry_after_seconds
from training.pubmedvision.config import load_config
from training.pubmedvision.pipeline import Pipeline
from training.pubmedvision.prompts import ALIGNMENT_QUESTIONS, ReplyError, parse_reply
from training.pubmedvision.records import read_jsonl

ROOT = Path(__file__).resolve().parents[2]
N = 24
LOCAL_STAGES = ["ingest", "text", "image", "dedup"]
ALL_STAGES = [*LOCAL_STAGES, "reformat", "export"]


def write_config(root: Path, work_dir: str, server: LoopbackChatServer, **reformat: object) -> Path:
    settings = {"base_url": server.base_url, "model": "loopback", "api_key_env": "PUBMEDVISION_TEST_KEY",
                "concurrency": 4, "timeout_s": 0.6, "max_retries": 3, "backoff_initial_s": 0.02,
                "backoff_max_s": 0.1, "max_reasks": 2, "price_input_per_mtok": 2.5, "price_output_per_mtok": 10.0,
                **reformat}
    text = (f"input: records.jsonl\nwork_dir: {work_dir}\nnum_proc: 1\n"
            f"reformat: {json.dumps(settings)}\n")
    path = root / f"{work_dir}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """A corpus whose local stages already ran (into work-base): each test copies that work folder."""
    root = tmp_path_factory.mktemp("reformat")
    write_corpus(root, N - 1, seed=3)
    for name, seed in (("two-a.png", 9001), ("two-b.png", 9002)):
        save_image(draw_image(seed), root / "images" / name)
    with open(root / "records.jsonl", "a", encoding="utf-8") as f:  # and one record with two images
        f.write(json.dumps({"id": "two-images", "images": ["images/two-a.png", "images/two-b.png"],
                            "caption": "Axial CT and coronal MRI of the brain show a ring-enhancing lesion with "
                                       "surrounding edema, consistent with an abscess in a patient with fever."})
                + "\n")
    with LoopbackChatServer() as server:
        config = load_config(write_config(root, "work-base", server))
        results = Pipeline(config, progress=False, log=lambda _: None).run(LOCAL_STAGES)
    assert results["dedup"]["records_out"] == N, results
    return root


def copy_work(root: Path, name: str) -> None:
    shutil.copytree(root / "work-base", root / name)


def captions(root: Path) -> list[str]:
    return [r["caption"] for r in read_jsonl(root / "work-base" / "shard-00000-of-00001" / "dedup.jsonl")]


def check_exports(shard: Path, n: int) -> list[str]:
    """Both sets hold n rows with the PubMedVision fields; returns the ids in order."""
    order = [r["id"] for r in read_jsonl(shard / "dedup.jsonl")]
    images = {r["id"]: r["images"] for r in read_jsonl(shard / "dedup.jsonl")}
    ids = {}
    for name in ("alignment", "instruction"):
        rows = list(read_jsonl(shard / f"{name}.jsonl"))
        assert len(rows) == n
        ids[name] = [r["id"] for r in rows]
        assert len(set(ids[name])) == n
        assert ids[name] == [i for i in order if i in set(ids[name])]  # in the order of the records
        for row in rows:
            assert set(row) == {"id", "image", "body_part", "modality", "conversations"}
            assert row["image"] == images[row["id"]]
            human, gpt = row["conversations"]
            assert human["from"] == "human" and gpt["from"] == "gpt"
            assert IMAGE_PLACEHOLDER not in human["value"]  # as released: the loader puts one tag per image
            question = human["value"]
            assert question.strip() and gpt["value"].strip()
            assert isinstance(row["body_part"], str) and isinstance(row["modality"], str)
            if name == "alignment":
                assert question in ALIGNMENT_QUESTIONS
                assert gpt["value"].startswith("The image shows")
            else:
                assert question == "What is the most notable finding in this image?"
    assert ids["alignment"] == ids["instruction"]
    return ids["alignment"]


def test_misbehaving_server_gives_complete_output_and_reruns_cost_nothing(prepared: Path, monkeypatch) -> None:
    root = prepared
    copy_work(root, "work-e2e")
    texts = captions(root)
    faults = {
        texts[0]: ["429"],  # with Retry-After: 1
        texts[1]: ["500", "500"],
        texts[2]: ["notjson"],  # re-asked
        texts[3]: ["missing"],  # a reply without "answer": re-asked
        texts[4]: ["slow"],  # beyond the timeout: retried
        texts[5]: ["badbody"],  # HTTP 200 that is not JSON: retried
        texts[6]: ["notjson"] * 3,  # three bad replies: fails for this run
        texts[7]: ["500"] * 4,  # every retry fails: fails for this run
    }
    monkeypatch.setenv("PUBMEDVISION_TEST_KEY", "secret-key")
    with LoopbackChatServer(faults=faults, api_key="secret-key", slow_s=2.5) as server:
        config = load_config(write_config(root, "work-e2e", server, timeout_s=1.5))

        estimate = Pipeline(config, progress=False, log=lambda _: None).run(ALL_STAGES, dry_run=True)["estimate"]
        assert server.requests == 0
        assert estimate["to_send"] == N and estimate["cached"] == 0 and estimate["images_to_send"] == N + 1
        assert estimate["estimated_completion_tokens"] == N * 400
        expected_cost = (estimate["estimated_prompt_tokens"] * 2.5 + N * 400 * 10.0) / 1e6
        assert estimate["estimated_cost_usd"] == round(expected_cost, 2)
        assert estimate["estimated_prompt_tokens"] > N * 765  # text + 765 tokens an image

        started = time.perf_counter()
        first = Pipeline(config, progress=False, log=lambda _: None).run(ALL_STAGES)
        reformat = first["reformat"]
        assert reformat["records_in"] == N and reformat["records_out"] == N - 2
        assert reformat["rejected"] == {"api_failed": 1, "invalid_reply": 1}
        assert not reformat["complete"]
        statuses = reformat["responses_by_status"]
        assert statuses["429"] == 1 and statuses["500"] == 6 and statuses["timeout"] == 1
        assert reformat["retries"] == 1 + 2 + 1 + 1 + 3  # 429, 500×2, timeout, bad body, 500×3 (then gave up)
        assert reformat["reasks"] == 2 + 2  # notjson, missing, and twice for the reply that never gets right
        assert reformat["requests"] == server.requests == N + reformat["retries"] + reformat["reasks"]
        assert reformat["tokens_this_run"]["prompt"] > 0
        assert reformat["cost_usd_this_run"] == pytest.approx(
            (reformat["tokens_this_run"]["prompt"] * 2.5 + reformat["tokens_this_run"]["completion"] * 10) / 1e6)
        assert time.perf_counter() - started >= 1.0  # Retry-After was honoured
        # Unblinded: every request carried its images, the caption and the inline mentions.
        assert server.images_seen == server.requests + 1  # one image a request, two for the two-image record
        asked = "\n".join(server.texts)
        assert all(text in asked for text in texts)
        assert "Mentions in the article:\n- As shown in Figure" in asked
        shard = root / "work-e2e" / "shard-00000-of-00001"
        failed = {r["id"]: r["reason"] for r in read_jsonl(shard / "reformat.rejected.jsonl")}
        assert sorted(failed.values()) == ["api_failed", "invalid_reply"]
        assert first["export"]["records_out"] == N - 2
        check_exports(shard, N - 2)

        # The next run asks only for the two that failed (the server now answers them).
        before = server.requests
        second = Pipeline(config, progress=False, log=lambda _: None).run(ALL_STAGES)
        assert server.requests - before == 2
        assert second["reformat"]["complete"] and second["reformat"]["records_out"] == N
        assert second["reformat"]["resumed_rows"] == N - 2
        assert not list(read_jsonl(shard / "reformat.rejected.jsonl"))
        ids = check_exports(shard, N)

        # Up to date: nothing is asked again.
        third = Pipeline(config, progress=False, log=lambda _: None).run(ALL_STAGES)
        assert all(r["skipped"] for r in third.values()) and server.requests - before == 2

        # A fresh work folder sharing the reply cache: every reply comes from the cache, no request is sent.
        copy_work(root, "work-cached")
        cached_config = load_config(write_config(root, "work-cached", server,
                                                 cache=str(root / "work-e2e" / "reformat-cache.sqlite")))
        dry = Pipeline(cached_config, progress=False, log=lambda _: None).run(ALL_STAGES, dry_run=True)
        assert dry["estimate"]["cached"] == N and dry["estimate"]["estimated_cost_usd"] == 0
        fresh = Pipeline(cached_config, progress=False, log=lambda _: None).run(ALL_STAGES)
        assert server.requests - before == 2
        assert fresh["reformat"]["cache_hits"] == N and fresh["reformat"]["requests"] == 0
        assert fresh["reformat"]["cost_usd_this_run"] == 0
        cached_shard = root / "work-cached" / "shard-00000-of-00001"
        assert check_exports(cached_shard, N) == ids
        for name in ("alignment.jsonl", "instruction.jsonl"):
            assert (cached_shard / name).read_bytes() == (shard / name).read_bytes()


def test_killed_run_resumes_without_duplicates(prepared: Path) -> None:
    root = prepared
    copy_work(root, "work-kill")
    shard = root / "work-kill" / "shard-00000-of-00001"
    out = shard / "reformat.jsonl"
    with LoopbackChatServer(delay_s=0.15) as server:
        config_path = write_config(root, "work-kill", server, concurrency=2, timeout_s=5)
        command = [sys.executable, "-m", "training.pubmedvision", str(config_path), "--stage", "reformat"]
        log = open(root / "work-kill.log", "wb")  # noqa: SIM115 - closed below
        child = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and child.poll() is None:
            if out.exists() and out.read_bytes().count(b"\n") >= 6:
                break
            time.sleep(0.02)
        assert child.poll() is None, (root / "work-kill.log").read_text()
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        log.close()
        written = out.read_bytes().count(b"\n")
        assert 6 <= written < N
        assert not (shard / "reformat.stats.json").exists()
        with open(out, "a", encoding="utf-8") as f:  # as if the kill had cut a line in half
            f.write('{"id": "PMC00000')
        requests_before = server.requests

        config = load_config(config_path)
        results = Pipeline(config, progress=False, log=lambda _: None).run(["reformat", "export"])
        resumed = results["reformat"]
        assert resumed["complete"] and resumed["records_out"] == N
        assert resumed["resumed_rows"] == written
        # Records answered but not yet written when killed come from the cache; the rest are asked.
        assert resumed["requests"] + resumed["cache_hits"] == N - written
        assert resumed["requests"] == server.requests - requests_before
    rows = list(read_jsonl(out))
    assert len(rows) == N and len({r["id"] for r in rows}) == N
    check_exports(shard, N)


def test_refused_key_stops_the_run_with_a_clear_message(prepared: Path, capsys, monkeypatch) -> None:
    root = prepared
    copy_work(root, "work-401")
    monkeypatch.delenv("PUBMEDVISION_TEST_KEY", raising=False)
    with LoopbackChatServer(api_key="the-right-key") as server:
        config_path = write_config(root, "work-401", server)
        code = cli.main([str(config_path)])
    assert code == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert "answered 401 (check the API key)" in err
    assert server.requests <= 4  # one per worker at most: the run stopped at the first refusal
    assert not (root / "work-401" / "shard-00000-of-00001" / "reformat.stats.json").exists()


def test_server_that_is_down_stops_the_run(prepared: Path, capsys) -> None:
    root = prepared
    copy_work(root, "work-down")
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with LoopbackChatServer() as server:
        config_path = write_config(root, "work-down", server, concurrency=2, max_retries=1)
    text = config_path.read_text().replace(server.base_url, f"http://127.0.0.1:{port}/v1")
    config_path.write_text(text)
    code = cli.main([str(config_path)])
    assert code == cli.EXIT_FAILED
    assert f"http://127.0.0.1:{port}/v1 failed 4 requests in a row" in capsys.readouterr().err


def test_reply_parsing_accepts_fences_and_names_what_is_wrong() -> None:
    good = {"description": " An axial CT. ", "question": "Where is the lesion?", "answer": "In the liver.",
            "modality": "CT"}
    assert parse_reply("```json\n" + json.dumps(good) + "\n```")["description"] == "An axial CT."
    parsed = parse_reply("Here you go: " + json.dumps(good) + " Hope this helps.")
    assert parsed["body_part"] == "" and parsed["modality"] == "CT"
    with pytest.raises(ReplyError, match="not a JSON object"):
        parse_reply("I cannot see the image.")
    with pytest.raises(ReplyError, match="the fields question, answer are missing or empty"):
        parse_reply(json.dumps({"description": "x", "question": " "}))
    with pytest.raises(ReplyError, match="not an object"):
        parse_reply("[1, 2]")


def test_retry_after_accepts_seconds_and_dates() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= retry_after_seconds(when) <= 30
    assert retry_after_seconds("100000") == 600.0


def test_exports_feed_the_training_loader_without_conversion(prepared: Path, tiny_checkpoints) -> None:
    from training.data import IMAGE_TOKEN_INDEX, DatasetSpec, RecordStore, SupervisedDataset, load_tokenizer

    root = prepared
    copy_work(root, "work-train")
    with LoopbackChatServer() as server:
        config = load_config(write_config(root, "work-train", server))
        Pipeline(config, progress=False, log=lambda _: None).run(["reformat", "export"])
    shard = root / "work-train" / "shard-00000-of-00001"
    folder = tiny_checkpoints("qwen2", "original")
    eos = json.loads((folder / "config.json").read_text())["eos_token_id"]
    tokenizer = load_tokenizer(folder, "qwen2", eos)
    for name in ("alignment", "instruction"):
        store = RecordStore([DatasetSpec(json=str(shard / f"{name}.jsonl"), images=str(root))], max_images=None)
        dataset = SupervisedDataset(store, tokenizer, n_image_tokens=16, image_size=56, max_length=4096)
        assert len(dataset) == N
        for index in range(len(dataset)):
            row, _ = store[index]
            sample = dataset[index]
            assert int((sample["input_ids"] == IMAGE_TOKEN_INDEX).sum()) == 16 * len(row["image"])
            assert sample["pixel_values"].shape[0] == len(row["image"])
            assert int((sample["labels"] != -100).sum()) > 0  # the answer is learned


def test_token_and_cost_estimates_worked_out_by_hand() -> None:
    from training.pubmedvision.config import ReformatConfig
    from training.pubmedvision.costs import cost_usd, text_tokens

    prices = ReformatConfig(base_url="http://127.0.0.1:9/v1", model="m", price_input_per_mtok=2.5,
                            price_output_per_mtok=10.0)
    assert cost_usd(1_000_000, 200_000, prices) == pytest.approx(4.50)  # 1 M x $2.5/M + 0.2 M x $10/M
    assert cost_usd(0, 0, prices) == 0
    assert text_tokens("abcdefgh") == 2  # 8 Latin characters, 4 a token
    assert text_tokens("abcdefghi") == 3  # a started token counts
    assert text_tokens("肺炎abcd") == 3  # one token a Chinese character, then 4 Latin characters
