import sys

from training.pubmedvision.cli import main

sys.exit(main())
