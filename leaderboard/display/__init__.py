"""What the board shows: its columns declared once, views, downloads, plots and model-card rows."""
