"""Money as users read it: amounts rounded to cents and shown in the experiment's currency.

A currency is an ISO 4217 code (`EUR`) or one currency symbol (`€`); common codes are shown
with their symbol, others as a prefix (`CHF 12.50`).
"""

from __future__ import annotations

import re
import unicodedata

DEFAULT_CURRENCY = "USD"
_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹", "KRW": "₩",
            "ILS": "₪", "NGN": "₦", "PHP": "₱", "VND": "₫", "UAH": "₴", "TRY": "₺"}


def check_currency(currency: str) -> str:
    """The currency as given when it is a three-letter code or a single currency symbol;
    ValueError (saying what is expected) otherwise."""
    text = currency.strip() if isinstance(currency, str) else ""
    if re.fullmatch(r"[A-Z]{3}", text):
        return text
    if len(text) == 1 and unicodedata.category(text) == "Sc":
        return text
    raise ValueError(f"currency {currency!r} is neither an ISO 4217 code (e.g. 'EUR') nor a "
                     "currency symbol (e.g. '€')")


def symbol(currency: str = DEFAULT_CURRENCY) -> str:
    """What goes before the amount: '$', '€', or 'CHF ' for a code without a common symbol."""
    if len(currency) == 1:
        return currency
    return _SYMBOLS.get(currency, currency + " ")


def money(x: float | None, digits: int = 2, currency: str = DEFAULT_CURRENCY) -> str:
    """'$1,234.50', '-€12.00', 'CHF 7.25'; 'n/a' for a missing or infinite amount."""
    if x is None or x != x or x in (float("inf"), float("-inf")):
        return "n/a"
    sign = "-" if x < 0 else ""
    return f"{sign}{symbol(currency)}{abs(x):,.{digits}f}"


def cents(x: float | None) -> float | None:
    """An amount rounded to cents (half away from zero on the decimal text, as accountants do)."""
    from decimal import ROUND_HALF_UP, Decimal

    if x is None or x != x or x in (float("inf"), float("-inf")):
        return None
    return float(Decimal(repr(float(x))).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
