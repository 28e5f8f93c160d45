"""Entry point of the Hugging Face Space: ``python app.py`` (host/port from GRADIO_SERVER_NAME/PORT)."""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from space.ui import build_demo, launch  # noqa: E402  (after the analytics switch)

demo = build_demo()

if __name__ == "__main__":
    launch(demo)
