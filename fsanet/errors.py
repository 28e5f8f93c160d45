"""Errors a user can act on; the CLI and the Space show their message, not a traceback."""


class FSANetError(Exception):
    """Base class of every error meant for the user."""


class WeightsUnavailableError(FSANetError):
    """Pretrained weights could not be found, fetched or verified."""


class InvalidWeightsError(FSANetError):
    """A weights file or config is corrupt, unsafe or does not match its architecture."""


class UnknownModelError(FSANetError, ValueError):
    """A model name or pretrained tag the registry does not know; the message lists what it knows."""


class InvalidImageError(FSANetError, ValueError):
    """An input image is unreadable, empty, too large or otherwise unusable."""
