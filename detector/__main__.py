"""`python -m detector` is the `streamdrift` command."""

from detector.commands.cli import main

raise SystemExit(main())
