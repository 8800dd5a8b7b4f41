"""User-facing errors: the CLI prints them as one line and exits non-zero, never a traceback."""


class SfError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    exit_code = 2


def where(file: object, row: int | None = None, column: str | None = None) -> str:
    """Format a location as `file, row R, column 'C'` for error messages (rows are 1-based data rows)."""
    parts = [str(file)]
    if row is not None:
        parts.append(f"row {row}")
    if column is not None:
        parts.append(f"column '{column}'")
    return ", ".join(parts)
