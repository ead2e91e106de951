"""`huatuo verify-files DIR`: re-hash an installed model's files against its manifest (inference/store/verify_files.py).

Exit status 0 when every file matches (its verified stamp is refreshed), 1 when one does not or the folder is not
a model, 130 when cancelled with Ctrl+C (the stamps are then left as they were).
"""

from __future__ import annotations

import argparse
import sys

from app.cli import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", help="an installed model's folder (manifest.json and its two GGUF files)")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from inference.store.gguf_check import ModelFileError
    from inference.store.verify_files import verify_files

    bar: tqdm | None = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc="hashing", unit="B", unit_scale=True, unit_divisor=1024)
        bar.update(done - bar.n)

    try:
        check = verify_files(args.dir, progress)
    except ModelFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("cancelled: the files were not all read; their last verification stands", file=sys.stderr)
        return EXIT_CANCELLED
    finally:
        if bar is not None:
            bar.close()
    if not check.ok:
        for problem in check.problems:
            print(f"CHANGED: {problem}", file=sys.stderr)
        print(f"FAILED: the model in {check.folder} no longer has the files it was installed with; it will not load "
              "until it is installed again (download, convert or import it)", file=sys.stderr)
        return EXIT_FAILED
    print(f"OK: {', '.join(check.files)} match the manifest (every byte read)")
    return EXIT_OK
