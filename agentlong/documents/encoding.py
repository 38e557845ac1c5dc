"""Bytes to text: a BOM, then UTF-8, then charset-normalizer's guess; bad bytes are replaced and
noted. Used by every loader (plain files, EPUB chapters), so it sits below them all."""

from __future__ import annotations

import codecs

__all__ = ["decode", "BOMS"]

BOMS = [(codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")]


def decode(data: bytes) -> tuple[str, str, list[str]]:
    """``(text, encoding, warnings)``: BOM, then UTF-8, then charset-normalizer; bad bytes are replaced.

    >>> decode("café".encode("utf-8"))[:2]
    ('café', 'utf-8')
    """
    for bom, encoding in BOMS:
        if data.startswith(bom):
            text = data.decode(encoding, errors="replace")
            return text, encoding, _replaced(text, encoding)
    try:
        return data.decode("utf-8"), "utf-8", []
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    if sum(1 for ch in text if ord(ch) > 127) - bad > bad:  # real UTF-8 with a few corrupt bytes
        return text, "utf-8", _replaced(text, "utf-8")
    from charset_normalizer import from_bytes

    best = from_bytes(data[: 4 * 1024 * 1024]).best()
    encoding = best.encoding if best is not None else "utf-8"
    text = data.decode(encoding, errors="replace")
    warnings = [f"not UTF-8: decoded as {encoding}"] + _replaced(text, encoding)
    return text, encoding, warnings


def _replaced(text: str, encoding: str) -> list[str]:
    bad = text.count("\ufffd")
    return [f"{bad} undecodable byte sequence(s) replaced with U+FFFD ({encoding})"] if bad else []
