"""Entry point of the frozen (PyInstaller) app: `huatuo` in the installed folder.

Three things differ from running from source: the engine's worker is started with multiprocessing's
spawn method, which needs `freeze_support()` before anything else; the quantizer is started as
`sys.executable -m conversion.quantize …`, and a frozen executable has no `-m` of its own; and the
installed app carries the runtime only, so the few commands that need the training extras say so
instead of failing with an import error.
"""

from __future__ import annotations

import multiprocessing
import runpy
import sys

# Modules run as `huatuo -m MODULE ARGS…` by the app itself (never arbitrary code).
RUNNABLE_MODULES = {"conversion.quantize"}
# Left out of the installed app on purpose (installer/huatuo.spec excludes them): the training and data
# stacks, and the parts of the converter that compare against transformers (`huatuo verify`).
NOT_BUNDLED = ("torch", "torchvision", "torchaudio", "transformers", "datasets", "tokenizers", "accelerate", "peft",
               "pyarrow", "pandas", "scipy", "sympy", "sklearn", "networkx", "triton", "imagehash", "datasketch",
               "conversion.verify", "conversion.reference", "conversion.tokenizer", "conversion.qwen25vl_reference",
               "conversion.qwen25vl_verify", "tests")


def not_bundled(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in NOT_BUNDLED)


def main() -> int:
    multiprocessing.freeze_support()  # a spawned engine worker runs its target here and exits
    argv = sys.argv[1:]
    if len(argv) >= 2 and argv[0] == "-m":
        if argv[1] not in RUNNABLE_MODULES:
            print(f"error: -m {argv[1]}: not a module this app runs", file=sys.stderr)
            return 2
        sys.argv = [argv[1], *argv[2:]]
        try:
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return 0
    if argv and argv[0] in ("--selftest", "--startup-probe"):
        from app.selftest import main as selftest_main

        return selftest_main(argv)
    from app.cli import main as cli_main

    try:
        return cli_main(argv)
    except ModuleNotFoundError as exc:
        if not not_bundled(exc.name or ""):
            raise
        command = argv[0] if argv else "gui"
        print(f"error: `huatuo {command}` needs {exc.name}, which the installed app does not include; "
              f"install Huatuo Vision from source with its dev extras to use it", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
