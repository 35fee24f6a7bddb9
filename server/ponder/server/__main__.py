"""``python -m ponder.server`` is the ``ponder`` command."""

from ponder.server.cli import main

main()
