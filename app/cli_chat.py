"""`huatuo ask` and `huatuo chat`: questions about images to a local model, streamed to the terminal.

Like the app, they save what the model has read of a conversation (its images, the turns before the question) in
the private data folder, within the disk limit set in Settings (kv_states.py): asking again about the same images
after a restart restores that instead of recomputing it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from app.finish import finish_phrase
from app.imaging import ImageOpenError, open_image
from app.paths import states_dir
from app.settings import Settings
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
    limit = Settings.load().state_limit_bytes  # 0: the user wants no states saved
    engine = Engine(pair, EngineSettings(n_ctx=args.ctx, n_threads=args.threads, n_gpu_layers=args.gpu_layers),
                    state_dir=states_dir() if limit > 0 else None, state_limit_bytes=limit)
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


def _report(answer: Answer, args, prepared: dict | None = None) -> str:
    t = answer.timings
    report = {"answer": answer.text, "finish": answer.finish, "model": str(args.model),
              "ttft_s": t.get("ttft_s"), "tokens_per_s": t.get("tokens_per_s"),
              "generated_tokens": t.get("generated_tokens"), "timings": t}
    if prepared is not None:  # what was read before the question: encoded, or restored from a saved state
        report["prepared"] = prepared
    return json.dumps(report, ensure_ascii=False)


def ask(args) -> int:
    try:
        with _engine(args) as engine:
            images = [load_image(engine, p) for p in args.image]
            # The images are read on their own first, so that what the model made of them is saved: asking about
            # the same images again (another question, or the same) restores it instead of recomputing it.
            prepared = _prepared(engine, _prepare(engine, [], [], images)) if images else None
            answer = _stream(engine, [Turn(args.question, len(images))], images, _sampling(args), args.json)
    except (ModelFileError, EngineError, ImageOpenError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\n[stopped]", file=sys.stderr)
        return 130
    if args.json:
        print(_report(answer, args, prepared))
    return 0


def _prepare(engine: Engine, turns: list[Turn], images: list, pending: list) -> int | None:
    """Have the model read the conversation and the attached images while the question is typed: the question
    then costs only its own tokens. Returns the preparation's request id; None if it could not start (too many
    images: left for the question to report)."""
    try:
        return engine.prepare([*turns, Turn("", len(pending))], images + pending)
    except EngineError:
        return None


def _prepared(engine: Engine, rid: int | None) -> dict | None:
    """Wait for a preparation to end (the question would wait for the same work; so it is also saved). Returns its
    timings, None if there was none or it failed (the question then does the work and says what is wrong)."""
    if rid is None:
        return None
    try:
        for event in engine.events(rid):
            if event["type"] == "done":
                return event["timings"]
    except EngineError:
        return None
    return None


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
    preparing = None  # the request id of the preparation of the next question, if one runs
    try:
        for path in args.image:
            pending.append(load_image(engine, path))
        if pending:
            preparing = _prepare(engine, [], [], pending)
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
                turns, images, pending, preparing = [], [], [], None
                continue
            if line.startswith("/image "):
                try:
                    pending.append(load_image(engine, Path(line[7:].strip())))
                except (ImageOpenError, OSError) as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    continue
                preparing = _prepare(engine, turns, images, pending)
                print(f"[{len(pending)} image(s) attached to the next question]", file=sys.stderr)
                continue
            before = list(turns), list(images), list(pending)  # restored if this question fails
            # A new question waits for its preparation (the same work, then saved); a regenerate or an edit
            # replaces it. Either way it is over once the question is sent.
            preparation, preparing = preparing, None
            new_question = not (line == "/regen" or line.startswith("/edit "))
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
                prepared = _prepared(engine, preparation) if new_question else None
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
                print(_report(answer, args, prepared))
    except (ModelFileError, EngineError, ImageOpenError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.close()
    return 0
