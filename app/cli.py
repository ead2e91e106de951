"""The `huatuo` command line."""

from __future__ import annotations

import argparse
import json
import sys
import threading

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["--selftest"], ["--startup-probe"]):  # checks of an installation (app/selftest.py)
        from app.selftest import main as selftest_main

        return selftest_main(argv)
    parser = argparse.ArgumentParser(prog="huatuo", description="Offline medical-image assistant (HuatuoGPT-Vision)",
                                     epilog="huatuo --selftest [--model DIR] [--json] checks this installation")
    sub = parser.add_subparsers(dest="command")

    gui = sub.add_parser("gui", help="open the desktop app (the default)")
    gui.add_argument("paths", nargs="*", help="images or DICOM files to open")

    conv = sub.add_parser("convert", help="convert a HuatuoGPT-Vision checkpoint to a GGUF pair")
    conv.add_argument("src", help="checkpoint folder (original or -hf layout)")
    conv.add_argument("out", help="output folder (text GGUF, mmproj GGUF, manifest.json)")
    conv.add_argument("--quant", default="Q4_K_M", choices=["F32", "F16", "Q8_0", "Q5_K_M", "Q4_K_M"])
    conv.add_argument("--mmproj-quant", choices=["F32", "F16", "Q8_0"], help="default F16 (F32 with --quant F32)")
    conv.add_argument("--threads", type=int, help="quantizer threads (default: all cores)")

    ver = sub.add_parser("verify", help="compare a converted GGUF pair with the transformers reference")
    ver.add_argument("src", help="the checkpoint folder it was converted from")
    ver.add_argument("out", help="the converted folder")
    ver.add_argument("--tokens", type=int, default=24, help="greedy tokens to compare")
    ver.add_argument("--json", action="store_true", help="print one JSON object")

    from app import cli_chat

    cli_chat.add_arguments(sub.add_parser("ask", help="ask one question about images (streams the answer)"), False)
    cli_chat.add_arguments(sub.add_parser("chat", help="an interactive multi-turn conversation"), True)

    from app.studies import render_cli

    render_cli.add_arguments(sub.add_parser("render", help="render a DICOM or image file as the viewer shows it"))

    from training import cli as training_cli

    training_cli.add_arguments(sub.add_parser("train", help="train one stage of HuatuoGPT-Vision (torchrun for GPUs)"))
    training_cli.add_export_arguments(
        sub.add_parser("export-checkpoint", help="a training run -> a checkpoint in the original layout"))

    from training.pubmedvision import cli as pubmedvision_cli

    data = sub.add_parser("data", help="build training data")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    pubmedvision_cli.add_arguments(
        data_sub.add_parser("build", help="PubMedVision-style data from PubMed image-caption records"))

    from training.evaluation import cli as eval_cli

    eval_cli.add_arguments(sub.add_parser("eval", help="run the medical VQA benchmarks (VQA-RAD, SLAKE, PathVQA, …)"))

    args = parser.parse_args(argv)
    from app.cpu_check import unsupported_cpu_message

    cpu_problem = unsupported_cpu_message()  # before llama.cpp is ever loaded: no illegal-instruction crash
    loads_llama = args.command in ("ask", "chat", "verify", "eval") or (
        args.command == "convert" and args.quant not in ("F32", "F16"))
    if cpu_problem and loads_llama:
        print(f"error: {cpu_problem}", file=sys.stderr)
        return EXIT_FAILED
    try:
        if args.command in ("train", "export-checkpoint"):
            return training_cli.run(args)
        if args.command == "data":
            return pubmedvision_cli.run(args)
        if args.command == "eval":
            return eval_cli.run(args)
        if args.command == "render":
            return render_cli.run(args)
        if args.command == "ask":
            return cli_chat.ask(args)
        if args.command == "chat":
            return cli_chat.chat(args)
        if args.command == "convert":
            return _convert(args)
        if args.command == "verify":
            return _verify(args)
        from app.ui.main import run_gui

        if cpu_problem:
            print(f"warning: {cpu_problem}", file=sys.stderr)
        return run_gui(getattr(args, "paths", []))
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED


def _convert(args) -> int:
    from tqdm import tqdm

    from conversion.convert import convert
    from conversion.errors import ConversionError
    from conversion.quantize import Cancelled

    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            for other in bars.values():
                other.close()
            unit = "B" if stage in ("text model", "vision projector") else "tensor"
            bar = bars[stage] = tqdm(total=total, desc=stage, unit=unit, unit_scale=unit == "B", leave=True)
        bar.update(done - bar.n)

    cancel = threading.Event()
    try:
        manifest = convert(args.src, args.out, args.quant, args.mmproj_quant, progress, cancel, args.threads)
    except (ConversionError, FileNotFoundError, PermissionError, OSError) as exc:
        _close(bars)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (KeyboardInterrupt, Cancelled):
        _close(bars)
        print("cancelled: no output file was left under its final name", file=sys.stderr)
        return EXIT_CANCELLED
    _close(bars)
    print(f"{manifest.text.file}  ({manifest.text.size_bytes / 1e6:.1f} MB, {manifest.text.quantization})")
    print(f"{manifest.mmproj.file}  ({manifest.mmproj.size_bytes / 1e6:.1f} MB, {manifest.mmproj.quantization})")
    print("manifest.json written")
    return EXIT_OK


def _close(bars) -> None:
    for bar in bars.values():
        bar.close()


def _verify(args) -> int:
    from conversion.errors import ConversionError
    from conversion.verify import verify

    try:
        report = verify(args.src, args.out, new_tokens=args.tokens)
    except (ConversionError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        r = report
        print(f"quantization         {r.quantization} (KV cache {r.kv_cache})")
        print(f"tokenization         {r.tokenization_mismatches} of {r.tokenization_texts} texts differ "
              f"(reference: {r.tokenizer_reference})")
        print(f"text logits          max |diff| {r.logits_max_abs_diff:.3g}, top-1 agreement {r.top1_agreement:.2%}")
        print(f"image embeddings     {r.image_tokens} tokens, cosine min {r.image_cosine_min:.6f} "
              f"mean {r.image_cosine_mean:.6f}")
        print(f"greedy generation    {'identical' if r.greedy_match else 'differs'} "
              f"({len(r.greedy_tokens_llama)} tokens)")
        for note in r.notes:
            print(f"note: {note}")
        for failure in r.failures:
            print(f"FAILED: {failure}")
        print("PASSED" if r.passed else "FAILED")
    return EXIT_OK if report.passed else EXIT_FAILED
