"""`python -m emostream`: the command line."""

from emostream.cli import main

raise SystemExit(main())
