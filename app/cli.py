"""The `huatuo` command line.

Each command's options and work live with the package that does it; a command's module is imported only when
that command runs (or its --help is asked for), so opening the app pays for none of the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130


class Command:
    """A subcommand: the module that defines it, the function adding its options, the function running it.
    A command that writes into the data folder (writes_data) runs with private new files, as the window does."""

    def __init__(self, help: str, module: str, add: str = "add_arguments", run: str = "run", loads_llama=False,
                 writes_data=False):
        self.help, self.module, self.add, self.run, self.loads_llama = help, module, add, run, loads_llama
        self.writes_data = writes_data

    def function(self, name: str):
        return getattr(importlib.import_module(self.module), name)


COMMANDS: dict[str, Command] = {
    "gui": Command("open the desktop app (the default)", "app.cli", "add_gui_arguments", "run_gui"),
    "convert": Command("convert a HuatuoGPT-Vision checkpoint to a GGUF pair", "conversion.cli",
                       "add_convert_arguments", "run_convert"),
    "verify": Command("compare a converted GGUF pair with the transformers reference", "conversion.cli",
                      "add_verify_arguments", "run_verify", loads_llama=True),
    "verify-files": Command("re-hash an installed model's files against its manifest", "app.cli_verify"),
    "ask": Command("ask one question about images (streams the answer)", "app.cli_chat", "add_ask_arguments", "ask",
                   loads_llama=True, writes_data=True),
    "chat": Command("an interactive multi-turn conversation", "app.cli_chat", "add_chat_arguments", "chat",
                    loads_llama=True, writes_data=True),
    "render": Command("render a DICOM or image file as the viewer shows it", "app.studies.render_cli"),
    "train": Command("train one stage of HuatuoGPT-Vision (torchrun for GPUs)", "training.cli"),
    "export-checkpoint": Command("a training run -> a checkpoint in the original layout", "training.cli",
                                 "add_export_arguments"),
    "data": Command("build training data", "training.pubmedvision.cli", "add_data_arguments"),
    "eval": Command("run the medical VQA benchmarks (VQA-RAD, SLAKE, PathVQA, …)", "training.evaluation.cli",
                    loads_llama=True),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["--selftest"], ["--startup-probe"]):  # checks of an installation (app/selftest.py)
        from app.selftest import main as selftest_main

        return selftest_main(argv)
    if argv and _names_a_file(argv[0]):  # `huatuo FILE…` is `huatuo gui FILE…`
        argv = ["gui", *argv]
    parser = argparse.ArgumentParser(prog="huatuo", description="Offline medical-image assistant (HuatuoGPT-Vision)",
                                     epilog="huatuo --selftest [--model DIR] [--json] checks this installation")
    sub = parser.add_subparsers(dest="command")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, command in COMMANDS.items():
        command_parser = sub.add_parser(name, help=command.help)
        if name == chosen:  # only the command that runs has its options (and its module) loaded
            command.function(command.add)(command_parser)

    args = parser.parse_args(argv)
    command = COMMANDS[args.command or "gui"]
    if command is not COMMANDS["gui"]:  # the window secures the data folder itself, and says so in a dialog
        from app import privacy

        # An installation others could read is narrowed; a command that saves there (conversation states derived
        # from patient images) first makes every new file private and creates the folder 0700 if it is missing.
        tightening = privacy.start() if command.writes_data else privacy.secure_data_folder(create=False)
        if notice := tightening.notice():
            print(f"note: {notice}", file=sys.stderr)
    from app.cpu_check import unsupported_cpu_message
    from inference.quantization import uses_quantizer

    cpu_problem = unsupported_cpu_message()  # before llama.cpp is ever loaded: no illegal-instruction crash
    loads_llama = command.loads_llama or (args.command == "convert" and any(
        uses_quantizer(quant) for quant in (args.quant, args.mmproj_quant) if quant))
    if cpu_problem and loads_llama:
        print(f"error: {cpu_problem}", file=sys.stderr)
        return EXIT_FAILED
    if cpu_problem and command is COMMANDS["gui"]:
        print(f"warning: {cpu_problem}", file=sys.stderr)
    try:
        return command.function(command.run)(args)
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return EXIT_CANCELLED


def _names_a_file(arg: str) -> bool:
    """Not a command and not an option, but a file or folder (or what looks like one: a mistyped command such as
    `huatuo covnert` still gets argparse's list of commands)."""
    if arg in COMMANDS or arg.startswith("-"):
        return False
    return Path(arg).exists() or any(sign in arg for sign in ("/", "\\", "."))


def add_gui_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", help="images or DICOM files to open")


def run_gui(args: argparse.Namespace) -> int:
    from app.ui.main import run_gui

    return run_gui(getattr(args, "paths", []))


if __name__ == "__main__":
    raise SystemExit(main())
