"""Our engine against plain llama-cpp-python on the same GGUF pair, thread count and prompt.

    python benchmarks/inference.py [--model DIR | --build-7b DIR] [--runs 5] [--tokens 64] [--image-tokens N] [--json]

Baseline: llama-cpp-python's `Llava15ChatHandler` given the HuatuoGPT-Vision prompt format as the chat template
of `inference.prompt`, or for a Qwen2.5-VL model its `Qwen25VLChatHandler` (ChatML, the default system prompt);
its stock behaviour: every call clears the KV cache and re-encodes every image. Both get each image prepared by
the model's family (for Qwen2.5-VL at --image-tokens, default the model's budget) and the same context.
Measured, as medians over runs, each run with a new image: time to first token of a first question, of a
follow-up question, and generation tokens/s; of a first question about another new image sent after the image was
prepared (attached while the question is typed: `prepared_first_ttft_s`, from Send; the baseline cannot prepare, so
its figure is a plain first question); of the follow-up asked again in a new worker process, as after a restart
(`reopen_followup_ttft_s`: the conversation's saved state is restored); and the engine's load time with the model
files' hashes already recorded (`engine_load_s`) beside the very first load that hashes them.
Without --model it builds and converts a tiny model; --build-7b builds a random-weight checkpoint with the real
Qwen2-7B + CLIP ViT-L/14-336 shapes and quantizes it to Q4_K_M (about 15 GB of disk while converting), and prints
tokens/s beside the measured memory-bandwidth limit.
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

Q1 = "What does this image show? Describe the findings."
Q2 = "Is there any abnormality on the left side? 左侧有异常吗？"


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
        sample_image((300 + 7 * i, 220 + 3 * i)).save(buffer, format="PNG")
        pngs.append(PreparedImage.for_model(buffer.getvalue(), manifest, image_tokens).png)
    return pngs


class Ours:
    """Our engine, loaded once; one round = a first question about a new image and a follow-up, then a first
    question about another new image, prepared before it is sent."""

    def __init__(self, folder: Path, warm_png: bytes, tokens: int, threads: int, state_dir: Path,
                 image_tokens: int | None = None):
        from inference.engine import Engine, EngineSettings
        from inference.prompt import Turn
        from inference.sampling import SamplingSettings

        self.greedy = SamplingSettings.greedy_decoding(tokens)
        settings = EngineSettings(n_threads=threads, image_max_tokens=image_tokens)
        self.open = lambda: Engine.from_folder(folder, settings, state_dir=state_dir)
        first, self.first_load_s = self._timed_load()  # hashes the files and records them
        first.close()
        self.engine, self.load_s = self._timed_load()  # trusts the recorded hashes
        self.engine.ask([Turn("warm-up", 1)], [self.engine.prepare_image(warm_png)], self.greedy)
        self.asked: list[tuple] = []  # (first answer, its image), to be reopened after a "restart"

    def _timed_load(self) -> tuple:
        """The engine, ready to answer, and how long that took from the model folder."""
        start = time.perf_counter()
        engine = self.open()
        engine.start()
        return engine, time.perf_counter() - start

    def round(self, png: bytes, typed_png: bytes) -> tuple[float, float, list[float], float, float]:
        from inference.engine import PreparedImage
        from inference.prompt import Turn

        image = PreparedImage.from_png(png)  # already prepared for the model (an unchanged image stays so)
        a1 = self.engine.ask([Turn(Q1, 1)], [image], self.greedy)
        a2 = self.engine.ask([a1.as_history(Q1, 1), Turn(Q2)], [image], self.greedy)
        rates = [a.timings["tokens_per_s"] for a in (a1, a2) if a.timings["generated_tokens"] > 8]
        self.asked.append((a1, image))
        # Attached, prepared while the question is typed (the typing is at least as long), then sent.
        typed = PreparedImage.from_png(typed_png)
        *_, prepared = self.engine.events(self.engine.prepare([Turn("", 1)], [typed]))
        a3 = self.engine.ask([Turn(Q1, 1)], [typed], self.greedy)
        assert a3.timings["images_encoded"] == a3.timings["images_decoded"] == 0
        return a1.timings["ttft_s"], a2.timings["ttft_s"], rates, a3.timings["ttft_s"], prepared["timings"]["prepare_s"]

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


class Baseline:
    """llama-cpp-python's Llava15ChatHandler with the HuatuoGPT-Vision format (Qwen25VLChatHandler for a
    Qwen2.5-VL model), loaded once, with the context our engine uses."""

    def __init__(self, folder: Path, warm_png: bytes, tokens: int, threads: int):
        import llama_cpp
        from llama_cpp.llama_chat_format import Llava15ChatHandler, Qwen25VLChatHandler

        from inference import families, prompt
        from inference.native import quiet_native_logs
        from inference.store.manifest import Manifest

        class HuatuoFormatHandler(Llava15ChatHandler):
            # The handler finds each image by its URL in the rendered text and puts the image there.
            DEFAULT_SYSTEM_MESSAGE = None
            CHAT_FORMAT = prompt.chat_template(image="part['image_url']['url']")

        quiet_native_logs()
        manifest = Manifest.read(folder)
        text_path, mmproj_path = manifest.paths(folder)
        family = families.family(manifest.family)
        handler_class = Qwen25VLChatHandler if family is families.QWEN25VL else HuatuoFormatHandler
        handler = handler_class(clip_model_path=str(mmproj_path), verbose=False)
        self.llama_cpp, self.tokens = llama_cpp, tokens
        n_ctx = family.default_context(manifest.context_length)
        self.llm = llama_cpp.Llama(str(text_path), chat_handler=handler, n_ctx=n_ctx,
                                   n_threads=threads, n_threads_batch=threads, n_batch=512, verbose=False)
        self._complete([self._user(warm_png, "warm-up")])

    def _complete(self, messages) -> tuple[str, float, float, int]:
        # Timed at each sampling step (a logits processor), the same moment our engine times: streamed chunks
        # are not tokens (llama-cpp-python holds back incomplete UTF-8, so a chunk can come much later).
        stamps: list[float] = []

        def stamp(_input_ids, scores):
            stamps.append(time.perf_counter())
            return scores

        start = time.perf_counter()
        reply = self.llm.create_chat_completion(  # greedy, as ours
            messages=messages, max_tokens=self.tokens, temperature=0.0, repeat_penalty=1.0, top_k=1,
            logits_processor=self.llama_cpp.LogitsProcessorList([stamp]))
        ttft = stamps[0] - start
        rate = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
        return reply["choices"][0]["message"]["content"] or "", ttft, rate, len(stamps)

    @staticmethod
    def _user(png: bytes, text: str) -> dict:
        url = "data:image/png;base64," + base64.b64encode(png).decode()
        return {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                            {"type": "text", "text": text}]}

    def round(self, png: bytes, typed_png: bytes) -> tuple[float, float, list[float], float, float]:
        answer, ttft1, rate1, n1 = self._complete([self._user(png, Q1)])
        _, ttft2, rate2, n2 = self._complete([self._user(png, Q1), {"role": "assistant", "content": answer},
                                              {"role": "user", "content": Q2}])
        _, ttft3, _, _ = self._complete([self._user(typed_png, Q1)])  # nothing can be prepared
        return ttft1, ttft2, [r for r, n in ((rate1, n1), (rate2, n2)) if n > 8], ttft3, 0.0

    def close(self) -> None:
        self.llm.close()


def compare(folder: Path, pngs: list[bytes], tokens: int, threads: int, state_dir: Path,
            image_tokens: int | None = None) -> dict:
    """Both loaded side by side (the GGUF's pages are shared), rounds alternating which goes first, so that a
    drift of the machine (heat, other load) falls on both alike. pngs: two new images per round, then one for
    the warm-up."""
    ours = Ours(folder, pngs[-1], tokens, threads, state_dir, image_tokens)
    base = Baseline(folder, pngs[-1], tokens, threads)
    results = {"ours": ([], [], [], [], []), "base": ([], [], [], [], [])}
    try:
        for i in range((len(pngs) - 1) // 2):
            order = (("ours", ours), ("base", base)) if i % 2 == 0 else (("base", base), ("ours", ours))
            for name, runner in order:
                first, follow, rates, prepared, prepare_s = runner.round(pngs[2 * i], pngs[2 * i + 1])
                firsts, follows, all_rates, prepareds, prepare_times = results[name]
                firsts.append(first)
                follows.append(follow)
                all_rates.extend(rates)
                prepareds.append(prepared)
                prepare_times.append(prepare_s)
    finally:
        base.close()
        ours.close()
    reopened = ours.reopen()
    median = lambda values: statistics.median(values) if values else 0.0  # noqa: E731
    (f1, u1, d1, p1, s1), (f2, u2, d2, p2, _) = results["ours"], results["base"]
    return {"first_ttft_s": median(f1), "cold_first_ttft_s": median(f1), "followup_ttft_s": median(u1),
            "decode_tok_s": median(d1), "prepared_first_ttft_s": median(p1), "typed_send_to_first_token_s": median(p1),
            "prepare_s": median(s1), "reopen_followup_ttft_s": median(reopened),
            "engine_load_s": ours.load_s, "engine_first_load_s": ours.first_load_s,
            "baseline_first_ttft_s": median(f2), "baseline_followup_ttft_s": median(u2),
            "baseline_decode_tok_s": median(d2), "baseline_prepared_first_ttft_s": median(p2),
            "decode_tok_s_runs": d1, "baseline_decode_tok_s_runs": d2}


def max_image_tokens(manifest, image_tokens: int | None) -> int:
    from inference import families

    return families.family(manifest.family).image_tokens(manifest, image_tokens)


def build_model(work: Path, seven_b: Path | None) -> Path:
    from conversion.convert import convert
    from conversion.shapes import QWEN2_7B
    from tests.support.checkpoints import build_checkpoint, tiny_model

    if seven_b is not None:
        out = seven_b / "gguf-Q4_K_M"
        if not (out / "manifest.json").is_file():
            src = seven_b / "HuatuoGPT-Vision-7B-random"
            if not (src / "config.json").is_file():
                print("building a random-weight 7B checkpoint (15 GB) …", file=sys.stderr)
                build_checkpoint(src, "qwen2", "original", QWEN2_7B)
            print("converting to Q4_K_M …", file=sys.stderr)
            convert(src, out, "Q4_K_M")
        return out
    return tiny_model(work)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a converted model folder (default: build a tiny one)")
    parser.add_argument("--build-7b", type=Path, metavar="DIR", help="build/reuse a random 7B-shaped model in DIR")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--image-tokens", type=int, help="Qwen2.5-VL: the most image tokens per image "
                        "(default: the model's training budget, 192)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from inference.hardware import memory_bandwidth_gb_s, physical_cores
    from inference.store.manifest import Manifest

    threads = args.threads or physical_cores()
    with tempfile.TemporaryDirectory(prefix="huatuo-bench-") as tmp:
        folder = args.model or build_model(Path(tmp), args.build_7b)
        manifest = Manifest.read(folder)
        pngs = images(2 * args.runs + 1, folder, args.image_tokens)
        measured = compare(folder, pngs, args.tokens, threads, Path(tmp) / "states", args.image_tokens)
    bandwidth = memory_bandwidth_gb_s()
    result = {
        "model": manifest.name, "family": manifest.family, "quantization": manifest.text.quantization,
        "threads": threads, "runs": args.runs, "image_tokens": max_image_tokens(manifest, args.image_tokens),
        **measured,
        "first_ttft_ratio": measured["first_ttft_s"] / measured["baseline_first_ttft_s"],
        "followup_ttft_ratio": measured["followup_ttft_s"] / measured["baseline_followup_ttft_s"],
        "prepared_first_ttft_ratio": measured["prepared_first_ttft_s"] / measured["baseline_prepared_first_ttft_s"],
        "decode_ratio": (measured["decode_tok_s"] / measured["baseline_decode_tok_s"]
                         if measured["baseline_decode_tok_s"] else None),
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
              f"{result['engine_load_s']:.3f} s (first load, hashing the files: {result['engine_first_load_s']:.3f} s)")
        print(f"memory bandwidth {bandwidth:.1f} GB/s -> at most {result['decode_limit_tok_s']:.1f} tokens/s "
              f"for a {manifest.text.size_bytes / 1e9:.2f} GB model")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
