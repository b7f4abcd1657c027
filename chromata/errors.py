"""Exceptions with messages meant for people: the CLI prints them as one line."""


class ChromataError(Exception):
    """Base class: an expected failure with a readable message (no traceback shown to users)."""


class ConfigError(ChromataError):
    """A run or model configuration is invalid."""


class StorageError(ChromataError):
    """A source or destination cannot be listed, read or written as a whole."""


class ImageError(ChromataError):
    """One image cannot be decoded, processed or encoded; becomes a failed manifest row."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
