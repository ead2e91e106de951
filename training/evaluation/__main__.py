"""`python -m training.evaluation`: the same as `huatuo eval`."""

from .cli import main

raise SystemExit(main())
