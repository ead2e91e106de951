"""Stage 4, reformat: a multimodal chat model sees each record's images with its caption and mentions and writes
a description, a question and an answer (see prompts.py).

Requests run ``concurrency`` at a time. Each finished record is appended to ``reformat.jsonl`` at once and its
reply stored in the reply cache, so a killed run resumes where it stopped and a rerun sends no request it already
paid for. Records whose requests fail for good are listed in ``reformat.rejected.jsonl`` and retried by the next
run; the stage counts as complete only when none failed.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import threading
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from training.pubmedvision import costs, prompts
from training.pubmedvision.chat_client import ChatClient, RequestFailed
from training.pubmedvision.config import ReformatConfig
from training.pubmedvision.records import (
    AtomicJsonl,
    count_records,
    dumps,
    read_jsonl,
    recover_appended_jsonl,
    write_json,
)
from training.pubmedvision.reply_cache import ReplyCache, cache_key
from training.pubmedvision.stage import SCHEMA_VERSION, Context, StageError, StageReport, read_report

# Formats chat APIs accept as they are; others (TIFF, BMP, …) are re-encoded as PNG.
WEB_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}


class RecordFailed(RuntimeError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def file_digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def image_data_url(path: str, max_side: int) -> str:
    """The image as a base64 data URL, downscaled to max_side when larger (fewer bytes and image tokens)."""
    data = Path(path).read_bytes()
    with Image.open(io.BytesIO(data)) as im:
        if im.format in WEB_FORMATS and max(im.size) <= max_side:
            mime = WEB_FORMATS[im.format]
        else:
            fmt = "JPEG" if im.format == "JPEG" else "PNG"
            im = im.convert("RGB" if im.mode not in ("L", "RGB") else im.mode)
            im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            im.save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
            data, mime = buf.getvalue(), WEB_FORMATS[fmt]
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def request_params(settings: ReformatConfig) -> dict:
    params: dict = {"temperature": settings.temperature, "max_tokens": settings.max_tokens}
    if settings.json_mode:
        params["response_format"] = {"type": "json_object"}
    return params


@dataclass
class Planned:
    """What is asked for one record: enough to look it up in the cache without reading image pixels."""

    record: dict
    key: str
    role: str
    role_text: str
    alignment_question: str
    user_text: str


def plan(record: dict, settings: ReformatConfig) -> Planned:
    role, role_text = prompts.role_scenario(record["id"], settings.seed)
    text = prompts.user_text(record["caption"], record["mentions"], len(record["images"]), role_text)
    try:
        digests = [file_digest(p) for p in record["image_files"]]
    except OSError as exc:
        raise RecordFailed("image_unreadable", f"cannot read {exc.filename}: {exc.strerror}") from exc
    # The image settings change the bytes sent, so they are part of the key.
    key = cache_key(settings.model, {**request_params(settings), "detail": settings.image_detail,
                                     "max_image_side": settings.max_image_side},
                    prompts.PROMPT_VERSION, [prompts.SYSTEM_PROMPT, text], digests)
    return Planned(record, key, role, role_text, prompts.alignment_question(record["id"], settings.seed), text)


class Reformatter:
    """Turns one record into one output row: from the cache, or by asking the model (re-asking on bad replies)."""

    def __init__(self, settings: ReformatConfig, cache: ReplyCache, client: ChatClient) -> None:
        self.settings = settings
        self.cache = cache
        self.client = client
        self.counts: Counter = Counter()
        self._lock = threading.Lock()

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counts[name] += n

    def row(self, record: dict) -> dict:
        planned = plan(record, self.settings)
        hit = self.cache.get(planned.key)
        if hit is not None:
            self._count("cache_hits")
            reply, prompt_tokens, completion_tokens = hit
            return self._row(planned, reply, prompt_tokens, completion_tokens, cached=True)
        try:
            urls = [image_data_url(p, self.settings.max_image_side) for p in record["image_files"]]
        except (OSError, ValueError) as exc:
            raise RecordFailed("image_unreadable", str(exc)) from exc
        messages = prompts.messages(record["caption"], record["mentions"], urls, planned.role_text,
                                    self.settings.image_detail)
        prompt_tokens = completion_tokens = 0
        for ask in range(self.settings.max_reasks + 1):
            try:
                completion = self.client.complete(messages)
            except RequestFailed as exc:
                raise RecordFailed("api_failed", str(exc)) from exc
            prompt_tokens += completion.prompt_tokens
            completion_tokens += completion.completion_tokens
            try:
                reply = prompts.parse_reply(completion.text)
            except prompts.ReplyError as exc:
                if ask == self.settings.max_reasks:
                    self._count("tokens_wasted_prompt", prompt_tokens)
                    self._count("tokens_wasted_completion", completion_tokens)
                    raise RecordFailed("invalid_reply", f"{exc} (after {ask + 1} replies)") from exc
                self._count("reasks")
                messages = [*messages, {"role": "assistant", "content": completion.text},
                            {"role": "user", "content": prompts.fix_request(str(exc))}]
                continue
            self.cache.put(planned.key, reply, prompt_tokens, completion_tokens)
            self._count("tokens_prompt", prompt_tokens)
            self._count("tokens_completion", completion_tokens)
            return self._row(planned, reply, prompt_tokens, completion_tokens, cached=False)
        raise AssertionError("unreachable")

    @staticmethod
    def _row(planned: Planned, reply: dict, prompt_tokens: int, completion_tokens: int, cached: bool) -> dict:
        record = planned.record
        return {"id": record["id"], "images": record["images"], "modality": reply["modality"],
                "body_part": reply["body_part"], "description": reply["description"],
                "alignment_question": planned.alignment_question, "role": planned.role,
                "question": reply["question"], "answer": reply["answer"], "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens, "cached": cached}


def api_key(settings: ReformatConfig) -> str | None:
    if settings.api_key:
        return settings.api_key
    return os.environ.get(settings.api_key_env) if settings.api_key_env else None


def _resume(ctx: Context, fingerprint: str) -> list[tuple[str, int, int]]:
    """(id, prompt tokens, completion tokens) of the rows that an interrupted run of the same stage settings
    already wrote; output of other settings is discarded."""
    out = ctx.paths.output("reformat")
    state = ctx.paths.dir / "reformat.state.json"
    previous = read_report(state)
    if previous is not None and previous.get("fingerprint") == fingerprint:
        return recover_appended_jsonl(out, lambda r: (r["id"], r["prompt_tokens"], r["completion_tokens"]))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(b"")
    write_json(state, {"fingerprint": fingerprint, "schema": SCHEMA_VERSION})
    return []


def run(ctx: Context, report: StageReport) -> None:
    settings = _settings(ctx)
    paths = ctx.paths
    source = paths.output("dedup")
    done = _resume(ctx, report.fingerprint)
    done_ids = {record_id for record_id, _, _ in done}
    total_prompt = sum(p for _, p, _ in done)
    total_completion = sum(c for _, _, c in done)
    report.records_in = count_records(source)
    failures: list[dict] = []
    written = len(done)
    cache = ReplyCache(ctx.config.cache_path)
    client = ChatClient(settings.base_url, settings.model, api_key(settings), timeout_s=settings.timeout_s,
                        max_retries=settings.max_retries, backoff_initial_s=settings.backoff_initial_s,
                        backoff_max_s=settings.backoff_max_s, max_connections=settings.concurrency,
                        params=request_params(settings))
    worker = Reformatter(settings, cache, client)
    bar = tqdm(total=report.records_in, initial=len(done), desc="reformat", unit=" records",
               disable=not ctx.progress)
    pool = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="reformat")
    try:
        with open(paths.output("reformat"), "a", encoding="utf-8") as out:
            pending: dict[Future, dict] = {}
            # A server that is down or refuses everything fails every record after all its retries: stop early.
            in_a_row, give_up_after = 0, 2 * settings.concurrency
            queue = (r for r in read_jsonl(source) if r["id"] not in done_ids)
            # A bounded window of submitted records: memory stays flat however many records there are.
            for record in islice(queue, 2 * settings.concurrency):
                pending[pool.submit(worker.row, record)] = record
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    record = pending.pop(future)
                    try:
                        row = future.result()
                    except RecordFailed as exc:
                        failures.append({"id": record["id"], "reason": exc.reason, "detail": str(exc)})
                        in_a_row = in_a_row + 1 if exc.reason == "api_failed" else 0
                        if in_a_row >= give_up_after:
                            raise StageError(f"{settings.base_url} failed {in_a_row} requests in a row (last: {exc}); "
                                             "stopping. Finished records are kept: run again when the server "
                                             "works") from exc
                    else:
                        in_a_row = 0
                        out.write(dumps(row) + "\n")
                        out.flush()  # a kill loses nothing that was written
                        written += 1
                        total_prompt += row["prompt_tokens"]
                        total_completion += row["completion_tokens"]
                    bar.update()
                    for nxt in islice(queue, 1):
                        pending[pool.submit(worker.row, nxt)] = nxt
        pool.shutdown(wait=True)
    except BaseException:
        # Ctrl-C, a refused key or a bug: stop sending; what was written stays, and the next run resumes.
        client.cancel()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        bar.close()
        client.close()
        cache.close()
    with AtomicJsonl(paths.rejected("reformat")) as rejected:
        rejected.write_all(failures)
    report.records_out = written
    report.rejected.update(Counter(f["reason"] for f in failures))
    report.complete = not failures
    counts = worker.counts
    run_prompt = counts["tokens_prompt"] + counts["tokens_wasted_prompt"]
    run_completion = counts["tokens_completion"] + counts["tokens_wasted_completion"]
    report.extra.update({
        "model": settings.model,
        "requests": client.stats.requests,
        "responses_by_status": dict(sorted(client.stats.by_status.items())),
        "retries": client.stats.retries,
        "reasks": counts["reasks"],
        "cache_hits": counts["cache_hits"],
        "resumed_rows": len(done),
        "tokens_this_run": {"prompt": run_prompt, "completion": run_completion},
        "cost_usd_this_run": round(costs.cost_usd(run_prompt, run_completion, settings), 6),
        "tokens_output": {"prompt": total_prompt, "completion": total_completion},
        "cost_usd_output": round(costs.cost_usd(total_prompt, total_completion, settings), 6),
    })


def estimate(ctx: Context) -> dict:
    """What running the stage would cost: records already in the cache cost nothing; the others are estimated
    from the length of their prompt text, ``image_tokens`` per image and ``expected_output_tokens``."""
    settings = _settings(ctx)
    source = ctx.paths.output("dedup")
    records = count_records(source)
    cache = ReplyCache(ctx.config.cache_path)
    system_tokens = costs.text_tokens(prompts.SYSTEM_PROMPT) + costs.MESSAGE_OVERHEAD_TOKENS
    cached = unreadable = prompt_tokens = images = 0
    try:
        for record in tqdm(read_jsonl(source), total=records, desc="estimating", unit=" records",
                           disable=not ctx.progress):
            try:
                planned = plan(record, settings)
            except RecordFailed:
                unreadable += 1
                continue
            if cache.contains(planned.key):
                cached += 1
                continue
            images += len(record["images"])
            prompt_tokens += (system_tokens + costs.text_tokens(planned.user_text) + costs.MESSAGE_OVERHEAD_TOKENS
                              + settings.image_tokens * len(record["images"]))
    finally:
        cache.close()
    to_send = records - cached - unreadable
    completion_tokens = to_send * settings.expected_output_tokens
    return {
        "model": settings.model,
        "records": records,
        "cached": cached,
        "unreadable": unreadable,
        "to_send": to_send,
        "images_to_send": images,
        "estimated_prompt_tokens": prompt_tokens,
        "estimated_completion_tokens": completion_tokens,
        "estimated_cost_usd": round(costs.cost_usd(prompt_tokens, completion_tokens, settings), 2),
        "prices_per_million_tokens": {"input": settings.price_input_per_mtok,
                                      "output": settings.price_output_per_mtok},
        "note": "re-asks after malformed replies and retries are not included",
    }


def _settings(ctx: Context) -> ReformatConfig:
    if ctx.config.reformat is None:
        raise StageError(f"{ctx.config.source or 'the configuration'} has no 'reformat' section "
                         "(base_url, model, …): the reformat stage needs a chat model server")
    return ctx.config.reformat
