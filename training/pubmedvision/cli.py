"""`huatuo data build CONFIG`: build PubMedVision-style training data from PubMed image–caption records.

    huatuo data build pubmedvision.yaml                      # every stage, skipping those up to date
    huatuo data build pubmedvision.yaml --dry-run            # local stages, then the reformat cost estimate
    huatuo data build pubmedvision.yaml --stage dedup        # one stage (its input must be up to date)
    huatuo data build pubmedvision.yaml --shard-index 3 --num-shards 8 --until image
"""

from __future__ import annotations

import argparse
import json
import sys

from training.pubmedvision.stage import STAGES

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="the pipeline's YAML configuration (paths, thresholds, chat model server)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--stage", choices=STAGES, help="run only this stage")
    which.add_argument("--until", choices=STAGES, help="run the stages up to and including this one")
    parser.add_argument("--dry-run", action="store_true",
                        help="send no request: run the local stages and estimate the reformat stage's tokens and cost")
    parser.add_argument("--shard-index", type=int, default=0, help="this machine's shard (0-based)")
    parser.add_argument("--num-shards", type=int, default=1, help="how many shards the records are split into")
    parser.add_argument("--force", action="store_true", help="rerun the selected stages even if up to date")
    parser.add_argument("--json", action="store_true", help="print the stage reports as one JSON object")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """`huatuo data build …`: the data commands under `data`."""
    data_sub = parser.add_subparsers(dest="data_command", required=True)
    add_arguments(data_sub.add_parser("build", help="PubMedVision-style data from PubMed image-caption records"))


def run(args: argparse.Namespace) -> int:
    from training.pubmedvision.chat_client import FatalAPIError
    from training.pubmedvision.config import load_config
    from training.pubmedvision.pipeline import Pipeline, stages_to_run
    from training.pubmedvision.stage import StageError
    from training.typed_config import ConfigError

    if args.num_shards < 1 or not 0 <= args.shard_index < args.num_shards:
        print(f"error: --shard-index must be in 0..{args.num_shards - 1} and --num-shards ≥ 1", file=sys.stderr)
        return EXIT_USAGE
    log = (lambda line: print(line, file=sys.stderr)) if args.json else print
    try:
        config = load_config(args.config)
        pipeline = Pipeline(config, args.shard_index, args.num_shards, log=log)
        results = pipeline.run(stages_to_run(args.stage, args.until), dry_run=args.dry_run, force=args.force)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (StageError, FatalAPIError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("cancelled: finished records are kept; run the same command again to resume", file=sys.stderr)
        return EXIT_CANCELLED
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    elif "estimate" in results:
        e = results["estimate"]
        print(f"reformat estimate ({e['model']}): {e['to_send']} of {e['records']} records to send "
              f"({e['cached']} cached, {e['unreadable']} unreadable), ~{e['estimated_prompt_tokens']:,} prompt + "
              f"~{e['estimated_completion_tokens']:,} completion tokens, ~${e['estimated_cost_usd']:,.2f}")
    reformat = results.get("reformat")
    if reformat is not None and not reformat["complete"]:
        print(f"warning: {reformat['rejected_total']} records failed in the reformat stage (see "
              f"{pipeline.paths.rejected('reformat')}); run again to retry them", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.pubmedvision", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))
