"""`python -m detector` is the `streamdrift` command."""

from detector.commands.cli import main

if __name__ == "__main__":  # not when a worker process is spawned (it imports this module again)
    raise SystemExit(main())
