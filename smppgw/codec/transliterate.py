"""Typographic characters replaced by their GSM 03.38 look-alikes.

Word processors and phone keyboards put curly quotes, ellipses and dashes into texts that are
otherwise plain GSM 03.38. Any one of them forces the whole message into UCS-2, where a part
holds 70 characters instead of 160, so a 150-character text becomes 3 parts instead of 1.
:func:`transliterate` replaces just those characters (the table below: quotes, apostrophes,
dashes, the ellipsis, and the special spaces) with the GSM characters a reader takes them
for; every other character, GSM or not, is left as it is.
"""

from __future__ import annotations

from typing import Final

__all__ = ["TRANSLITERATIONS", "transliterate"]

TRANSLITERATIONS: Final[dict[str, str]] = {
    # Single quotes and apostrophes.
    "\u2018": "'",  # left single quotation mark
    "\u2019": "'",  # right single quotation mark (the typographic apostrophe)
    "\u201a": "'",  # single low-9 quotation mark
    "\u201b": "'",  # single high-reversed-9 quotation mark
    "\u2032": "'",  # prime
    "\u00b4": "'",  # acute accent used as an apostrophe
    "\u0060": "'",  # grave accent used as an apostrophe (not in GSM 03.38)
    # Double quotes.
    "\u201c": '"',  # left double quotation mark
    "\u201d": '"',  # right double quotation mark
    "\u201e": '"',  # double low-9 quotation mark
    "\u201f": '"',  # double high-reversed-9 quotation mark
    "\u2033": '"',  # double prime
    "\u00ab": '"',  # left-pointing double angle quotation mark
    "\u00bb": '"',  # right-pointing double angle quotation mark
    "\u2039": "'",  # single left-pointing angle quotation mark
    "\u203a": "'",  # single right-pointing angle quotation mark
    # Dashes and hyphens.
    "\u2010": "-",  # hyphen
    "\u2011": "-",  # non-breaking hyphen
    "\u2012": "-",  # figure dash
    "\u2013": "-",  # en dash
    "\u2014": "-",  # em dash
    "\u2015": "-",  # horizontal bar
    "\u2212": "-",  # minus sign
    # The ellipsis, and the bullet.
    "\u2026": "...",  # horizontal ellipsis
    "\u2022": "*",  # bullet
    # Spaces of other widths, and invisible ones.
    "\u00a0": " ",  # no-break space
    "\u2002": " ",  # en space
    "\u2003": " ",  # em space
    "\u2009": " ",  # thin space
    "\u202f": " ",  # narrow no-break space
    "\u200b": "",  # zero width space
    "\ufeff": "",  # zero width no-break space (a byte order mark inside a text)
}

_TABLE: Final = str.maketrans(TRANSLITERATIONS)


def transliterate(text: str) -> str:
    """The text with each typographic character of :data:`TRANSLITERATIONS` replaced.

    Args:
        text: any text.

    Returns:
        The text with those characters replaced; every other character unchanged. Applying it
        twice gives the same result as once.
    """
    return text.translate(_TABLE)
