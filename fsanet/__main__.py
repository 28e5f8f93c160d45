"""``python -m fsanet``: see :mod:`fsanet.cli`."""

from fsanet.cli import main

raise SystemExit(main())
