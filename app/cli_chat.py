"""`huatuo ask` and `huatuo chat`: questions about images to a local model, streamed to the terminal."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from app.finish import finish_phrase
from app.imaging import ImageOpenError, open_image
from inference.engine import Answer, Engine, EngineError, EngineSettings
from inference.hardware import assess
from inference.prompt import Turn
from inference.sampling import OFFICIAL, SamplingSettings
from inference.store.gguf_check import ModelFileError, check_folder


def add_ask_arguments(parser) -> None:
    _add_arguments(parser, interactive=False)


def add_chat_arguments(parser) -> None:
    _add_arguments(parser, interactive=True)


def _add_arguments(parser, interactive: bool) -> None:
    parser.add_argument("--model", required=True, type=Path, help="converted model folder (with manifest.json)")
    parser.add_argument("--image", action="append", default=[], type=Path,
                        help="PNG, JPEG or DICOM file (repeat for several)")
    if not interactive:
        parser.add_argument("question")
    parser.add_argument("--json", action="store_true", help="print JSON with the answer and timings")
    parser.add_argument("--greedy", action="store_true", help="deterministic (greedy) decoding")
    parser.add_argument("--max-tokens", type=int, default=OFFICIAL.max_new_tokens)
    parser.add_argument("--temperature", type=float, default=OFFICIAL.temperature)
    parser.add_argument("--threads", type=int, help="default: physical cores")
    parser.add_argument("--ctx", type=int, help="context size (default: the model's, 4096)")
    parser.add_argument("--gpu-layers", type=int, default=0)


def _engine(args) -> Engine:
    pair = check_folder(args.model)
    fit = assess(pair, args.ctx)
    if fit.verdict != "fits":
        print(f"warning: {fit.verdict}: {'; '.join(fit.reasons)}", file=sys.stderr)
    engine = Engine(pair, EngineSettings(n_ctx=args.ctx, n_threads=args.threads, n_gpu_layers=args.gpu_layers))
    note = engine.start().get("gpu_note")
    if note:
        print(f"note: {note}", file=sys.stderr)
    return engine


def _sampling(args) -> SamplingSettings:
    if args.greedy:
        return SamplingSettings.greedy_decoding(args.max_tokens)
    return SamplingSettings(temperature=args.temperature, max_new_tokens=args.max_tokens)


def load_image(engine: Engine, path: Path):
    """An image file or a DICOM file (rendered with its own window) as the model will see it."""
    return engine.prepare_image(open_image(path))


def _stream(engine, turns, images, sampling, quiet: bool) -> Answer:
    def show(piece: str) -> None:
        if not quiet:
            sys.stdout.write(piece)
            sys.stdout.flush()

    answer = engine.ask(turns, images, sampling, on_text=show)
    if not quiet:
        phrase = finish_phrase(answer.finish)
        print(f" [{phrase}]" if phrase else "")
    return answer


def _report(answer: Answer, args) -> str:
    t = answer.timings
    return json.dumps({"answer": answer.text, "finish": answer.finish, "model": str(args.model),
                       "ttft_s": t.get("ttft_s"), "tokens_per_s": t.get("tokens_per_s"),
                       "generated_tokens": t.get("generated_tokens"), "timings": t}, ensure_ascii=False)


def ask(args) -> int:
    try:
        with _engine(args) as engine:
            images = [load_image(engine, p) for p in args.image]
            answer = _stream(engine, [Turn(args.question, len(images))], images, _sampling(args), args.json)
    except (ModelFileError, EngineError, ImageOpenError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\n[stopped]", file=sys.stderr)
        return 130
    if args.json:
        print(_report(answer, args))
    return 0


def _prepare(engine: Engine, turns: list[Turn], images: list, pending: list) -> None:
    """Have the model read the conversation and the attached images while the question is typed: the question
    then costs only its own tokens. A problem (too many images) is left for the question to report."""
    try:
        engine.prepare([*turns, Turn("", len(pending))], images + pending)
    except EngineError:
        pass


CHAT_HELP = "commands: /image PATH (attach to the next question), /regen, /edit NEW QUESTION, /new, /quit"


def chat(args) -> int:
    try:
        engine = _engine(args)
    except (ModelFileError, EngineError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    turns: list[Turn] = []
    images = []
    pending = []
    try:
        for path in args.image:
            pending.append(load_image(engine, path))
        if pending:
            _prepare(engine, [], [], pending)
        print(CHAT_HELP, file=sys.stderr)
        prompt_text = "> " if sys.stdin.isatty() else ""  # piped input gets clean output (JSON lines)
        while True:
            try:
                line = input(prompt_text).strip()
            except EOFError:
                break
            if not line:
                continue
            if line in ("/quit", "/exit"):
                break
            if line == "/new":
                turns, images, pending = [], [], []
                continue
            if line.startswith("/image "):
                try:
                    pending.append(load_image(engine, Path(line[7:].strip())))
                except (ImageOpenError, OSError) as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    continue
                _prepare(engine, turns, images, pending)
                print(f"[{len(pending)} image(s) attached to the next question]", file=sys.stderr)
                continue
            before = list(turns), list(images), list(pending)  # restored if this question fails
            if line == "/regen":
                if not turns:
                    continue
                turns[-1] = Turn(turns[-1].question, turns[-1].n_images)
            elif line.startswith("/edit "):
                if not turns:
                    continue
                turns[-1] = Turn(line[6:].strip(), turns[-1].n_images)
            else:
                turns.append(Turn(line, len(pending)))
                images.extend(pending)
                pending = []
            try:
                answer = _stream(engine, turns, images, _sampling(args), args.json)
            except KeyboardInterrupt:
                engine.cancel()
                print("\n[stopped]", file=sys.stderr)
                turns, images, pending = before
                continue
            except EngineError as exc:
                print(f"error: {exc}", file=sys.stderr)
                turns, images, pending = before
                continue
            turns[-1] = answer.as_history(turns[-1].question, turns[-1].n_images)
            if args.json:
                print(_report(answer, args))
    except (ModelFileError, EngineError, ImageOpenError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.close()
    return 0
