"""Boundary strengths for cutting text (higher is a better place to cut); code uses SECTION for
top-level definitions and MEMBER for methods. Its own module so that chunking and the code
parsers both import it without importing each other."""

SECTION, PARAGRAPH, SENTENCE, LINE, WORD = 5, 4, 3, 2, 1
MEMBER, BLANK_LINE = 4, 3
