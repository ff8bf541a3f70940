"""Errors meant for a person, not a traceback.

Every message says what was wrong and what is allowed; the CLI prints it on one
line and the playground shows it in the page.
"""


class PlaygroundError(Exception):
    """Base class: the message is the whole story, shown as it is."""


class ConfigError(PlaygroundError, ValueError):
    """A knob was set to a value the model or trainer cannot use."""


class DataError(PlaygroundError, ValueError):
    """A dataset name or a file of points could not be used."""


class LogProbUnavailable(PlaygroundError, NotImplementedError):
    """The family defines no density (a GAN), so log_prob cannot be evaluated."""


class TrainingDiverged(PlaygroundError, RuntimeError):
    """A loss became NaN or infinite, or exploded past core.train.engine.LOSS_LIMIT; the last good
    weights were kept."""
