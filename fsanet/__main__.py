"""``python -m fsanet``: see :mod:`fsanet.cli.main`."""

from fsanet.cli.main import main

raise SystemExit(main())
