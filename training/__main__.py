"""`python -m training --config FILE` (and `torchrun ... -m training --config FILE`): see training/cli.py."""

from training.cli import main

raise SystemExit(main())
