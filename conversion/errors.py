class ConversionError(Exception):
    """A checkpoint or model file that cannot be converted; the message says which file and why."""
