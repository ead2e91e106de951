"""One exception for every long operation the user can cancel: downloads, imports, conversion, generation."""


class Cancelled(Exception):
    """The user cancelled a long operation; nothing it wrote was left under a final name."""
