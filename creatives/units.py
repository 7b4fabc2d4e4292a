"""Numbers as an uploader reads them in a message."""

from decimal import ROUND_HALF_UP, Decimal


def weight(size: int) -> str:
    """A byte count the way file managers show it: 153,600 -> '150.0 KB'."""
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def seconds(value: Decimal) -> str:
    """'15.0 s', '14.968 s': as precise as the file is."""
    text = format(value.normalize(), "f")
    return f"{text if '.' in text else text + '.0'} s"


def whole_seconds(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))
