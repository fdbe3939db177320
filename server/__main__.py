"""``python -m gpu_preflight.server`` is the ``preflight`` command."""

from gpu_preflight.server.cli import main

raise SystemExit(main())
