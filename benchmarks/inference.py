"""Our engine against plain llama-cpp-python on the same GGUF pair, thread count and prompt.

    python benchmarks/inference.py [--model DIR | --build-7b DIR [--family llava|qwen2.5-vl]] [--runs 5]
        [--tokens 64] [--image-tokens N[,N...]] [--json]

Baseline: llama-cpp-python's `Llava15ChatHandler` given the HuatuoGPT-Vision prompt format as the chat template
of `inference.prompt`, or for a Qwen2.5-VL model its `Qwen25VLChatHandler` (ChatML, the default system prompt);
its stock behaviour: every call clears the KV cache and re-encodes every image. Both get each image prepared by
the model's family (for Qwen2.5-VL at --image-tokens, default the model's budget; the images are large enough to
fill any budget) and the same context.
Measured, as medians over runs, each run with a new image, one engine loaded at a time (side by side, the one
loaded second decodes faster), the two alternating which goes first: time to
first token of a first question, of a follow-up question, and generation tokens/s (beside llama.cpp's own decode
time per token in each context, `llama_perf_context`: compute alone, without sampling or Python); of a first
question about another new image sent after the image was prepared (attached while the question is typed:
`prepared_first_ttft_s`, from Send; the baseline cannot prepare, so its figure is a plain first question); of the
follow-up asked again in a new worker process, as after a restart (`reopen_followup_ttft_s`: the conversation's
saved state is restored); and the engine's load time with the model files' hashes already recorded
(`engine_load_s`, and where it goes: `engine_load_parts_s`) beside the very first load that hashes them and the
baseline's load of the same two files (`baseline_load_s`). With several --image-tokens budgets, all that is
measured at the first, and a first question's time to first token at each of the others as well
(`first_ttft_by_image_tokens`).
Without --model it builds and converts a tiny model of --family; --build-7b builds a random-weight checkpoint with
the real 7B shapes (LLaVA: Qwen2-7B + CLIP ViT-L/14-336; Qwen2.5-VL: Qwen2.5-7B + its 32-layer vision tower) and
quantizes it to Q4_K_M (about 15-17 GB of checkpoint and as much again while converting), and prints tokens/s
beside the measured memory-bandwidth limit.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.engine_load import baseline_model, timed_engine_load  # noqa: E402 (the project's root first)

Q1 = "What does this image show? Describe the findings."
Q2 = "Is there any abnormality on the left side? 左侧有异常吗？"


# Larger than the largest image-token budget (1024 tokens = 0.8 megapixels), so that every budget is filled.
IMAGE_SIZE = (1200, 900)


def images(n: int, folder: Path, image_tokens: int | None) -> list[bytes]:
    """n new images, each prepared as the model's family prepares it (what both sides are given)."""
    import io

    from conversion.verify import sample_image
    from inference.engine import PreparedImage
    from inference.store.manifest import Manifest

    manifest = Manifest.read(folder)
    pngs = []
    for i in range(n):
        buffer = io.BytesIO()
        sample_image((IMAGE_SIZE[0] + 7 * i, IMAGE_SIZE[1] + 3 * i)).save(buffer, format="PNG")
        pngs.append(PreparedImage.for_model(buffer.getvalue(), manifest, image_tokens).png)
    return pngs


class Ours:
    """Our engine; one round = a first question about a new image and a follow-up, then a first
    question about another new image, prepared before it is sent."""

    def __init__(self, folder: Path, warm_png: bytes, tokens: int, threads: int, state_dir: Path,
                 image_tokens: int | None = None):
        from inference.engine import Engine, EngineSettings
        from inference.sampling import SamplingSettings

        self.greedy = SamplingSettings.greedy_decoding(tokens)
        settings = EngineSettings(n_threads=threads, image_max_tokens=image_tokens)
        self.open = lambda: Engine.from_folder(folder, settings, state_dir=state_dir)
        self.loads: list[dict] = []  # where each load's time went, the files' hashes already recorded
        first, self.first_load = self._timed_load()  # hashes the files and records them
        first.close()
        self.warm_png = warm_png
        self.engine = None
        self.asked: list[tuple] = []  # (first answer, its image), to be reopened after a "restart"

    def load(self) -> None:
        """Loaded (trusting the recorded hashes) and warmed up."""
        from inference.prompt import Turn

        self.engine, timings = self._timed_load()
        self.loads.append(timings)
        self.engine.ask([Turn("warm-up", 1)], [self.engine.prepare_image(self.warm_png)], self.greedy)

    def _timed_load(self) -> tuple:
        return timed_engine_load(self.open)

    def round(self, png: bytes, typed_png: bytes) -> tuple[float, float, list[float], float, float, list[float]]:
        from inference.engine import PreparedImage
        from inference.prompt import Turn

        image = PreparedImage.from_png(png)  # already prepared for the model (an unchanged image stays so)
        a1 = self.engine.ask([Turn(Q1, 1)], [image], self.greedy)
        a2 = self.engine.ask([a1.as_history(Q1, 1), Turn(Q2)], [image], self.greedy)
        answers = [a.timings for a in (a1, a2) if a.timings["generated_tokens"] > 8]
        rates = [t["tokens_per_s"] for t in answers]
        llama_ms = [t["llama_decode_ms"] / t["llama_decoded_tokens"] for t in answers if t["llama_decoded_tokens"]]
        self.asked.append((a1, image))
        # Attached, prepared while the question is typed (the typing is at least as long), then sent.
        typed = PreparedImage.from_png(typed_png)
        *_, prepared = self.engine.events(self.engine.prepare([Turn("", 1)], [typed]))
        a3 = self.engine.ask([Turn(Q1, 1)], [typed], self.greedy)
        assert a3.timings["images_encoded"] == a3.timings["images_decoded"] == 0
        return (a1.timings["ttft_s"], a2.timings["ttft_s"], rates, a3.timings["ttft_s"],
                prepared["timings"]["prepare_s"], llama_ms)

    def reopen(self) -> list[float]:
        """A new worker process (as after a restart) asked each round's follow-up again."""
        from inference.prompt import Turn

        ttfts = []
        with self.open() as engine:
            for a1, image in self.asked:
                again = engine.ask([a1.as_history(Q1, 1), Turn(Q2)], [image], self.greedy)
                assert again.timings["restored_tokens"] > 0 and again.timings["images_encoded"] == 0
                ttfts.append(again.timings["ttft_s"])
        return ttfts

    def close(self) -> None:
        self.engine.close()
        self.engine = None


class Baseline:
    """llama-cpp-python's Llava15ChatHandler with the HuatuoGPT-Vision format (Qwen25VLChatHandler for a
    Qwen2.5-VL model), loaded once, with the context our engine uses."""

    def __init__(self, folder: Path, warm_png: bytes, tokens: int, threads: int):
        import llama_cpp
        from llama_cpp.llama_chat_format import Llava15ChatHandler

        from inference import prompt

        class HuatuoFormatHandler(Llava15ChatHandler):
            # The handler finds each image by its URL in the rendered text and puts the image there.
            DEFAULT_SYSTEM_MESSAGE = None
            CHAT_FORMAT = prompt.chat_template(image="part['image_url']['url']")

        self.llama_cpp, self.tokens = llama_cpp, tokens
        self.llm, self.load_s = baseline_model(folder, threads, llava_handler=HuatuoFormatHandler)
        self._complete([self._user(warm_png, "warm-up")])

    def _complete(self, messages, tokens: int | None = None) -> tuple[str, float, float, int]:
        # Timed at each sampling step (a logits processor), the same moment our engine times: streamed chunks
        # are not tokens (llama-cpp-python holds back incomplete UTF-8, so a chunk can come much later).
        stamps: list[float] = []
        perf_at_first: list = []

        def stamp(_input_ids, scores):
            stamps.append(time.perf_counter())
            if len(stamps) == 1:  # the prompt is processed: from here llama.cpp decodes the answer's tokens
                perf_at_first.append(self._decode_perf())
            return scores

        start = time.perf_counter()
        reply = self.llm.create_chat_completion(  # greedy, as ours
            messages=messages, max_tokens=tokens or self.tokens, temperature=0.0, repeat_penalty=1.0, top_k=1,
            logits_processor=self.llama_cpp.LogitsProcessorList([stamp]))
        ttft = stamps[0] - start
        rate = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
        (ms0, n0), (ms1, n1) = perf_at_first[0], self._decode_perf()
        self.llama_ms_per_token = (ms1 - ms0) / (n1 - n0) if n1 > n0 else None
        return reply["choices"][0]["message"]["content"] or "", ttft, rate, len(stamps)

    def _decode_perf(self) -> tuple[float, int]:
        perf = self.llama_cpp.llama_perf_context(self.llm._ctx.ctx)
        return perf.t_eval_ms, perf.n_eval

    @staticmethod
    def _user(png: bytes, text: str) -> dict:
        url = "data:image/png;base64," + base64.b64encode(png).decode()
        return {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                            {"type": "text", "text": text}]}

    def round(self, png: bytes, typed_png: bytes) -> tuple[float, float, list[float], float, float, list[float]]:
        answer, ttft1, rate1, n1 = self._complete([self._user(png, Q1)])
        llama_ms1 = self.llama_ms_per_token
        _, ttft2, rate2, n2 = self._complete([self._user(png, Q1), {"role": "assistant", "content": answer},
                                              {"role": "user", "content": Q2}])
        llama_ms = [ms for ms, n in ((llama_ms1, n1), (self.llama_ms_per_token, n2)) if n > 8 and ms]
        _, ttft3, _, _ = self._complete([self._user(typed_png, Q1)])  # nothing can be prepared
        return ttft1, ttft2, [r for r, n in ((rate1, n1), (rate2, n2)) if n > 8], ttft3, 0.0, llama_ms

    def first_ttft(self, png: bytes) -> float:
        """Time to first token of a first question about this image (nothing more is generated)."""
        return self._complete([self._user(png, Q1)], tokens=1)[1]

    def close(self) -> None:
        self.llm.close()


def compare(folder: Path, pngs: list[bytes], tokens: int, threads: int, state_dir: Path,
            image_tokens: int | None = None, more_budgets: dict[int, list[bytes]] | None = None) -> dict:
    """One engine loaded at a time, rounds alternating which goes first, so that a drift of the machine (heat,
    other load) falls on both alike. pngs: two new images per round, then one for the warm-up. more_budgets:
    image-token budget -> images, one per run, for first questions at that budget."""
    # Only one model is in memory at a time: loaded side by side, whichever is loaded second decodes faster
    # (about 0.8x the time per token here, in llama.cpp's own timing, for either engine).
    ours = Ours(folder, pngs[-1], tokens, threads, state_dir, image_tokens)
    results = {"ours": ([], [], [], [], [], []), "base": ([], [], [], [], [], [])}
    baseline_loads = []

    def run_ours(i: int) -> tuple:
        ours.load()
        try:
            return ours.round(pngs[2 * i], pngs[2 * i + 1])
        finally:
            ours.close()

    def run_base(i: int) -> tuple:
        base = Baseline(folder, pngs[-1], tokens, threads)
        baseline_loads.append(base.load_s)
        try:
            return base.round(pngs[2 * i], pngs[2 * i + 1])
        finally:
            base.close()

    for i in range((len(pngs) - 1) // 2):
        order = (("ours", run_ours), ("base", run_base))
        for name, run in order if i % 2 == 0 else order[::-1]:
            for values, value in zip(results[name], run(i), strict=True):
                (values.extend if isinstance(value, list) else values.append)(value)
    firsts_by_budget = {budget: first_questions(folder, budget_pngs, tokens, threads, budget, pngs[-1], n % 2 == 1)
                        for n, (budget, budget_pngs) in enumerate((more_budgets or {}).items())}
    reopened = ours.reopen()
    median = lambda values: statistics.median(values) if values else 0.0  # noqa: E731
    (f1, u1, d1, p1, s1, m1), (f2, u2, d2, p2, _, m2) = results["ours"], results["base"]
    load_parts = {key: median([load[key] for load in ours.loads if key in load]) for key in ours.loads[0]}
    return {"first_ttft_s": median(f1), "cold_first_ttft_s": median(f1), "followup_ttft_s": median(u1),
            "decode_tok_s": median(d1), "prepared_first_ttft_s": median(p1), "typed_send_to_first_token_s": median(p1),
            "prepare_s": median(s1), "reopen_followup_ttft_s": median(reopened),
            "engine_load_s": load_parts["total_s"], "engine_load_parts_s": load_parts,
            "engine_first_load_s": ours.first_load["total_s"], "baseline_load_s": median(baseline_loads),
            "baseline_first_ttft_s": median(f2), "baseline_followup_ttft_s": median(u2),
            "baseline_decode_tok_s": median(d2), "baseline_prepared_first_ttft_s": median(p2),
            "decode_tok_s_runs": d1, "baseline_decode_tok_s_runs": d2,
            # llama.cpp's own decode time per token in each context (compute only, no sampling or Python)
            "llama_decode_ms_per_token": median(m1), "baseline_llama_decode_ms_per_token": median(m2),
            "first_ttft_runs": f1, "baseline_first_ttft_runs": f2,
            "more_budgets": firsts_by_budget}


def first_questions(folder: Path, pngs: list[bytes], tokens: int, threads: int, budget: int, warm_png: bytes,
                    baseline_first: bool) -> dict:
    """Time to first token of a first question about a new image at one image-token budget: our engine (loaded at
    that budget) and the baseline, each loaded alone, one image per run."""
    from inference.engine import Engine, EngineSettings, PreparedImage
    from inference.prompt import Turn
    from inference.sampling import SamplingSettings

    one_token = SamplingSettings.greedy_decoding(1)

    def ours() -> list[float]:
        with Engine.from_folder(folder, EngineSettings(n_threads=threads, image_max_tokens=budget)) as engine:
            engine.ask([Turn("warm-up")], [], one_token)
            answers = [engine.ask([Turn(Q1, 1)], [PreparedImage.from_png(png)], one_token) for png in pngs]
        assert all(answer.timings["images_encoded"] == 1 for answer in answers)
        return [answer.timings["ttft_s"] for answer in answers]

    def base() -> list[float]:
        baseline = Baseline(folder, warm_png, tokens, threads)
        try:
            return [baseline.first_ttft(png) for png in pngs]
        finally:
            baseline.close()

    ttfts = {"base": base(), "ours": ours()} if baseline_first else {"ours": ours(), "base": base()}
    return {"first_ttft_s": statistics.median(ttfts["ours"]),
            "baseline_first_ttft_s": statistics.median(ttfts["base"]),
            "first_ttft_ratio": statistics.median(ttfts["ours"]) / statistics.median(ttfts["base"]),
            "first_ttft_runs": ttfts["ours"], "baseline_first_ttft_runs": ttfts["base"]}


def image_tokens_used(png: bytes) -> int:
    """Image tokens of a Qwen2.5-VL image prepared to multiples of 28 pixels (one token per 28 x 28)."""
    import io

    from PIL import Image

    from inference.families import QWEN25VL_FACTOR

    width, height = Image.open(io.BytesIO(png)).size
    return (width // QWEN25VL_FACTOR) * (height // QWEN25VL_FACTOR)


def max_image_tokens(manifest, image_tokens: int | None) -> int:
    from inference import families

    return families.family(manifest.family).image_tokens(manifest, image_tokens)


def build_model(work: Path, seven_b: Path | None, family: str = "llava") -> Path:
    """A converted random-weight model of `family`: tiny (F16) under `work`, or with the real 7B shapes
    (Q4_K_M) built once in `seven_b` and reused from there."""
    from conversion.convert import convert
    from conversion.shapes import QWEN2_7B
    from tests.support.checkpoints import build_checkpoint, tiny_model
    from tests.support.qwen25vl_checkpoints import QWEN25VL_7B, TINY, build_qwen25vl_checkpoint

    if seven_b is None:
        if family == "llava":
            return tiny_model(work)
        src = build_qwen25vl_checkpoint(work / "tiny-qwen25vl", "flat", TINY)
        convert(src, work / "tiny-qwen25vl-F16", "F16")
        return work / "tiny-qwen25vl-F16"
    qwen = family == "qwen2.5-vl"
    out = seven_b / ("gguf-qwen2.5-vl-Q4_K_M" if qwen else "gguf-Q4_K_M")
    if not (out / "manifest.json").is_file():
        src = seven_b / ("HuatuoGPT-Vision-7B-Qwen2.5VL-random" if qwen else "HuatuoGPT-Vision-7B-random")
        if not (src / "model.safetensors.index.json").is_file():
            print(f"building a random-weight 7B-shaped {family} checkpoint (15-17 GB) …", file=sys.stderr)
            if qwen:
                build_qwen25vl_checkpoint(src, "flat", QWEN25VL_7B)
            else:
                build_checkpoint(src, "qwen2", "original", QWEN2_7B)
        print("converting to Q4_K_M …", file=sys.stderr)
        convert(src, out, "Q4_K_M")
    return out


def budgets(text: str) -> list[int]:
    return [int(n) for n in text.split(",")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a converted model folder (default: build a tiny one)")
    parser.add_argument("--build-7b", type=Path, metavar="DIR", help="build/reuse a random 7B-shaped model in DIR")
    parser.add_argument("--family", choices=("llava", "qwen2.5-vl"), default="llava",
                        help="the family of the model built without --model (default llava)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--image-tokens", type=budgets, default=[None], metavar="N[,N...]",
                        help="Qwen2.5-VL: the most image tokens per image (default: the model's training budget, "
                        "192); with several, everything is measured at the first and first questions at each")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from inference.hardware import memory_bandwidth_gb_s, physical_cores
    from inference.store.manifest import Manifest

    threads = args.threads or physical_cores()
    first_budget, *more = args.image_tokens
    with tempfile.TemporaryDirectory(prefix="huatuo-bench-") as tmp:
        folder = args.model or build_model(Path(tmp), args.build_7b, args.family)
        manifest = Manifest.read(folder)
        if more and manifest.family != "qwen2.5-vl":
            parser.error("only a Qwen2.5-VL model has an image-token budget; a LLaVA image is always its square")
        pngs = images(2 * args.runs + 1, folder, first_budget)
        more_pngs = {budget: images(args.runs, folder, budget) for budget in more}
        measured = compare(folder, pngs, args.tokens, threads, Path(tmp) / "states", first_budget, more_pngs)
    bandwidth = memory_bandwidth_gb_s()
    qwen = manifest.family == "qwen2.5-vl"
    by_budget = [{"image_tokens_max": max_image_tokens(manifest, first_budget),
                  "image_tokens": image_tokens_used(pngs[0]) if qwen else max_image_tokens(manifest, None),
                  "first_ttft_s": measured["first_ttft_s"], "baseline_first_ttft_s": measured["baseline_first_ttft_s"],
                  "first_ttft_ratio": measured["first_ttft_s"] / measured["baseline_first_ttft_s"],
                  "first_ttft_runs": measured["first_ttft_runs"],
                  "baseline_first_ttft_runs": measured["baseline_first_ttft_runs"]}]
    by_budget += [{"image_tokens_max": budget, "image_tokens": image_tokens_used(more_pngs[budget][0]), **firsts}
                  for budget, firsts in measured.pop("more_budgets").items()]
    ours_ms, base_ms = measured["llama_decode_ms_per_token"], measured["baseline_llama_decode_ms_per_token"]
    result = {
        "model": manifest.name, "family": manifest.family, "quantization": manifest.text.quantization,
        "threads": threads, "runs": args.runs, "tokens": args.tokens,
        "image_tokens": by_budget[0]["image_tokens"], "image_tokens_max": by_budget[0]["image_tokens_max"],
        **measured,
        "first_ttft_ratio": measured["first_ttft_s"] / measured["baseline_first_ttft_s"],
        "followup_ttft_ratio": measured["followup_ttft_s"] / measured["baseline_followup_ttft_s"],
        "prepared_first_ttft_ratio": measured["prepared_first_ttft_s"] / measured["baseline_prepared_first_ttft_s"],
        "decode_ratio": (measured["decode_tok_s"] / measured["baseline_decode_tok_s"]
                         if measured["baseline_decode_tok_s"] else None),
        # > 1: llama.cpp decodes a token faster in our context than in the baseline's
        "llama_decode_ratio": base_ms / ours_ms if ours_ms and base_ms else None,
        # the targets: typed send against a warm follow-up, a reopened follow-up against a cold first question
        "typed_send_to_warm_followup": measured["typed_send_to_first_token_s"] / measured["followup_ttft_s"],
        "reopen_followup_to_cold_first": measured["reopen_followup_ttft_s"] / measured["cold_first_ttft_s"],
        "first_ttft_by_image_tokens": by_budget,
        "memory_bandwidth_gb_s": bandwidth,
        "decode_limit_tok_s": bandwidth * 1e9 / manifest.text.size_bytes,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{manifest.name} {manifest.text.quantization}, {threads} threads, median of {args.runs} runs")
        print(f"{'':34}{'ours':>10}{'baseline':>10}{'ratio':>8}")
        for label, key in (("first question TTFT (s)", "first_ttft_s"), ("follow-up TTFT (s)", "followup_ttft_s"),
                           ("prepared first question TTFT (s)", "prepared_first_ttft_s"),
                           ("generation (tokens/s)", "decode_tok_s")):
            mine, theirs = result[key], result["baseline_" + key]
            print(f"{label:34}{mine:10.3f}{theirs:10.3f}{mine / theirs if theirs else float('nan'):8.2f}")
        print(f"preparing the image took {result['prepare_s']:.3f} s (while the question is typed); "
              f"follow-up after a restart {result['reopen_followup_ttft_s']:.3f} s; engine load "
              f"{result['engine_load_s']:.3f} s (first load, hashing the files: {result['engine_first_load_s']:.3f} s; "
              f"baseline {result['baseline_load_s']:.3f} s)")
        parts = result["engine_load_parts_s"]
        print("engine load: " + ", ".join(f"{key[:-2]} {value:.3f} s" for key, value in parts.items()))
        print(f"llama.cpp's own decode time per token: {ours_ms:.1f} ms ours, {base_ms:.1f} ms baseline")
        for row in by_budget:
            print(f"first question TTFT at {row['image_tokens']} image tokens: {row['first_ttft_s']:.3f} s ours, "
                  f"{row['baseline_first_ttft_s']:.3f} s baseline ({row['first_ttft_ratio']:.2f})")
        print(f"memory bandwidth {bandwidth:.1f} GB/s -> at most {result['decode_limit_tok_s']:.1f} tokens/s "
              f"for a {manifest.text.size_bytes / 1e9:.2f} GB model")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
