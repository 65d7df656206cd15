"""Parse a parameter's value text (``"1-10 (+2), 15"``, ``"*euler*"``, ``"file:prompts.txt"``) into values.

Owns the value syntax documented in ``docs/value-syntax.md``, in three layers:

1. **Tokenizer** - :func:`iter_fields` yields the text's :class:`Field` s with their character spans, lazily.
   Comma lists follow the rules of :mod:`csv` (``skipinitialspace``), so ``"a, b", c`` is two values; newlines
   act like commas, except for STRING text containing a newline, which is one value per line. Each field is then
   classified by the named regular expressions in :data:`RULES`.
2. **Parser** - :func:`parse_items` turns fields into typed items (:class:`ScalarItem`, :class:`IntRange`,
   :class:`FloatRange`, :class:`CountRange`, :class:`FileList`, :class:`RandomSeeds`, :class:`ComboPattern`)
   collected in a :class:`ValueList`. Everything that can be checked without materialising values is checked here,
   including the value limit, WHILE tokenising: it stops at the field that passes ``max_values``, so 20 MB of
   ``1,1,1,...`` costs the first 10,001 fields, not the whole text.
3. **Expander** - :func:`expand` turns a :class:`ValueList` into concrete values, after :func:`count_values`
   has enforced the value limit exactly (``file:`` lines included), so ``1-1000000000`` fails at once.

Every problem is a :class:`~.errors.ParamSyntaxError` naming the parameter, the offending text and its position;
nothing is silently replaced by a default. Standard library only; must not import torch, comfy*, server, nodes,
execution, folder_paths, comfy_execution or aiohttp.
"""
from __future__ import annotations

import difflib
import fnmatch
import itertools
import logging
import math
import os
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, NamedTuple, Union

from .errors import LimitExceededError, ParamSyntaxError
from .paths import resolve_inside

logger = logging.getLogger(__name__)

__all__ = [
    "VALUE_TYPES",
    "DEFAULT_MAX_VALUES",
    "SEED_MAX",
    "RANDOM_SEED_MAX",
    "Field",
    "ScalarItem",
    "IntRange",
    "FloatRange",
    "CountRange",
    "FileList",
    "RandomSeeds",
    "ComboPattern",
    "ChoiceText",
    "Preset",
    "SkipRule",
    "TEXT_TYPES",
    "WILDCARD_FOLDER",
    "ValueList",
    "RANDOM_CHOICE",
    "convert_value",
    "has_random_choices",
    "parse_presets",
    "resolve_random_choices",
    "parse_skip_rules",
    "normalize_type",
    "iter_fields",
    "tokenize",
    "parse_items",
    "count_values",
    "expand",
    "parse",
]

VALUE_TYPES: tuple[str, ...] = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO", "SEED", "PROMPT_SR", "BUNDLE")
#: Types whose values are text: the choice syntax ``{a|b}`` and ``__wildcard__`` files expand inside them.
TEXT_TYPES = frozenset({"STRING", "PROMPT_SR"})
#: Folder of wildcard files, inside the input folder (``file_root``).
WILDCARD_FOLDER = "wildcards"
DEFAULT_MAX_VALUES = 10_000
SEED_MAX = 2**64 - 1  # ComfyUI seeds go up to 0xffffffffffffffff
RANDOM_SEED_MAX = 2**32 - 1  # random:N draws below this, which every sampler accepts
_NUMERIC_TYPES = frozenset({"INT", "FLOAT", "SEED"})
_MAX_NUMBER_CHARS = 100  # longer number tokens are refused before int()/Fraction() can get slow
_FLOAT_END_TOLERANCE = Fraction(1, 10**9)  # relative to the step: how close counts as "landing on" the end
_MAX_SUGGESTIONS = 5

_TRUE_WORDS = frozenset({"true", "yes", "1", "on"})
_FALSE_WORDS = frozenset({"false", "no", "0", "off"})

# --------------------------------------------------------------------------------------------------------------
# Layer 1: tokenizer
# --------------------------------------------------------------------------------------------------------------

# Numbers inside ranges need a digit on both sides of a decimal point, so "1...5" or "1.-2" cannot be misread.
_NUM_U = r"\d+(?:\.\d+)?(?:[eE][+-]?\d{1,3})?"
_NUM_S = r"[+-]?" + _NUM_U
_SUFFIX = (
    r"(?:\s*\(\s*(?P<step>[+-]?" + _NUM_U + r")\s*\)"  # (+2) / (-0.25): step
    r"|\s*\[\s*(?P<count>\d+)\s*\])?"  # [5]: evenly spaced count
)

#: Named rules classifying one trimmed, unquoted field; tried in this order with ``fullmatch``.
RULES: dict[str, re.Pattern[str]] = {
    "FILE": re.compile(r"(?i:file):\s*(?P<name>.*)", re.DOTALL),
    "RANDOM": re.compile(r"(?i:random):\s*(?P<count>\d+)", re.ASCII),
    "NUMBER": re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,3})?", re.ASCII),
    # "a..b" works for every sign: -5..5, -10..-2 (+2)
    "DOT_RANGE": re.compile(rf"(?P<start>{_NUM_S})\s*\.\.\s*(?P<end>{_NUM_S}){_SUFFIX}", re.ASCII),
    # "a-b" only with unsigned ends: 1-5, 10-1 (-3), 0.5-1.5 (+0.25), 1e-3-1e-2
    "HYPHEN_RANGE": re.compile(rf"(?P<start>{_NUM_U})\s*-\s*(?P<end>{_NUM_U}){_SUFFIX}", re.ASCII),
    # "-5-3", "5--3": refused with a suggestion to write the ".." form
    "SIGNED_HYPHEN_RANGE": re.compile(rf"(?P<start>{_NUM_S})\s*-\s*(?P<end>{_NUM_S}){_SUFFIX}", re.ASCII),
}
_INT_TEXT = re.compile(r"[+-]?\d+", re.ASCII)

# A quoted field ends on its line: quotes never span lines (doubled quotes inside are literal quotes).
_QUOTED_FIELD = re.compile(r'"(?:[^"\r\n]|"")*"')
_WHOLE_LINE_QUOTED = re.compile(r'"(?:[^"]|"")*"')
#: Separators and blanks before the next field ("1,,  ,\n\n2"): skipped by one character-class scan in C (no
#: backtracking), so text made of separators costs microseconds per megabyte, not a Python step per empty field.
_SKIP = re.compile(r"[\s,]*")
_WHITESPACE = re.compile(r"\s*")
_FIELD_END = re.compile(r"[,\r\n]")
_LINE_END = re.compile(r"[\r\n]")


class Field(NamedTuple):
    """One value-sized piece of the source text (a named tuple: the scanner builds one per item, and a frozen
    dataclass costs several times more to construct).

    Attributes:
        text: The value text, trimmed, with CSV quoting removed.
        start: 0-based offset of the field (including its quotes) in the source.
        end: Offset one past the field's last character.
        quoted: True when the field was written in double quotes; quoted fields are always literal values
            (never ranges, ``file:`` or ``random:``).
    """

    text: str
    start: int
    end: int
    quoted: bool = False


def _error(
    message: str, *, name: str, source: str, start: int | None = None, end: int | None = None
) -> ParamSyntaxError:
    length = None if start is None or end is None else max(1, end - start)
    return ParamSyntaxError(message, param=name, source=source, position=start, length=length)


def _iter_csv_fields(source: str, *, name: str) -> Iterator[Field]:
    """Yield the fields of a comma (or newline) separated list, lazily and in source order.

    The rules are those of ``csv.reader(skipinitialspace=True)`` applied line by line (the property tests
    compare the two): leading spaces are skipped; a field starting with a quote runs to the matching quote,
    with ``""`` standing for one quote; any other field runs to the next comma; values are then trimmed and
    blank unquoted fields dropped. Malformed quoting that ``csv`` would silently accept (an unterminated
    quote, text after a closing quote) is an error instead of a surprising value.

    Written as a scanner rather than a ``csv.reader`` call because ``csv`` splits a whole line at once: on a
    20 MB line that is seconds of work before the value limit could be checked, while a caller of this
    generator stops after the first ``max_values + 1`` fields.
    """
    pos, length = 0, len(source)
    skip, field_end_search = _SKIP.match, _FIELD_END.search  # bound once: this loop runs per item
    while True:
        skipped = skip(source, pos)
        skip_end = skipped.end() if skipped is not None else pos
        if skip_end >= length:
            return
        if source[skip_end] == '"' and _only_spaces_since_separator(source, pos, skip_end):
            quoted = _QUOTED_FIELD.match(source, skip_end)
            if quoted is None:
                line_end = _LINE_END.search(source, skip_end)
                raise _error(
                    "unterminated quote (quotes do not span lines)",
                    name=name, source=source, start=skip_end, end=line_end.start() if line_end else length,
                )
            field_end = after = quoted.end()
            while after < length and source[after] in " \t":
                after += 1
            if after < length and source[after] not in ",\r\n":
                raise _error(
                    "unexpected text after a closing quote (put the whole value inside the quotes)",
                    name=name, source=source, start=after, end=after + 1,
                )
            text = quoted.group()[1:-1].replace('""', '"').strip()
            yield Field(text=text, start=skip_end, end=field_end, quoted=True)
            pos = after
            continue
        # An unquoted field, from its first non-blank character to the next separator.
        end_match = field_end_search(source, skip_end)
        field_end = end_match.start() if end_match is not None else length
        text = source[skip_end:field_end].rstrip()
        yield Field(text, skip_end, skip_end + len(text), False)
        pos = field_end


def _only_spaces_since_separator(source: str, pos: int, skip_end: int) -> bool:
    """Whether only spaces lie between the last separator before ``skip_end`` and it: csv skips only spaces
    before a quote, so after a tab the quote is a literal character of an unquoted field."""
    if skip_end == pos or source[skip_end - 1] in ",\r\n":
        return True
    last_sep = max(source.rfind(",", pos, skip_end), source.rfind("\n", pos, skip_end), source.rfind("\r", pos, skip_end))
    blanks = source[last_sep + 1 if last_sep >= 0 else pos:skip_end]
    return not blanks.strip(" ")


def _iter_string_lines(source: str) -> Iterator[Field]:
    """Multi-line STRING text: one field per non-blank line, commas kept (prompts contain commas)."""
    pos, length = 0, len(source)
    while True:
        # A whitespace scan rather than a search for the next non-space: the search tries a match at every
        # position (several times slower on a megabyte of blank lines).
        blank = _WHITESPACE.match(source, pos)
        start = blank.end() if blank is not None else pos
        if start >= length:
            return
        line_end = _LINE_END.search(source, start)
        pos = line_end.start() if line_end is not None else length
        stripped = source[start:pos].rstrip()
        end = start + len(stripped)
        if _WHOLE_LINE_QUOTED.fullmatch(stripped):
            yield Field(text=stripped[1:-1].replace('""', '"').strip(), start=start, end=end, quoted=True)
        else:
            yield Field(text=stripped, start=start, end=end)


def iter_fields(values_raw: str, type: str = "STRING", *, name: str = "") -> Iterator[Field]:
    """Split value text into fields with their spans (layer 1), lazily.

    Args:
        values_raw: The text the user wrote.
        type: Value type (case-insensitive); only STRING changes the splitting rule.
        name: Parameter name used in error messages.

    Yields:
        The non-empty fields in source order; a caller enforcing a limit stops reading early.

    Raises:
        ParamSyntaxError: Malformed quoting (when the scan reaches it), or an unknown type.
    """
    kind = normalize_type(type, name=name)
    if kind in TEXT_TYPES and ("\n" in values_raw or "\r" in values_raw):
        return _iter_string_lines(values_raw)
    return _iter_csv_fields(values_raw, name=name)


def tokenize(values_raw: str, type: str = "STRING", *, name: str = "") -> list[Field]:
    """Every field of the value text (see :func:`iter_fields`, which stops early when asked to).

    Raises:
        ParamSyntaxError: Malformed quoting, or an unknown type.
    """
    return list(iter_fields(values_raw, type, name=name))


# --------------------------------------------------------------------------------------------------------------
# Layer 2: parser to typed items
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScalarItem:
    """One literal value, already converted to the parameter's type."""

    value: Any
    start: int
    end: int

    def count(self) -> int:
        return 1


@dataclass(frozen=True)
class IntRange:
    """Inclusive integer range ``start..end`` by ``step`` (INT and SEED)."""

    start: int
    end: int
    step: int
    span_start: int
    span_end: int

    def count(self) -> int:
        return (self.end - self.start) // self.step + 1

    def values(self) -> range:
        return range(self.start, self.start + self.count() * self.step, self.step)


@dataclass(frozen=True)
class FloatRange:
    """Inclusive float range: ``start + i*step`` for i in 0..n-1, computed exactly and rounded once.

    The end point is included when ``(end - start) / step`` is whole, or within 1e-9 of a step of it.
    """

    start: Fraction
    end: Fraction
    step: Fraction
    span_start: int
    span_end: int

    def count(self) -> int:
        return math.floor((self.end - self.start) / self.step + _FLOAT_END_TOLERANCE) + 1

    def values(self) -> list[float]:
        n = self.count()
        last = self.start + (n - 1) * self.step
        snap = n > 1 and abs(last - self.end) <= abs(self.step) * _FLOAT_END_TOLERANCE
        # The last point is snapped to the end before converting: within the tolerance it may lie just past
        # the float range (e.g. an end of 1.797e308), where float() would overflow.
        out = [float(self.start + i * self.step) for i in range(n - 1 if snap else n)]
        if snap:
            out.append(float(self.end))
        return out


@dataclass(frozen=True)
class CountRange:
    """``n`` evenly spaced values from ``start`` to ``end`` inclusive; INT values are rounded half up."""

    start: Fraction
    end: Fraction
    n: int
    integer: bool
    span_start: int
    span_end: int

    def count(self) -> int:
        return self.n

    def values(self) -> list[Any]:
        if self.n == 1:
            points = [self.start]
        else:
            spacing = (self.end - self.start) / (self.n - 1)
            points = [self.start + i * spacing for i in range(self.n)]
        if self.integer:
            return [math.floor(p + Fraction(1, 2)) for p in points]
        return [float(p) for p in points]


@dataclass(frozen=True)
class FileList:
    """``file:NAME``: one value per line of a file inside the allowed root."""

    filename: str
    start: int
    end: int


@dataclass(frozen=True)
class RandomSeeds:
    """``random:N`` (SEED only): N distinct seeds drawn once at expansion."""

    n: int
    start: int
    end: int

    def count(self) -> int:
        return self.n


@dataclass(frozen=True)
class ComboPattern:
    """A COMBO glob such as ``*`` or ``*euler*``, with the options it matched (in option order)."""

    pattern: str
    matches: tuple[str, ...]
    start: int
    end: int

    def count(self) -> int:
        return len(self.matches)


@dataclass(frozen=True)
class ChoiceText:
    """A text value holding choices (``a {red|blue} cat``) or wildcard references (``__colors__``).

    ``parts`` alternate literal text and alternatives: a ``str`` is literal, a tuple is one choice group whose
    entries are themselves part sequences (groups nest), a :class:`_Wildcard` names a file read at expansion.
    """

    text: str
    parts: tuple[Any, ...]
    start: int
    end: int


Item = Union[ScalarItem, IntRange, FloatRange, CountRange, FileList, RandomSeeds, ComboPattern, ChoiceText]


@dataclass(frozen=True)
class ValueList:
    """The parsed form of one parameter's value text."""

    type: str
    name: str
    source: str
    items: tuple[Item, ...]
    options: tuple[str, ...] | None = None


def normalize_type(type: str, *, name: str = "") -> str:
    """Return the canonical upper-case type name, or raise ParamSyntaxError for an unknown type."""
    kind = str(type).strip().upper()
    if kind not in VALUE_TYPES:
        raise ParamSyntaxError(
            f'unknown value type "{type}" (expected one of {", ".join(VALUE_TYPES)})', param=name
        )
    return kind


class _Ctx:
    """What the parser needs to build an error for one field."""

    __slots__ = ("kind", "name", "source", "options", "option_set")

    def __init__(self, kind: str, name: str, source: str, options: tuple[str, ...] | None) -> None:
        self.kind = kind
        self.name = name
        self.source = source
        self.options = options
        # Membership per item in O(1): 10,000 items against a 1,000-option list were 10 million comparisons.
        self.option_set = None if options is None else frozenset(options)

    def error(self, message: str, start: int, end: int) -> ParamSyntaxError:
        return _error(message, name=self.name, source=self.source, start=start, end=end)


def _convert_scalar(text: str, ctx: _Ctx, start: int, end: int) -> Any:
    """Convert one literal value text to the parameter's type (shared by the parser and file lines)."""
    kind = ctx.kind
    if kind in TEXT_TYPES:
        return text
    if kind == "BOOLEAN":
        word = text.lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        raise ctx.error(f'invalid BOOLEAN value "{text}" (use true/false, yes/no, 1/0 or on/off)', start, end)
    if kind == "COMBO":
        _check_option(text, ctx, start, end)
        return text
    if kind in ("INT", "SEED"):
        return _to_int(text, ctx, start, end)
    return _to_float(text, ctx, start, end)


def _to_int(text: str, ctx: _Ctx, start: int, end: int) -> int:
    if len(text) > _MAX_NUMBER_CHARS or not _INT_TEXT.fullmatch(text):
        hint = " (whole numbers only)" if RULES["NUMBER"].fullmatch(text) else ""
        raise ctx.error(f'invalid {ctx.kind} value "{text}"{hint}', start, end)
    value = int(text)
    _check_seed(value, ctx, start, end)
    return value


def _check_seed(value: int, ctx: _Ctx, start: int, end: int) -> None:
    if ctx.kind == "SEED" and not 0 <= value <= SEED_MAX:
        raise ctx.error(f"SEED {value} is outside 0..{SEED_MAX}", start, end)


def _to_float(text: str, ctx: _Ctx, start: int, end: int) -> float:
    if len(text) > _MAX_NUMBER_CHARS or not RULES["NUMBER"].fullmatch(text):
        raise ctx.error(f'invalid FLOAT value "{text}"', start, end)
    value = float(text)
    if not math.isfinite(value):
        raise ctx.error(f'FLOAT value "{text}" is out of range', start, end)
    return value


def _to_fraction(text: str, ctx: _Ctx, start: int, end: int) -> Fraction:
    _to_float(text, ctx, start, end)  # validates syntax and finiteness; the exponent has at most 3 digits
    return Fraction(text)


def _check_option(text: str, ctx: _Ctx, start: int, end: int) -> None:
    options = ctx.options
    if options is None or ctx.option_set is None or text in ctx.option_set:
        return
    lowered = text.lower()
    close = [o for o in options if o.lower() == lowered]
    for match in difflib.get_close_matches(text, options, n=_MAX_SUGGESTIONS, cutoff=0.5):
        if match not in close:
            close.append(match)
    if not close:
        close = [o for o in options if lowered in o.lower()]
    hint = ""
    if close:
        hint = " (close matches: " + ", ".join(f'"{o}"' for o in close[:_MAX_SUGGESTIONS]) + ")"
    raise ctx.error(f'"{text}" is not one of the {len(options)} options{hint}', start, end)


def _parse_range(match: re.Match[str], field: Field, ctx: _Ctx) -> Item:
    start_text, end_text = match.group("start"), match.group("end")
    step_text, count_text = match.group("step"), match.group("count")
    s, e = field.start, field.end
    if count_text is not None:
        if len(count_text) > _MAX_NUMBER_CHARS:
            raise ctx.error(f'count "{count_text}" is too large', s, e)
        n = int(count_text)
        if n < 1:
            raise ctx.error("a range count must be at least 1", s, e)
        integer = ctx.kind in ("INT", "SEED")
        if integer:
            lo, hi = _to_int(start_text, ctx, s, e), _to_int(end_text, ctx, s, e)
            if n > abs(hi - lo) + 1:
                raise ctx.error(
                    f"{n} whole numbers from {lo} to {hi} would repeat values after rounding "
                    f"(at most {abs(hi - lo) + 1} fit)",
                    s, e,
                )
            return CountRange(Fraction(lo), Fraction(hi), n, True, s, e)
        lo_f, hi_f = _to_fraction(start_text, ctx, s, e), _to_fraction(end_text, ctx, s, e)
        if n > 1 and lo_f == hi_f:
            raise ctx.error(f"a range from {start_text} to {end_text} cannot hold {n} different values", s, e)
        return CountRange(lo_f, hi_f, n, False, s, e)

    if ctx.kind in ("INT", "SEED"):
        lo, hi = _to_int(start_text, ctx, s, e), _to_int(end_text, ctx, s, e)
        if step_text is None:
            step = 1 if hi >= lo else -1
        else:
            if not _INT_TEXT.fullmatch(step_text) or len(step_text) > _MAX_NUMBER_CHARS:
                raise ctx.error(f'{ctx.kind} range step "{step_text}" must be a whole number', s, e)
            step = int(step_text)
            _check_step(step, lo, hi, step_text, ctx, s, e)
        return IntRange(lo, hi, step, s, e)

    lo_f, hi_f = _to_fraction(start_text, ctx, s, e), _to_fraction(end_text, ctx, s, e)
    if step_text is None:
        step_f = Fraction(1 if hi_f >= lo_f else -1)  # like A1111: a float range without a step moves by 1
    else:
        step_f = _to_fraction(step_text, ctx, s, e)
        _check_step(step_f, lo_f, hi_f, step_text, ctx, s, e)
    return FloatRange(lo_f, hi_f, step_f, s, e)


def _check_step(
    step: int | Fraction, lo: int | Fraction, hi: int | Fraction, step_text: str, ctx: _Ctx, s: int, e: int
) -> None:
    if step == 0:
        raise ctx.error("a range step cannot be zero", s, e)
    if hi > lo and step < 0:
        raise ctx.error(f"step {step_text} goes down but the range goes up (write +{step_text.lstrip('+-')})", s, e)
    if hi < lo and step > 0:
        raise ctx.error(f"step {step_text} goes up but the range goes down (write -{step_text.lstrip('+-')})", s, e)


def _parse_numeric(field: Field, ctx: _Ctx) -> Item:
    text = field.text
    match = RULES["RANDOM"].fullmatch(text)
    if match is not None:
        if ctx.kind != "SEED":
            raise ctx.error(f"random:N is only available for SEED parameters, not {ctx.kind}", field.start, field.end)
        count_text = match.group("count")
        if len(count_text) > _MAX_NUMBER_CHARS:
            raise ctx.error(f'random count "{count_text}" is too large', field.start, field.end)
        n = int(count_text)
        if n < 1:
            raise ctx.error("random:N needs N of at least 1", field.start, field.end)
        return RandomSeeds(n, field.start, field.end)
    if RULES["NUMBER"].fullmatch(text):
        return ScalarItem(_convert_scalar(text, ctx, field.start, field.end), field.start, field.end)
    for rule in ("DOT_RANGE", "HYPHEN_RANGE"):
        match = RULES[rule].fullmatch(text)
        if match is not None:
            return _parse_range(match, field, ctx)
    match = RULES["SIGNED_HYPHEN_RANGE"].fullmatch(text)
    if match is not None:
        suggestion = f"{match.group('start')}..{match.group('end')}"
        rest = text[match.end("end"):].strip()
        if rest:
            suggestion += f" {rest}"
        raise ctx.error(
            f'ambiguous range "{text}": a range with a negative end is written with "..", e.g. "{suggestion}"',
            field.start, field.end,
        )
    raise ctx.error(f'invalid {ctx.kind} value or range "{text}"', field.start, field.end)


def _has_glob(text: str) -> bool:
    return "*" in text or "?" in text


def _glob_matches(pattern: str, options: Sequence[str]) -> tuple[str, ...]:
    regex = re.compile(fnmatch.translate(pattern), re.IGNORECASE)
    return tuple(o for o in options if regex.match(o))


def _parse_field(field: Field, ctx: _Ctx) -> Item:
    if not field.quoted:
        match = RULES["FILE"].fullmatch(field.text)
        if match is not None:
            filename = match.group("name").strip()
            if not filename:
                raise ctx.error("file: needs a file name, e.g. file:prompts.txt", field.start, field.end)
            return FileList(filename, field.start, field.end)
        if ctx.kind in _NUMERIC_TYPES:
            return _parse_numeric(field, ctx)
        # An option that literally contains "*" or "?" is taken as itself, not as a pattern.
        if ctx.kind == "COMBO" and _has_glob(field.text) and not (ctx.option_set and field.text in ctx.option_set):
            if ctx.options is None:
                raise ctx.error(
                    f'pattern "{field.text}" needs the list of options, which is unknown here',
                    field.start, field.end,
                )
            matches = _glob_matches(field.text, ctx.options)
            if not matches:
                raise ctx.error(
                    f'pattern "{field.text}" matches none of the {len(ctx.options)} options',
                    field.start, field.end,
                )
            return ComboPattern(field.text, matches, field.start, field.end)
    if ctx.kind in TEXT_TYPES:
        # Quoted text expands too: quotes are how a one-line list keeps a comma inside a choice.
        parts = _choice_parts(field.text)
        if parts is not None:
            return ChoiceText(field.text, parts, field.start, field.end)
    return ScalarItem(_convert_scalar(field.text, ctx, field.start, field.end), field.start, field.end)


def parse_items(
    values_raw: str,
    type: str,
    *,
    name: str = "",
    options: Sequence[str] | None = None,
    max_values: int | None = None,
) -> ValueList:
    """Parse value text into typed items without expanding ranges or reading files (layers 1 and 2).

    Args:
        values_raw: The text the user wrote.
        type: One of INT, FLOAT, STRING, BOOLEAN, COMBO, SEED (case-insensitive).
        name: Parameter name used in error messages.
        options: For COMBO, the allowed values; literal values are checked against them and ``*`` patterns
            select from them.
        max_values: When given, the value limit is checked while tokenising: parsing stops at the item that
            passes it (``file:`` items count their lines later, in :func:`expand`; at most ``max_values`` of
            them are accepted). None reads the whole text.

    Returns:
        A :class:`ValueList` holding one item per field, in source order.

    Raises:
        ParamSyntaxError: Any syntax or value error, or no values at all.
        LimitExceededError: More than ``max_values`` values (or ``file:`` items) up to some field.
    """
    if not isinstance(values_raw, str):
        raise ParamSyntaxError(f"value text must be a string, not {values_raw.__class__.__name__}", param=name)
    kind = normalize_type(type, name=name)
    option_tuple = None if options is None else tuple(str(o) for o in options)
    ctx = _Ctx(kind, name, values_raw, option_tuple)
    scan = iter_fields(values_raw, kind, name=name)
    if max_values is None:
        fields = list(scan)
    else:
        # Every field but a file: entry holds at least one value, so more fields than max_values is over the
        # limit whatever they hold: found after max_values + 1 fields, before converting any of them.
        fields = list(itertools.islice(scan, max_values + 1))
        if len(fields) > max_values:
            extra = fields[max_values]
            raise _limit_error(len(fields), max_values, extra.start, extra.end, name=name, source=values_raw,
                               partial=True)
    items: list[Item] = []
    values = 0
    for position, field in enumerate(fields):
        item = _parse_field(field, ctx)
        items.append(item)
        if max_values is not None and not isinstance(item, (FileList, ChoiceText)):
            values += item.count()
            if values > max_values:
                start, end = _item_span(item)
                raise _limit_error(values, max_values, start, end, name=name, source=values_raw,
                                   at_least=position < len(fields) - 1)
    if not items:
        raise ParamSyntaxError("no values", param=name, source=values_raw)
    return ValueList(type=kind, name=name, source=values_raw, items=tuple(items), options=option_tuple)


# --------------------------------------------------------------------------------------------------------------
# Layer 3: counting and expansion
# --------------------------------------------------------------------------------------------------------------


def _resolve_in_root(filename: str, file_root: str | os.PathLike[str] | None, ctx: _Ctx, s: int, e: int) -> str:
    """Return the real path of ``filename`` inside ``file_root``, refusing anything that escapes it."""
    if file_root is None:
        raise ctx.error("file: lists are unavailable because no input folder is configured", s, e)
    if "\x00" in filename:
        raise ctx.error("file name contains a NUL byte", s, e)
    if os.path.isabs(filename) or filename.startswith(("/", "\\")) or os.path.splitdrive(filename)[0]:
        raise ctx.error(f'file "{filename}": absolute paths are not allowed; name a file in the input folder', s, e)
    if ".." in re.split(r"[\\/]", filename):
        raise ctx.error(f'file "{filename}": ".." is not allowed; name a file in the input folder', s, e)
    root = os.path.realpath(os.fspath(file_root))
    target = os.path.realpath(os.path.join(root, filename))
    try:
        inside = os.path.commonpath([root, target]) == root
    except ValueError:  # different drives on Windows
        inside = False
    if not inside or target == root:
        raise ctx.error(f'file "{filename}" resolves outside the input folder', s, e)
    if not os.path.isfile(target):
        raise ctx.error(f'file "{filename}" not found in the input folder', s, e)
    return target


def _iter_file_lines(
    item: FileList, file_root: str | os.PathLike[str] | None, ctx: _Ctx
) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, trimmed text) of the value lines: no blanks, no ``#`` comments."""
    path = _resolve_in_root(item.filename, file_root, ctx, item.start, item.end)
    try:
        with open(path, encoding="utf-8-sig") as handle:
            for number, raw in enumerate(handle, start=1):
                text = raw.strip()
                if text and not text.startswith("#"):
                    yield number, text
    except UnicodeDecodeError as exc:
        raise ctx.error(f'file "{item.filename}" is not UTF-8 text', item.start, item.end) from exc
    except OSError as exc:
        raise ctx.error(f'file "{item.filename}" cannot be read: {exc.strerror or exc}', item.start, item.end) from exc


def _limit_error(
    total: int, max_values: int, start: int, end: int, *, name: str, source: str, partial: bool = False,
    at_least: bool = False,
) -> LimitExceededError:
    if partial:
        amount = f"more than {max_values:,}"
    elif total < 10**15:
        amount = f"{'at least ' if at_least else ''}{total:,}"
    else:
        # Astronomical counts (0..1e300 (+1e-300)) are shown by magnitude; str() of huge ints is capped anyway.
        amount = f"{'at least ' if at_least else ''}about 10^{int(total.bit_length() * math.log10(2))}"
    return LimitExceededError(
        f"too many values: {amount} (limit {max_values:,} per parameter)",
        param=name, source=source, position=start, length=max(1, end - start),
    )


def _item_span(item: Item) -> tuple[int, int]:
    if isinstance(item, (IntRange, FloatRange, CountRange)):
        return item.span_start, item.span_end
    return item.start, item.end


def _count_list(
    value_list: ValueList, *, file_root: str | os.PathLike[str] | None, max_values: int | None
) -> int:
    ctx = _Ctx(value_list.type, value_list.name, value_list.source, value_list.options)
    total = 0
    for item in value_list.items:
        if isinstance(item, FileList):
            for _ in _iter_file_lines(item, file_root, ctx):
                total += 1
                if max_values is not None and total > max_values:
                    raise _limit_error(total, max_values, *_item_span(item), name=value_list.name, source=value_list.source,
                                       partial=True)
            continue
        if isinstance(item, ChoiceText):
            total += _choice_count(item.parts, _WildcardReader(file_root, ctx, item))
        else:
            total += item.count()
        if max_values is not None and total > max_values:
            raise _limit_error(total, max_values, *_item_span(item), name=value_list.name, source=value_list.source)
    if total == 0:
        raise ParamSyntaxError("no values", param=value_list.name, source=value_list.source)
    return total


def count_values(
    values_raw: str,
    type: str,
    *,
    name: str = "",
    options: Sequence[str] | None = None,
    file_root: str | os.PathLike[str] | None = None,
    max_values: int | None = None,
) -> int:
    """Count the values ``parse`` would return, without materialising ranges or random seeds.

    ``file:`` items are read line by line to count them (stopping early once ``max_values`` is passed).

    Args:
        values_raw, type, name, options, file_root: As for :func:`parse`.
        max_values: When given, raise :class:`LimitExceededError` as soon as the count passes it; when None,
            return the full count (for a pre-flight badge that shows how far over the limit a list is).

    Returns:
        The number of values.

    Raises:
        ParamSyntaxError: Any syntax or value error; LimitExceededError when over ``max_values``.
    """
    if normalize_type(type, name=name) == "BUNDLE":
        return len(parse_presets(values_raw, name=name))
    value_list = parse_items(values_raw, type, name=name, options=options, max_values=max_values)
    return _count_list(value_list, file_root=file_root, max_values=max_values)


def expand(
    value_list: ValueList,
    *,
    file_root: str | os.PathLike[str] | None = None,
    max_values: int = DEFAULT_MAX_VALUES,
    rng: random.Random | None = None,
) -> list[Any]:
    """Turn parsed items into concrete values (layer 3), after checking the count against ``max_values``.

    Args:
        value_list: The result of :func:`parse_items`.
        file_root: Folder that ``file:`` names are resolved inside.
        max_values: Most values allowed; checked before anything large is built.
        rng: Source for ``random:N`` seeds; a fresh ``random.Random()`` when None.

    Returns:
        The values in source order.

    Raises:
        ParamSyntaxError: A file problem, an invalid line in a file, rounding collisions.
        LimitExceededError: More than ``max_values`` values.
    """
    _count_list(value_list, file_root=file_root, max_values=max_values)
    ctx = _Ctx(value_list.type, value_list.name, value_list.source, value_list.options)
    values: list[Any] = []
    for item in value_list.items:
        if isinstance(item, ScalarItem):
            values.append(item.value)
        elif isinstance(item, (IntRange, FloatRange)):
            values.extend(item.values())
        elif isinstance(item, CountRange):
            produced = item.values()
            if len(set(produced)) != len(produced):
                raise ctx.error("this range's values coincide after rounding; use fewer values",
                                item.span_start, item.span_end)
            values.extend(produced)
        elif isinstance(item, ComboPattern):
            values.extend(item.matches)
        elif isinstance(item, ChoiceText):
            values.extend(_choice_texts(item.parts, _WildcardReader(file_root, ctx, item)))
        elif isinstance(item, RandomSeeds):
            source = rng if rng is not None else random.Random()
            values.extend(source.sample(range(RANDOM_SEED_MAX + 1), item.n))
        else:
            values.extend(_expand_file(item, file_root, ctx))
    logger.debug("parameter %r expanded to %d values", value_list.name, len(values))
    return values


def _expand_file(item: FileList, file_root: str | os.PathLike[str] | None, ctx: _Ctx) -> list[Any]:
    values: list[Any] = []
    for number, text in _iter_file_lines(item, file_root, ctx):
        try:
            values.append(_convert_scalar(text, ctx, item.start, item.end))
        except ParamSyntaxError as exc:
            raise ctx.error(f'file "{item.filename}" line {number}: {exc.message}', item.start, item.end) from exc
    return values


def parse(
    values_raw: str,
    type: str,
    *,
    name: str = "",
    options: Sequence[str] | None = None,
    file_root: str | os.PathLike[str] | None = None,
    max_values: int = DEFAULT_MAX_VALUES,
    rng: random.Random | None = None,
) -> list[Any]:
    """Parse a parameter's value text into its list of values.

    Args:
        values_raw: The text the user wrote, e.g. ``"1-10 (+2), 15"`` (syntax: docs/value-syntax.md).
        type: One of INT, FLOAT, STRING, BOOLEAN, COMBO, SEED (case-insensitive).
        name: Parameter name used in error messages.
        options: For COMBO, the allowed values (checked; ``*`` patterns select from them).
        file_root: Folder that ``file:NAME`` is resolved inside (ComfyUI's input folder); None disables file:.
        max_values: Most values allowed (default 10,000); enforced before anything large is built.
        rng: Source for ``random:N`` seeds (SEED); a fresh ``random.Random()`` when None. The drawn seeds are
            in the returned list, which the caller records.

    Returns:
        The values in source order: ``int`` for INT and SEED, ``float`` for FLOAT, ``bool`` for BOOLEAN,
        ``str`` for STRING and COMBO.

    Raises:
        ParamSyntaxError: Invalid text, naming the parameter, the offending text and its position.
        LimitExceededError: More than ``max_values`` values.
    """
    if normalize_type(type, name=name) == "BUNDLE":
        presets: list[Any] = parse_presets(values_raw, name=name)
        if len(presets) > max_values:
            raise _limit_error(len(presets), max_values, 0, len(values_raw), name=name, source=values_raw)
        return presets
    value_list = parse_items(values_raw, type, name=name, options=options, max_values=max_values)
    return expand(value_list, file_root=file_root, max_values=max_values, rng=rng)



# --------------------------------------------------------------------------------------------------------------
# Sweep extensions (issue 16): choices and wildcards in text, bundles of several inputs, skip rules
# --------------------------------------------------------------------------------------------------------------

#: ``__name__``: a wildcard file ``<input>/wildcards/name.txt``; names may hold sub-folders (``__styles/ink__``).
_WILDCARD = re.compile(r"__([A-Za-z0-9][A-Za-z0-9_\-./ ]*?)__")
#: ``{~a|b|c}``: one alternative picked at random per cell (only when asked for with ``~``), recorded per cell.
RANDOM_CHOICE = "{~"
#: Most wildcard files one value may read, so a text of 10,000 references cannot read 10,000 files.
_MAX_WILDCARDS = 100


@dataclass(frozen=True)
class _Wildcard:
    name: str


def _choice_parts(text: str) -> tuple[Any, ...] | None:
    """The parts of a text holding ``{a|b}`` groups or ``__name__`` references, or None for plain text.

    A brace group is a choice only when it is closed and holds a ``|`` at its own level; any other brace is
    literal text (prompts use ``{}`` for other things), so ``{x}`` stays ``{x}``.
    """
    if "|" not in text and "__" not in text:
        return None
    parts, _ = _parse_seq(text, 0, depth=0)
    has_choice = any(not isinstance(p, str) for p in parts)
    return tuple(parts) if has_choice else None


def _parse_seq(text: str, pos: int, *, depth: int) -> tuple[list[Any], int]:
    """Parts from ``pos`` up to an unmatched ``|`` or ``}`` (when nested) or the end; returns (parts, stop)."""
    parts: list[Any] = []
    literal: list[str] = []

    def flush() -> None:
        if literal:
            parts.append("".join(literal))
            literal.clear()

    while pos < len(text):
        ch = text[pos]
        if depth and ch in "|}":
            break
        if ch == "{":
            group = _parse_group(text, pos, depth=depth)
            if group is not None and text.startswith(RANDOM_CHOICE, pos):
                # A random pick stays in the value as written; each cell resolves it (resolve_random_choices).
                literal.append(text[pos:group[1]])
                pos = group[1]
                continue
            if group is not None:
                flush()
                parts.append(group[0])
                pos = group[1]
                continue
        if ch == "_" and text.startswith("__", pos):
            match = _WILDCARD.match(text, pos)
            if match is not None:
                flush()
                parts.append(_Wildcard(match.group(1).strip()))
                pos = match.end()
                continue
        literal.append(ch)
        pos += 1
    flush()
    return parts, pos


def _parse_group(text: str, pos: int, *, depth: int) -> tuple[tuple[tuple[Any, ...], ...], int] | None:
    """``{a|b|...}`` at ``pos``: (alternatives, position after ``}``), or None when it is not a choice group."""
    if depth >= 8:  # deeper nesting is taken literally: no prompt needs it and recursion must stay bounded
        return None
    options: list[tuple[Any, ...]] = []
    cursor = pos + len(RANDOM_CHOICE) if text.startswith(RANDOM_CHOICE, pos) else pos + 1
    while True:
        seq, cursor = _parse_seq(text, cursor, depth=depth + 1)
        options.append(tuple(seq))
        if cursor >= len(text):
            return None  # never closed: literal
        if text[cursor] == "}":
            break
        cursor += 1  # the "|"
    if len(options) < 2:
        return None
    return tuple(options), cursor + 1


class _WildcardReader:
    """Reads (once per expansion) the lines of the wildcard files a value names, inside ``<root>/wildcards``."""

    def __init__(self, file_root: str | os.PathLike[str] | None, ctx: _Ctx, item: ChoiceText) -> None:
        self._root, self._ctx, self._item = file_root, ctx, item
        self._cache: dict[str, tuple[str, ...]] = {}

    def lines(self, name: str) -> tuple[str, ...]:
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        ctx, item = self._ctx, self._item
        if len(self._cache) >= _MAX_WILDCARDS:
            raise ctx.error(f"too many wildcard files in one value (at most {_MAX_WILDCARDS})", item.start, item.end)
        if self._root is None:
            raise ctx.error(f'wildcard "__{name}__" needs the input folder, which is not configured', item.start, item.end)
        filename = name if name.lower().endswith(".txt") else f"{name}.txt"
        folder = os.path.join(os.fspath(self._root), WILDCARD_FOLDER)
        try:
            path = resolve_inside(folder, filename)
        except ValueError:
            raise ctx.error(f'wildcard "__{name}__" resolves outside the input folder\'s {WILDCARD_FOLDER}/ folder',
                            item.start, item.end) from None
        if not os.path.isfile(path):
            raise ctx.error(f'wildcard "__{name}__": no file {WILDCARD_FOLDER}/{filename} in the input folder',
                            item.start, item.end)
        try:
            with open(path, encoding="utf-8-sig") as handle:
                lines = tuple(t for t in (raw.strip() for raw in handle) if t and not t.startswith("#"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ctx.error(f'wildcard "__{name}__" cannot be read: {exc}', item.start, item.end) from exc
        if not lines:
            raise ctx.error(f'wildcard "__{name}__": {WILDCARD_FOLDER}/{filename} has no values', item.start, item.end)
        self._cache[name] = lines
        return lines


def _choice_count(parts: Sequence[Any], reader: _WildcardReader) -> int:
    total = 1
    for part in parts:
        if isinstance(part, tuple):
            total *= sum(_choice_count(option, reader) for option in part)
        elif isinstance(part, _Wildcard):
            total *= len(reader.lines(part.name))
    return total


def _choice_texts(parts: Sequence[Any], reader: _WildcardReader) -> list[str]:
    """Every text the parts spell, the first group varying slowest (``itertools.product`` order)."""
    pools: list[list[str]] = []
    for part in parts:
        if isinstance(part, str):
            pools.append([part])
        elif isinstance(part, _Wildcard):
            pools.append(list(reader.lines(part.name)))
        else:
            pools.append([text for option in part for text in _choice_texts(option, reader)])
    return ["".join(combo) for combo in itertools.product(*pools)]


def has_random_choices(text: Any) -> bool:
    """Whether a text value holds a ``{~a|b}`` random pick (resolved per cell, not expanded)."""
    if not isinstance(text, str) or RANDOM_CHOICE not in text:
        return False
    return any(_parse_group(text, pos, depth=0) is not None for pos in _positions(text, RANDOM_CHOICE))


def _positions(text: str, needle: str) -> Iterator[int]:
    pos = text.find(needle)
    while pos != -1:
        yield pos
        pos = text.find(needle, pos + 1)


def resolve_random_choices(text: str, rng: random.Random) -> str:
    """``text`` with every ``{~a|b|c}`` replaced by one alternative drawn from ``rng`` (left to right; groups
    nested in the pick are resolved the same way, so ``{~a|{b|c}}`` gives a, b or c)."""
    out: list[str] = []
    pos = 0
    while pos < len(text):
        if text.startswith("{", pos):
            group = _parse_group(text, pos, depth=0)
            if group is not None:
                option = rng.choice(group[0])
                out.append(resolve_random_choices(_spell(option), rng))
                pos = group[1]
                continue
        out.append(text[pos])
        pos += 1
    return "".join(out)


def _spell(parts: Sequence[Any]) -> str:
    """The text of parsed parts (groups written back with braces, random ones included)."""
    text: list[str] = []
    for part in parts:
        if isinstance(part, str):
            text.append(part)
        elif isinstance(part, _Wildcard):
            text.append(f"__{part.name}__")
        else:
            text.append("{~" + "|".join(_spell(option) for option in part) + "}")
    return "".join(text)


@dataclass(frozen=True)
class Preset:
    """One value of a BUNDLE parameter: a label and the raw text of each input it sets.

    ``assignments`` pairs a key with its text; the key is None for a positional value (``512x768``: the
    first target gets 512, the second 768). Types are checked by the planner against the targets.
    """

    label: str
    assignments: tuple[tuple[str | None, str], ...]
    start: int
    end: int


_POSITIONAL = re.compile(rf"{_NUM_S}(?:\s*[xX×]\s*{_NUM_S})+")
_POSITIONAL_SPLIT = re.compile(r"\s*[xX×]\s*")
_PRESET_ENTRY_END = re.compile(r"[;\r\n]")


def parse_presets(values_raw: str, *, name: str = "") -> list[Preset]:
    """A BUNDLE parameter's values: named presets or positional ``AxB`` values.

    * Named presets, separated by ``;`` or new lines: ``fast: steps=12, cfg=4; quality: steps=40, cfg=7``.
    * Positional values, separated by commas or new lines: ``512x768, 768x512`` (numbers joined by ``x``).

    Raises:
        ParamSyntaxError: a malformed entry, an empty or repeated preset name, a key set twice, no values.
    """
    if not isinstance(values_raw, str):
        raise ParamSyntaxError(f"value text must be a string, not {values_raw.__class__.__name__}", param=name)
    presets: list[Preset] = []
    if ":" in values_raw:
        pos = 0
        while pos < len(values_raw):
            end_match = _PRESET_ENTRY_END.search(values_raw, pos)
            stop = end_match.start() if end_match is not None else len(values_raw)
            entry = values_raw[pos:stop]
            if entry.strip():
                start = pos + len(entry) - len(entry.lstrip())
                presets.append(_parse_named_preset(entry.strip(), start, name=name, source=values_raw))
            pos = stop + 1
    else:
        for f in _iter_csv_fields(values_raw, name=name):
            if not _POSITIONAL.fullmatch(f.text):
                raise _error(
                    f'invalid bundle value "{f.text}": write numbers joined by x (e.g. 512x768) or named presets '
                    f'(e.g. "fast: steps=12, cfg=4; quality: steps=40, cfg=7")',
                    name=name, source=values_raw, start=f.start, end=f.end,
                )
            parts = _POSITIONAL_SPLIT.split(f.text)
            presets.append(Preset(f.text, tuple((None, p) for p in parts), f.start, f.end))
    if not presets:
        raise ParamSyntaxError("no values", param=name, source=values_raw)
    seen: set[str] = set()
    for preset in presets:
        if preset.label in seen:
            raise _error(f'preset "{preset.label}" is defined twice', name=name, source=values_raw,
                         start=preset.start, end=preset.end)
        seen.add(preset.label)
    return presets


def _parse_named_preset(entry: str, start: int, *, name: str, source: str) -> Preset:
    label, colon, body = entry.partition(":")
    label = label.strip()
    end = start + len(entry)
    if not colon or not label:
        raise _error(f'preset "{entry}" needs a name before ":" (e.g. "fast: steps=12, cfg=4")',
                     name=name, source=source, start=start, end=end)
    assignments: list[tuple[str | None, str]] = []
    keys: set[str] = set()
    for raw in body.split(","):
        if not raw.strip():
            continue
        key, equals, text = raw.partition("=")
        key, text = key.strip(), text.strip()
        if not equals or not key:
            raise _error(f'preset "{label}": "{raw.strip()}" must look like input=value (e.g. steps=12)',
                         name=name, source=source, start=start, end=end)
        if key in keys:
            raise _error(f'preset "{label}" sets "{key}" twice', name=name, source=source, start=start, end=end)
        keys.add(key)
        if len(text) >= 2 and text[0] == text[-1] == '"':
            text = text[1:-1]
        assignments.append((key, text))
    if not assignments:
        raise _error(f'preset "{label}" sets nothing (e.g. "{label}: steps=12, cfg=4")',
                     name=name, source=source, start=start, end=end)
    return Preset(label, tuple(assignments), start, end)


def convert_value(text: str, type: str, *, name: str = "", options: Sequence[str] | None = None) -> Any:
    """One literal value converted and checked like a value of a parameter of ``type`` (for bundle inputs).

    Raises:
        ParamSyntaxError: the text is not a valid value of that type (or not one of ``options``).
    """
    kind = normalize_type(type, name=name)
    ctx = _Ctx(kind, name, text, None if options is None else tuple(str(o) for o in options))
    return _convert_scalar(text, ctx, 0, len(text))


@dataclass(frozen=True)
class SkipRule:
    """One line of the iterator's ``skip`` list: every condition must hold for a cell to be skipped.

    ``conditions`` pairs a parameter name with the value text it is compared to (by label or by value).
    """

    line: int
    text: str
    conditions: tuple[tuple[str, str], ...]


def parse_skip_rules(text: str) -> list[SkipRule]:
    """The iterator's exclusion list: one rule per line, conditions joined by ``&``, ``#`` starts a comment.

    ``sampler=ddim & cfg=8`` skips every cell whose sampler is ddim and whose cfg is 8.

    Raises:
        ParamSyntaxError: a condition without ``=`` or with an empty name or value (naming the line).
    """
    rules: list[SkipRule] = []
    for number, raw in enumerate(str(text or "").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        conditions: list[tuple[str, str]] = []
        for part in line.split("&"):
            key, equals, value = part.partition("=")
            key, value = key.strip(), value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            if not equals or not key or not value:
                raise ParamSyntaxError(
                    f'skip rule {number} "{line}": "{part.strip()}" must look like name=value (e.g. sampler=ddim & cfg=8)'
                )
            conditions.append((key, value))
        rules.append(SkipRule(number, line, tuple(conditions)))
    return rules
