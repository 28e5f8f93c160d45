"""One module per model family, each declaring everything about it; the registry imports them all."""
