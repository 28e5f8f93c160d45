"""Every failed request gets a message and leaves one line in the server log.

Left alone, Gradio prints a full traceback for every :class:`gradio.Error` (``print_exception``
defaults to true), and answers ``{"error": null}`` to any other exception (``show_error`` is off so
that no raw exception text or server path reaches users), its own request checks included: a file
that was never uploaded, a payload that is not a file, missing inputs. :func:`install` wraps the two
``Blocks`` methods every event goes through:

* a request Gradio cannot read becomes the project's one-line :class:`gradio.Error`, and so does a request
  for an event that has nothing to run on the server (the page's JavaScript-only events), or that makes
  one of Gradio's own event functions fail (the Examples' loaders, given a value the page never sends);
* every :class:`gradio.Error` (an upload refused, a submission rejected) is logged as one line;
* anything else is a fault of the Space: its traceback is logged and the user is told so.

An event number (``fn_index``) the Space does not have is answered 404 with a line saying so, not
Gradio's ``KeyError`` (a traceback and HTTP 500).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import gradio as gr
from fastapi import HTTPException
from gradio.exceptions import InvalidPathError

log = logging.getLogger("space")

NOT_UPLOADED = (
    "A file of the request was not uploaded to this Space: upload it first "
    "(gradio_client's handle_file does)."
)
INTERNAL = "The Space failed on this request; the error is in its log."
MISFIT = "The request does not fit this endpoint's inputs"
BROWSER_ONLY = "This event runs in the browser only: there is nothing to run on the server."
# Absolute paths in a message (the server's or the caller's own) are cut to their last component.
_PATH = re.compile(r"(?<![\w.])(?:/[^\s/'\"]+)+/([^\s/'\"]+)")


def install(demo: gr.Blocks) -> None:
    """Route every event of ``demo`` through the refusals above (call once, after building it)."""
    preprocess_data, process_api = demo.preprocess_data, demo.process_api
    # Every session's copy of the events is a copy of this mapping (Gradio copies the dict, keeping its type).
    demo.default_config.fns = _Events(demo.default_config.fns)

    async def checked_preprocess(block_fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await preprocess_data(block_fn, *args, **kwargs)
        except gr.Error:
            raise
        except Exception as error:  # Gradio's own checks of what the request holds
            raise refusal(request_problem(error)) from None

    async def logged_process(block_fn: Any, *args: Any, **kwargs: Any) -> Any:
        event = demo.fns[block_fn] if isinstance(block_fn, int) else block_fn
        endpoint = _endpoint(event)
        try:
            if event.fn is None:
                raise refusal(BROWSER_ONLY)
            return await process_api(block_fn, *args, **kwargs)
        except gr.Error as error:
            error.print_exception = False
            log.warning("%s refused: %s", endpoint, " ".join(str(error.message).split()))
            raise
        except Exception as error:
            if _gradios_own(event.fn):  # fed the request's values: the request is at fault, not the Space
                message = request_problem(error)
                log.warning("%s refused: %s", endpoint, message)
                raise refusal(message) from None
            log.exception("%s failed", endpoint)
            raise gr.Error(INTERNAL, title="Internal error", print_exception=False) from None

    demo.preprocess_data = checked_preprocess
    demo.process_api = logged_process


def refusal(message: str) -> gr.Error:
    """The one-line refusal of a request the Space cannot take as it is (``message`` says why)."""
    return gr.Error(message, title="Request refused", print_exception=False)


def request_problem(error: Exception) -> str:
    """One line saying what is wrong with a request Gradio refused, with no server path in it."""
    if isinstance(error, InvalidPathError):
        return NOT_UPLOADED
    lines = str(error).strip().splitlines()
    first = _PATH.sub(r"\1", lines[0])[:300] if lines else type(error).__name__
    return f"{MISFIT}: {first}"


class _Events(dict):
    """Gradio's events by number: one it does not have is a 404 with a line, not a ``KeyError``."""

    def __missing__(self, key: Any) -> Any:
        log.warning("fn_index %.20r refused: no such event", key)
        raise HTTPException(404, detail=f"This Space has no event {str(key)[:20]}: call a named endpoint")


def _gradios_own(fn: Any) -> bool:
    """Whether an event's function is Gradio's (the Examples' loaders), not one of the Space's."""
    return getattr(fn, "__module__", "").startswith("gradio.")


def _endpoint(block_fn: Any) -> str:
    name = getattr(block_fn, "api_name", None) or getattr(block_fn, "name", None)
    return f"/{name}" if name else "an event"
