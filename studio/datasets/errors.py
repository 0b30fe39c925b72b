"""The one error type the dataset builders raise for bad input."""


class DatasetError(ValueError):
    """Input a builder refuses; the message is a sentence for the person, not a traceback."""
