"""The top floor: what the board shows (columns, views, plots, downloads, model-card rows)."""
