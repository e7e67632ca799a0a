"""C99 literals for the generators: integers, floats, arrays and struct initializers."""

from __future__ import annotations

import numpy as np

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def c_int(value: int) -> str:
    """An integer literal; INT32_MIN is written as an expression (its literal would be unsigned)."""
    value = int(value)
    if value == INT32_MIN:
        return "(-2147483647 - 1)"
    return str(value)


def c_float(value: float) -> str:
    """A float32 literal that reads back as the same float32."""
    return f"{float(np.float32(value))!r}f"


def c_array(ctype: str, symbol: str, values, per_line: int = 16) -> str:
    """`static const ctype symbol[n] = {...};` over the flattened values."""
    values = [c_int(v) for v in np.asarray(values).reshape(-1)]
    lines = [", ".join(values[i:i + per_line]) for i in range(0, len(values), per_line)]
    return f"static const {ctype} {symbol}[{len(values)}] = {{\n    " + ",\n    ".join(lines) + ",\n};\n"


def c_struct(ctype: str, symbol: str, fields: dict) -> str:
    """`static const ctype symbol = {.key = value, ...};`, values written as given (nested braces allowed)."""
    body = "".join(f"    .{key} = {value},\n" for key, value in fields.items())
    return f"static const {ctype} {symbol} = {{\n{body}}};\n"
