"""`huatuo train --config FILE` and `huatuo export-checkpoint RUN_DIR OUT` (also `python -m training`).

Importing this module is cheap (no torch): the app's command line builds its parser from it.
With ``--nproc-per-node`` > 1 or ``--nnodes`` > 1, `train` starts itself again under torchrun (one process
per GPU); already under torchrun (or with one process) it trains in this process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

EXIT_OK, EXIT_FAILED, EXIT_CANCELLED = 0, 1, 130


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `train`."""
    parser.add_argument("--config", required=True,
                        help="stage configuration (YAML), e.g. training/configs/stage1_7b.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override a configuration entry, e.g. --set train.max_steps=100 (repeatable)")
    parser.add_argument("--run-dir", help="where checkpoints, logs and the export go (default: run_dir of the config)")
    parser.add_argument("--stop-after-steps", type=int, metavar="N",
                        help="train N steps, save a checkpoint and stop (run again to continue)")
    launch = parser.add_argument_group("distributed launch (torchrun)")
    launch.add_argument("--nproc-per-node", type=int, default=1, help="processes (GPUs) per node")
    launch.add_argument("--nnodes", type=int, default=1, help="number of nodes")
    launch.add_argument("--node-rank", type=int, default=0, help="this node's rank (0 .. nnodes-1)")
    launch.add_argument("--master-addr", default="127.0.0.1", help="address of node 0")
    launch.add_argument("--master-port", type=int, default=29500, help="a free port on node 0")
    parser.set_defaults(training_command="train")


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `export-checkpoint`."""
    parser.add_argument("run_dir", help="a training run folder")
    parser.add_argument("out", help="output folder (original HuatuoGPT-Vision layout; must not exist or be empty)")
    parser.add_argument("--step", type=int, help="export this step's checkpoint (default: the latest)")
    parser.set_defaults(training_command="export-checkpoint")


def run(args: argparse.Namespace) -> int:
    if args.training_command == "export-checkpoint":
        return _export(args)
    return _train(args)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["export-checkpoint"]:
        parser = argparse.ArgumentParser(prog="python -m training export-checkpoint")
        add_export_arguments(parser)
        return run(parser.parse_args(argv[1:]))
    parser = argparse.ArgumentParser(prog="python -m training", description="Train HuatuoGPT-Vision (one stage)")
    add_arguments(parser)
    return run(parser.parse_args(argv))


def launch_command(args: argparse.Namespace) -> list[str]:
    """The torchrun command that runs this training with one process per GPU."""
    command = [
        sys.executable, "-m", "torch.distributed.run",
        f"--nproc-per-node={args.nproc_per_node}", f"--nnodes={args.nnodes}", f"--node-rank={args.node_rank}",
        f"--master-addr={args.master_addr}", f"--master-port={args.master_port}",
        "-m", "training", "--config", args.config,
    ]
    for item in args.overrides:
        command += ["--set", item]
    if args.run_dir:
        command += ["--run-dir", args.run_dir]
    if args.stop_after_steps is not None:
        command += ["--stop-after-steps", str(args.stop_after_steps)]
    return command


def _train(args: argparse.Namespace) -> int:
    under_launcher = "LOCAL_RANK" in os.environ
    if not under_launcher and (args.nproc_per_node > 1 or args.nnodes > 1):
        process = subprocess.Popen(launch_command(args))
        interrupted = False
        while True:
            try:
                code = process.wait()
                break
            except KeyboardInterrupt:  # torchrun has the signal too: its ranks save a checkpoint and stop
                interrupted = True
        if interrupted:
            print("interrupted: the ranks saved a checkpoint; run the same command again to continue",
                  file=sys.stderr)
            return EXIT_CANCELLED
        return code

    from .config import load_config

    overrides = list(args.overrides) + ([f"run_dir={args.run_dir}"] if args.run_dir else [])
    try:
        config = load_config(args.config, overrides)
        from .train import train

        outcome = train(config, args.stop_after_steps)
    except Exception as exc:
        if not _is_user_error(exc):
            raise
        rank = os.environ.get("RANK")
        prefix = f"[rank {rank}] " if rank not in (None, "0") else ""
        print(f"{prefix}error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if os.environ.get("RANK", "0") == "0":
        print(f"{outcome.status} at step {outcome.step} of {outcome.total_steps}; run folder {outcome.run_dir}")
        if outcome.export_dir is not None:
            print(f"exported (original HuatuoGPT-Vision layout) to {outcome.export_dir}")
        elif outcome.status != "finished":
            print("run the same command again to continue from the checkpoint")
    return EXIT_CANCELLED if outcome.status == "interrupted" else EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .export import export_checkpoint

    bars: list[tqdm] = []

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, desc="export", unit="tensor"))
        bars[0].update(done - bars[0].n)

    try:
        out = export_checkpoint(args.run_dir, args.out, step=args.step, progress=progress)
    except KeyboardInterrupt:
        print("cancelled: nothing was left under the output name", file=sys.stderr)
        return EXIT_CANCELLED
    except Exception as exc:
        if not _is_user_error(exc):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        for bar in bars:
            bar.close()
    from inference.quantization import DEFAULT

    print(f"exported to {out}; convert it with: huatuo convert {out} OUT --quant {DEFAULT}")
    return EXIT_OK


def _is_user_error(exc: Exception) -> bool:
    """Errors whose message is the whole story (bad config, data, weights or folders), not a bug."""
    from conversion.errors import ConversionError

    from .config import ConfigError
    from .data import DataError
    from .export import ExportError
    from .weights import WeightError

    return isinstance(exc, (ConfigError, DataError, WeightError, ExportError, ConversionError, FileNotFoundError))
