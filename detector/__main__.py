"""`python -m detector` is the `streamdrift` command."""

from detector.cli import main

raise SystemExit(main())
