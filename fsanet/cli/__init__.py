"""``python -m fsanet``: one parser (:mod:`fsanet.cli.main`), one module per verb group."""
