"""Verification of a semantic-cache hit: may a cached answer be served for a near-identical request?

Cosine similarity between sentence embeddings scores near-misses (a changed number, a negation, an
antonym, another name) as high as true paraphrases, so the cache serves a neighbour's answer only when
the similarity clears `DEFAULT_SIMILARITY_THRESHOLD` and `verify_semantic_match` finds no difference in
the parts of a request that change its answer. The rules are deliberately one-sided: a rule that fires
on a true paraphrase costs one cache miss, a rule that is missing can serve a wrong answer.

What is compared: the turn structure; system prompts, earlier answers and tool output verbatim (after
whitespace and case); every user turn for multiple-choice options, numbers (digits, written-out,
decimals, signs, units, which number counts what), negation and opposite wording, names, quoted
strings, code identifiers, URLs and e-mails, formula symbols, and edits that are one word, a swap of
roles or another question next to a shared passage.

Pure Python with precompiled patterns: 0.05 to 0.8 ms a pair (MMLU, GSM8K, paraphrase pairs).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from difflib import SequenceMatcher
from typing import Any

# Tuned by routing.cache_quality.tune_threshold (run `bench/cache_quality.py`): nearest-neighbour lookups
# of the tune half of the GPTCache paraphrase pairs and of RouteLLM `train` prompts in a pool holding
# the right answers and near-misses (leave-one-out MMLU questions, GSM8K problems with one number
# changed, negated / antonym- / entity- / number-changed copies, other system prompts and earlier
# turns, paraphrases of uncached prompts). The lowest threshold on a 0.005 grid with precision >= 0.96
# over all hits (uncached paraphrases' labels are noisy; the task's own precision is ~0.99 at any
# threshold once verified) and no number-changed false hit: 0.77 with the int8 embedder (tune:
# precision 0.992, 0.960 with uncached paraphrases, recall 0.844). Report half and `holdout`, never
# used for tuning: precision 0.989 (0.964 with uncached paraphrases), recall 0.837, number-changed
# GSM8K false hits 0 of 256.
# History: 0.785 for fp32 with a "user: " prefix; 0.805 for fp32 once a single user message embedded
# as its raw text (so the learned router can reuse the vector; report 0.989 / 0.833 / 0); 0.77 since
# the int8 embedder (routing/embedding_int8.py), whose vectors sit at cosine ~0.994 to fp32 and
# spread similarities a little lower: at the old 0.805 it gave 0.989 / 0.817 / 0, and the same rule
# now stops at 0.77. With AIOS_EMBED_PRECISION=fp32 set the namespace thresholds back to 0.805. A
# hand review of 25 tune "false hits" at 0.785 (fp32) found 22 restating the same fact as the
# query's own origin.
DEFAULT_SIMILARITY_THRESHOLD: float = 0.77

Message = Mapping[str, Any]


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    reason: str


# --- Canonical text -----------------------------------------------------------------------------

_WS_RE = re.compile(r"\s+")


def _part_text(part: Any) -> str:
    if isinstance(part, str):
        return part
    if not isinstance(part, Mapping):
        return str(part)
    if part.get("type") == "text":
        return str(part.get("text", ""))
    # Images, audio and files are kept by reference so two different attachments never look equal.
    payload = {key: value for key, value in part.items() if key != "type"}
    return f"[{part.get('type', 'part')}: {json.dumps(payload, sort_keys=True, default=str)}]"


def message_text(message: Message) -> str:
    """The text of one message: string content or its parts joined, plus tool calls and names."""
    content = message.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        text = "\n".join(_part_text(part) for part in content)
    extras = [message[key] for key in ("name", "tool_call_id", "tool_calls", "function_call") if message.get(key)]
    if extras:
        text = f"{text}\n{json.dumps(extras, sort_keys=True, default=str)}"
    return text


def _squash_ws(text: str) -> str:
    return _WS_RE.sub(" ", text).strip()


def _normalized(text: str) -> str:
    return _squash_ws(text).casefold()


def conversation_text(messages: Sequence[Message]) -> str:
    """The canonical text that is embedded: every turn, system prompt included, one line per turn.
    A single user message is its own text, as sent: the router embeds exactly that prompt, so one
    embedding serves both (most requests are single-turn)."""
    if len(messages) == 1 and messages[0].get("role", "user") == "user":
        return message_text(messages[0])
    return "\n".join(f"{message.get('role', 'user')}: {_squash_ws(message_text(message))}" for message in messages)


# --- Numbers --------------------------------------------------------------------------------------

_UNITS_WORDS = {
    "0": "zero",
    "1": "one",
    "2": "two",
    "3": "three",
    "4": "four",
    "5": "five",
    "6": "six",
    "7": "seven",
    "8": "eight",
    "9": "nine",
    "10": "ten",
    "11": "eleven",
    "12": "twelve",
    "13": "thirteen",
    "14": "fourteen",
    "15": "fifteen",
    "16": "sixteen",
    "17": "seventeen",
    "18": "eighteen",
    "19": "nineteen",
}
_SMALL_NUMBERS = {word: int(value) for value, word in _UNITS_WORDS.items()}
# "one" and "first" are left out: "one can", "in one go", "check this first" carry no quantity, and
# any other number next to them still differs ("one" vs "two" shows up as a "2" on one side only).
_COUNTED_SMALL_NUMBERS = {word: value for word, value in _SMALL_NUMBERS.items() if word != "one"}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_SPECIAL_NUMBERS = {"dozen": "12", "half": "0.5", "twice": "2", "thrice": "3", "quarter": "0.25"}
_ORDINALS = {
    "third": "3",
    "fourth": "4",
    "fifth": "5",
    "sixth": "6",
    "seventh": "7",
    "eighth": "8",
    "ninth": "9",
    "tenth": "10",
}
_NUMBER_WORD = "|".join([*_COUNTED_SMALL_NUMBERS, *_TENS, *_SCALES])
# "twenty-five", "one hundred and five", "three thousand": a run of number words read as one value.
_WRITTEN_RUN_RE = re.compile(
    rf"\b(?:{_NUMBER_WORD})(?:(?:[\s-]+|\s+and\s+)(?:{_NUMBER_WORD}))*\b",
    re.IGNORECASE,
)
_SPECIAL_RE = re.compile(rf"\b(?:{'|'.join(_SPECIAL_NUMBERS)}|{'|'.join(_ORDINALS)}|the second)\b", re.IGNORECASE)
_THOUSANDS_RE = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_NUMBER_RE = re.compile(
    r"(?<![\w.])(?:[vV](?=\d))?(?P<sign>[-−](?=[$€£¥]?\d))?(?P<currency>[$€£¥])?(?P<number>\d+(?:\.\d+)*|\.\d+)"
    r"(?P<attached>[a-zA-Z%°]*)"
    r"(?:\s*(?P<following>[a-zA-Z%°][a-zA-Z°]*))?"
)
_DIGITS_RE = re.compile(r"\d+")

_CURRENCY = {"$": "usd", "€": "eur", "£": "gbp", "¥": "jpy"}
_UNIT_ALIASES: dict[str, tuple[str, ...]] = {
    "%": ("%", "percent", "pct"),
    "usd": ("dollar", "dollars", "usd"),
    "eur": ("euro", "euros", "eur"),
    "gbp": ("pound", "pounds", "gbp"),
    "cent": ("cent", "cents"),
    "km": ("km", "kilometer", "kilometers", "kilometre", "kilometres"),
    "m": ("m", "meter", "meters", "metre", "metres"),
    "cm": ("cm", "centimeter", "centimeters", "centimetre", "centimetres"),
    "mm": ("mm", "millimeter", "millimeters"),
    "mile": ("mi", "mile", "miles"),
    "ft": ("ft", "foot", "feet"),
    "inch": ("inch", "inches"),
    "yard": ("yd", "yard", "yards"),
    "kg": ("kg", "kilogram", "kilograms", "kilo", "kilos"),
    "g": ("g", "gram", "grams"),
    "lb": ("lb", "lbs", "pound-weight"),
    "oz": ("oz", "ounce", "ounces"),
    "l": ("l", "liter", "liters", "litre", "litres"),
    "ml": ("ml", "milliliter", "milliliters"),
    "gallon": ("gal", "gallon", "gallons"),
    "s": ("s", "sec", "secs", "second", "seconds"),
    "ms": ("ms", "millisecond", "milliseconds"),
    "min": ("min", "mins", "minute", "minutes"),
    "h": ("h", "hr", "hrs", "hour", "hours"),
    "day": ("day", "days"),
    "week": ("week", "weeks"),
    "month": ("month", "months"),
    "year": ("year", "years", "yr", "yrs"),
    "kb": ("kb", "kib", "kilobyte", "kilobytes"),
    "mb": ("mb", "mib", "megabyte", "megabytes"),
    "gb": ("gb", "gib", "gigabyte", "gigabytes"),
    "tb": ("tb", "tib", "terabyte", "terabytes"),
    "ghz": ("ghz",),
    "mhz": ("mhz",),
    "°": ("°", "°c", "°f", "degree", "degrees"),
    "k": ("k",),
}
_UNITS = {alias: unit for unit, aliases in _UNIT_ALIASES.items() for alias in aliases}


@dataclass(frozen=True)
class _Number:
    value: str
    unit: str | None
    bound_word: str | None  # the word the number counts ("3 apples"), for swaps between numbers


def _written_values(run: str) -> list[int]:
    """Values of a run of number words; "one two" is two values, "one hundred and five" is one."""
    values: list[int] = []
    total, current, last = 0, 0, ""
    for word in re.split(r"[\s-]+", run.lower()):
        if word in _SMALL_NUMBERS or word in _TENS:
            kind = "tens" if word in _TENS else "unit"
            if last == "unit" or (last == "tens" and (kind == "tens" or _SMALL_NUMBERS.get(word, 0) >= 10)):
                values.append(total + current)
                total, current = 0, 0
            current += _SMALL_NUMBERS.get(word, _TENS.get(word, 0))
        elif word == "hundred":
            current, kind = max(current, 1) * 100, "hundred"
        elif word in _SCALES:
            total, current, kind = total + max(current, 1) * _SCALES[word], 0, "scale"
        else:
            continue  # "and"
        last = kind
    values.append(total + current)
    return values


def _written_replacement(match: re.Match[str]) -> str:
    run = match.group(0)
    before = match.string[max(0, match.start() - 5) : match.start()]
    first_word = re.split(r"[\s-]+", run.lower())[0]
    # "5 million" stays as written (5 and a word); a bare "thousand" counts only as "a thousand",
    # "several thousand" is no number to compare.
    if first_word in _SCALES and (re.search(r"\d\s*$", before) or not re.search(r"\b(?:a|one)\s+$", before, re.I)):
        return run
    return " " + " ".join(map(str, _written_values(run))) + " "


def _digits_for_words(text: str) -> str:
    """Written-out numbers rewritten as digits, thousands separators dropped: "twenty-five" -> "25"."""
    text = _WRITTEN_RUN_RE.sub(_written_replacement, text)
    text = _SPECIAL_RE.sub(lambda match: _special_value(match.group(0)), text)
    return _THOUSANDS_RE.sub("", text)


def _special_value(word: str) -> str:
    lowered = word.lower()
    if lowered == "the second":
        return "the 2nd"
    if lowered in _ORDINALS:
        return f"{_ORDINALS[lowered]}st"
    return f" {_SPECIAL_NUMBERS[lowered]} "


def _canonical_number(raw: str, sign: str | None) -> str:
    if raw.count(".") > 1:
        return raw  # a version such as 2.10.0
    try:
        value = Decimal(raw)
    except InvalidOperation:
        return raw
    if sign:
        value = -value
    normalized = value.normalize()
    return format(normalized, "f") if normalized == normalized.to_integral() else str(normalized)


def _singular(word: str) -> str:
    word = word.lower()
    if len(word) > 3 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _numbers(text: str) -> list[_Number]:
    found: list[_Number] = []
    for match in _NUMBER_RE.finditer(text):
        attached = match.group("attached").lower()
        following = (match.group("following") or "").lower()
        unit = _CURRENCY.get(match.group("currency") or "") or _UNITS.get(attached) or _UNITS.get(following)
        bound = attached if attached and attached not in ("st", "nd", "rd", "th") else following
        found.append(
            _Number(
                value=_canonical_number(match.group("number"), match.group("sign")),
                unit=unit,
                bound_word=_singular(bound) if bound else None,
            )
        )
    return found


def _compare_numbers(text_a: str, text_b: str) -> str | None:
    digits_a, digits_b = _digits_for_words(text_a), _digits_for_words(text_b)
    # Every run of digits counts (versions, codes, formulas), not only what parses as a quantity.
    runs_a, runs_b = Counter(_DIGITS_RE.findall(digits_a)), Counter(_DIGITS_RE.findall(digits_b))
    if runs_a != runs_b:
        return f"numbers differ: {sorted((runs_a - runs_b).elements())} vs {sorted((runs_b - runs_a).elements())}"
    numbers_a, numbers_b = _numbers(digits_a), _numbers(digits_b)
    values_a, values_b = Counter(n.value for n in numbers_a), Counter(n.value for n in numbers_b)
    if values_a != values_b:
        return (
            f"numbers differ: {sorted((values_a - values_b).elements())} vs {sorted((values_b - values_a).elements())}"
        )
    return _compare_units(numbers_a, numbers_b) or _compare_bindings(numbers_a, numbers_b)


def _compare_units(numbers_a: list[_Number], numbers_b: list[_Number]) -> str | None:
    units_a: dict[str, set[str]] = {}
    units_b: dict[str, set[str]] = {}
    for numbers, units in ((numbers_a, units_a), (numbers_b, units_b)):
        for number in numbers:
            if number.unit:
                units.setdefault(number.value, set()).add(number.unit)
    for value, unit_set in units_a.items():
        other = units_b.get(value)
        if other and not other & unit_set:
            return f"units differ for {value}: {sorted(unit_set)} vs {sorted(other)}"
    return None


def _compare_bindings(numbers_a: list[_Number], numbers_b: list[_Number]) -> str | None:
    """Same numbers attached to other things ("3 apples, 5 pears" vs "5 apples, 3 pears")."""
    bound_a: dict[str, list[str]] = {}
    bound_b: dict[str, list[str]] = {}
    for numbers, bound in ((numbers_a, bound_a), (numbers_b, bound_b)):
        for number in numbers:
            if number.bound_word:
                bound.setdefault(number.bound_word, []).append(number.value)
    for word, values in bound_a.items():
        other = bound_b.get(word)
        if other is not None and sorted(other) != sorted(values):
            return f"numbers swapped around '{word}'"
    return None


# --- Names, quoted strings, code, URLs --------------------------------------------------------------

_URL_RE = re.compile(r"\b(?:https?://|www\.)[^\s<>\"'`)\]]+", re.IGNORECASE)
_EMAIL_RE = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_QUOTED_RE = re.compile(r"`([^`\n]{1,200})`|\"([^\"\n]{1,200})\"|“([^”\n]{1,200})”|(?<!\w)'([^'\n]{1,200})'(?!\w)")
_IDENTIFIER_RE = re.compile(
    r"(?<![\w.])(?:[A-Za-z_][\w-]*(?:[./:][A-Za-z_][\w-]*)+(?:\(\))?|[A-Za-z_]\w*\(\)|[A-Za-z]*_\w+|"
    r"[a-z]+[A-Z][A-Za-z0-9]*|-{1,2}[a-z][\w-]+)"
)
_NOT_IDENTIFIERS = frozenset({"e.g", "i.e", "etc", "vs"})
_WORD_RE = re.compile(r"[A-Za-z]+")
_CAPITALIZED_RE = re.compile(
    r"(?<![\w'’.-])(?:[A-Z][a-z]*[A-Z][A-Za-z]*|[A-Z]{2,}s?|[A-Z][a-z]+)(?!\w|['’](?:t|ll|re|ve|d|m)\b)"
)
_SENTENCE_START_RE = re.compile(r"(?:^|[.!?:;|]\s+|\n\s*|[\"“(\[]\s*|^\s*[-*•]\s+)$")
_ALNUM_RE = re.compile(r"[^a-z0-9]+")

# Capitalized only because they open a sentence or are a question word; not names.
_COMMON_CAPITALIZED_TEXT = """
    a an the this that these those there here it its it's i i'm i've we you your yours he she they them
    their our my me us his her what which who whom whose when where why how whether if then than so
    and or but nor for yet also as at by in on of to from with without into onto about above after
    before below between during under over through since until while because although though unless
    is are was were be been being do does did done have has had can could may might must shall should
    will would please yes no not never none some any all each every both either neither many much more
    most few several other another such only just even still again once now today tomorrow yesterday
    let make given suppose assume consider find write explain describe list tell show give use using
    compute calculate determine evaluate solve answer question statement true false which following
    one two three four five six seven eight nine ten first second third next last finally however
    therefore thus hence furthermore moreover additionally instead otherwise meanwhile overall also
    note see example e.g i.e etc ok okay hi hello hey thanks thank dear mr mrs ms dr
"""
_COMMON_CAPITALIZED = frozenset(_COMMON_CAPITALIZED_TEXT.split())


def _entity_reasons(text_a: str, text_b: str) -> str | None:
    for label, extractor in (("URL", _urls), ("email", _emails)):
        left, right = extractor(text_a), extractor(text_b)
        if left != right:
            return f"{label}s differ: {sorted(left ^ right)[:3]}"
    for label, extractor in (("quoted string", _quoted), ("code identifier", _identifiers)):
        for items, other in ((extractor(text_a), text_b), (extractor(text_b), text_a)):
            missing = _first_missing(items, other)
            if missing:
                return f"{label} {missing!r} missing from the other prompt"
    return _compare_names(text_a, text_b)


def _first_missing(items: set[str], other_text: str) -> str | None:
    """An item that the other text lacks, also once both are squashed ("Huggingface.js", "Hugging Face.js")."""
    lowered, squashed = _normalized(other_text), _ALNUM_RE.sub("", other_text.lower())
    for item in sorted(items):
        if item not in lowered and _ALNUM_RE.sub("", item) not in squashed:
            return item
    return None


def _urls(text: str) -> set[str]:
    return {url.rstrip(".,;:!?").rstrip("/").lower() for url in _URL_RE.findall(text)}


def _emails(text: str) -> set[str]:
    return {email.lower() for email in _EMAIL_RE.findall(text)}


def _quoted(text: str) -> set[str]:
    return {_normalized(next(group for group in match if group)) for match in _QUOTED_RE.findall(text)}


def _identifiers(text: str) -> set[str]:
    found = {identifier.lower().removesuffix("()") for identifier in _IDENTIFIER_RE.findall(text)}
    return found - _NOT_IDENTIFIERS


def _names(text: str) -> list[tuple[str, bool]]:
    """Capitalized words, acronyms and CamelCase words, each with whether it opens a sentence."""
    names = []
    for match in _CAPITALIZED_RE.finditer(text):
        word = match.group(0)
        if len(word) == 1:
            continue
        opens_sentence = bool(_SENTENCE_START_RE.search(text[max(0, match.start() - 4) : match.start()]))
        if word.lower() in _COMMON_CAPITALIZED and (opens_sentence or word.istitle()):
            continue
        names.append((word, opens_sentence and word.istitle()))
    return names


class _TextIndex:
    """The other prompt's words, squashed text and capitalized runs, to look names up in."""

    def __init__(self, text: str) -> None:
        words = [word.lower() for word in _WORD_RE.findall(text)]
        self.words = {_singular(word) for word in words}
        # "Huggingface" against "Hugging Face": neighbouring words written together.
        self.joined = {"".join(words[i : i + n]) for n in (2, 3) for i in range(len(words) - n + 1)}
        self.prefixes = {word[:5] for word in self.words if len(word) >= 5}
        self.acronyms = set(re.findall(r"\b[A-Z]{2,6}\b", text))
        self.runs = [run.split() for run in re.findall(r"[A-Z][\w.]*(?:\s+[A-Z][\w.]*)+", text)]

    def has(self, word: str, opens_sentence: bool) -> bool:
        lowered = word.lower()
        if _singular(lowered) in self.words or lowered in self.joined or _singular(lowered) in self.joined:
            return True
        if opens_sentence and len(lowered) >= 6 and lowered[:5] in self.prefixes:
            return True  # "Splits can be composed" vs "splitting": same stem, sentence-initial capital
        return word.isupper() and any(_initials(run, word) for run in self.runs)


def _initials(run: list[str], acronym: str) -> bool:
    letters = "".join(word[0] for word in run).upper()
    return acronym.removesuffix("s") in letters


def _expands_acronym(word: str, text: str, other: _TextIndex) -> bool:
    """`word` belongs to a capitalized run whose initials are an acronym in the other prompt (and not
    in this one, where the acronym would have to match by itself)."""
    own_acronyms = set(re.findall(r"\b[A-Z]{2,6}\b", text))
    for run in re.findall(r"[A-Z][\w.]*(?:\s+[A-Z][\w.]*)+", text):
        parts = run.split()
        if word in parts:
            letters = "".join(part[0] for part in parts).upper()
            if any(acronym in letters for acronym in other.acronyms - own_acronyms):
                return True
    return False


def _unmatched_names(text: str, other_text: str) -> tuple[list[str], list[str]]:
    """Names of `text` that `other_text` lacks: (inside a sentence, opening a sentence)."""
    other = _TextIndex(other_text)
    inside, opening = [], []
    for word, opens_sentence in _names(text):
        if not other.has(word, opens_sentence) and not _expands_acronym(word, text, other):
            (opening if opens_sentence else inside).append(word)
    return inside, opening


def _compare_names(text_a: str, text_b: str) -> str | None:
    inside_a, opening_a = _unmatched_names(text_a, text_b)
    inside_b, opening_b = _unmatched_names(text_b, text_a)
    if inside_a or inside_b:
        return f"name {(inside_a or inside_b)[0]!r} missing from the other prompt"
    # A capital that opens a sentence may be an ordinary word a paraphrase dropped ("Afterwards, ...");
    # it is a swapped name ("Gradio is ..." vs "Streamlit is ...") when both sides have one unmatched.
    if opening_a and opening_b:
        return f"names differ: {opening_a[0]!r} vs {opening_b[0]!r}"
    return None


# --- Polarity -------------------------------------------------------------------------------------

_NEGATION_RE = re.compile(
    r"\b(?:not|no|never|none|nobody|nothing|nowhere|neither|nor|without|cannot|unable|fails?\s+to|"
    r"failed\s+to|lacks?|lacking|absence|absent|non(?=-)|\w+n['’]t)\b",
    re.IGNORECASE,
)
# Words that look negative but do not negate the request.
_NOT_NEGATION_RE = re.compile(
    r"(?:^|[.!?]\s+|\n)\s*no\s*,|\bno\s+matter\b|\bno\s+longer\s+than\b|\bno\s+sooner\b",
    re.IGNORECASE,
)


def _negations(text: str) -> int:
    return len(_NEGATION_RE.findall(text)) - len(_NOT_NEGATION_RE.findall(text))


_NEGATING_PREFIXES = ("un", "in", "im", "il", "ir", "dis", "non")  # "non-" is counted as a negation word


def _prefix_negation(text_a: str, text_b: str) -> str | None:
    """A word that the other prompt has with a negating prefix ("supervised" / "unsupervised")."""
    words_a = {word.lower() for word in re.findall(r"[A-Za-z][\w-]*", text_a)}
    words_b = {word.lower() for word in re.findall(r"[A-Za-z][\w-]*", text_b)}
    for words, other in ((words_a - words_b, words_b - words_a), (words_b - words_a, words_a - words_b)):
        for word in words:
            if len(word) >= 4 and any(prefix + word in other for prefix in _NEGATING_PREFIXES):
                return f"negation differs ({word!r} vs a negated form)"
    return None


# Each concept has two opposite sides; synonyms share a side, so "enable" vs "turn off" is caught too.
_ANTONYM_CONCEPTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "activation": (
        ("enable", "activate", "turn on", "switch on"),
        ("disable", "deactivate", "turn off", "switch off", "off"),
    ),
    "membership": (("add", "insert", "append", "attach"), ("remove", "delete", "erase", "detach", "drop")),
    "inclusion": (("include", "inclusive", "including"), ("exclude", "exclusive", "excluding", "except")),
    "permission": (
        ("allow", "permit", "grant", "accept", "approve", "whitelist", "allowlist"),
        ("deny", "forbid", "block", "reject", "refuse", "prohibit", "disallow", "revoke", "blacklist", "denylist"),
    ),
    "running": (("start", "begin", "launch", "resume", "restart"), ("stop", "halt", "terminate", "pause", "kill")),
    "amount": (
        ("increase", "raise", "increment", "grow", "expand", "gain", "add up"),
        ("decrease", "reduce", "decrement", "shrink", "lose", "cut", "drop"),
    ),
    "comparison": (
        ("more", "greater", "larger", "bigger", "higher", "longer", "faster", "most", "plus", "above"),
        ("less", "fewer", "smaller", "lower", "shorter", "slower", "least", "minus", "below"),
    ),
    "extreme": (
        ("max", "maximum", "maximize", "maximise", "largest", "highest", "biggest", "greatest", "best", "top"),
        ("min", "minimum", "minimize", "minimise", "smallest", "lowest", "least", "worst", "bottom"),
    ),
    "time": (("before", "earlier", "prior", "previous", "ago"), ("after", "later", "next")),
    "position": (("first", "beginning", "start", "head", "prefix", "leading"), ("last", "end", "tail", "suffix")),
    "truth": (("true", "correct", "right", "valid", "yes"), ("false", "incorrect", "wrong", "invalid")),
    "transfer": (("upload", "push", "send", "output", "write"), ("download", "pull", "receive", "input", "read")),
    "encryption": (
        ("encrypt", "encode", "compress", "serialize", "serialise", "zip"),
        ("decrypt", "decode", "decompress", "deserialize", "deserialise", "unzip"),
    ),
    "opening": (("open", "show", "visible", "expand"), ("close", "hide", "hidden", "collapse")),
    "locking": (("lock",), ("unlock",)),
    "connection": (
        ("connect", "login", "log in", "sign in", "subscribe", "join", "attach"),
        ("disconnect", "logout", "log out", "sign out", "unsubscribe", "leave", "detach"),
    ),
    "installation": (("install", "load", "mount", "register"), ("uninstall", "unload", "unmount", "unregister")),
    "outcome": (
        ("success", "succeed", "pass", "win", "profit", "benefit", "advantage", "pro", "strength"),
        ("failure", "fail", "lose", "loss", "drawback", "disadvantage", "con", "weakness"),
    ),
    "ability": (
        ("possible", "able", "supported", "safe", "secure", "legal", "likely"),
        ("impossible", "unable", "unsupported", "unsafe", "insecure", "illegal", "unlikely"),
    ),
    "access": (("public", "external", "remote", "global", "online"), ("private", "internal", "local", "offline")),
    "sync": (
        ("sync", "synchronous", "synchronously", "blocking"),
        ("async", "asynchronous", "asynchronously", "non-blocking"),
    ),
    "order": (
        ("ascending", "asc", "increasing", "forward", "forwards"),
        ("descending", "desc", "decreasing", "backward", "backwards", "reverse"),
    ),
    "sign": (("positive", "gain", "profit"), ("negative", "loss", "deficit")),
    "size": (
        ("big", "large", "huge", "long", "tall", "wide", "heavy", "high"),
        ("small", "little", "tiny", "short", "narrow", "light", "low"),
    ),
    "speed": (("fast", "quick", "quickly"), ("slow", "slowly")),
    "age": (("new", "newer", "newest", "young", "modern", "latest"), ("old", "older", "oldest", "legacy", "ancient")),
    "fullness": (("full", "filled"), ("empty",)),
    "requirement": (("required", "mandatory", "must", "compulsory", "always"), ("optional", "never")),
    "direction": (
        ("left", "north", "east", "upper", "inside", "inner"),
        ("right", "south", "west", "lower", "outside", "outer"),
    ),
    "temperature": (("hot", "warm", "heat"), ("cold", "cool", "chill")),
    "trade": (("buy", "purchase", "borrow"), ("sell", "lend", "repay")),
    "feeling": (("love", "agree", "happy", "approve"), ("dislike", "hate", "disagree", "sad", "disapprove")),
    "gender": (
        ("male", "man", "men", "boy", "boys", "he", "him", "his", "father", "son", "brother", "husband"),
        ("female", "woman", "women", "girl", "girls", "she", "her", "hers", "mother", "daughter", "sister", "wife"),
    ),
    "inclusion_all": (("all", "every", "everything", "everyone", "always"), ("none", "nothing", "nobody", "some")),
    "majority": (("majority", "most"), ("minority",)),
    "light": (("light", "bright", "day"), ("dark", "dim", "night")),
    "wetness": (("wet",), ("dry",)),
    "upper": (("uppercase", "upper case", "capital"), ("lowercase", "lower case")),
    "server": (("client", "frontend", "front end"), ("server", "backend", "back end")),
    "static": (("static", "compile time"), ("dynamic", "runtime", "run time")),
    "persistence": (("save", "store", "persist", "dump", "serialize"), ("load", "restore", "deserialize")),
    "evaluation_split": (("train", "training", "fit"), ("test", "testing", "evaluate", "validation", "inference")),
    "cardinality": (("single", "singular", "individual"), ("multiple", "many", "several", "plural")),
    "difficulty": (("easy", "simple", "easier", "simpler", "trivial"), ("hard", "difficult", "harder", "complex")),
    "import_export": (("import", "imports", "imported"), ("export", "exports", "exported")),
}


def _inflections(base: str) -> set[str]:
    forms = {base, base + "s", base + "es", base + "ed", base + "d", base + "ing", base + "er", base + "est"}
    if base.endswith("e"):
        forms |= {base[:-1] + "ing", base[:-1] + "ed"}
    if base.endswith("y"):
        forms |= {base[:-1] + "ies", base[:-1] + "ied"}
    if len(base) >= 3 and base[-1] not in "aeiouwy" and base[-2] in "aeiou" and base[-3] not in "aeiou":
        forms |= {base + base[-1] + "ed", base + base[-1] + "ing", base + base[-1] + "er", base + base[-1] + "est"}
    return forms


def _build_antonym_index() -> dict[str, list[tuple[str, int]]]:
    index: dict[str, list[tuple[str, int]]] = {}
    for concept, sides in _ANTONYM_CONCEPTS.items():
        for side, words in enumerate(sides):
            for word in words:
                forms = _inflections(word) if " " not in word and len(word) > 2 else {word}
                for form in (form.replace("-", " ") for form in forms):
                    entries = index.setdefault(form, [])
                    if (concept, side) not in entries:
                        entries.append((concept, side))
    return index


_ANTONYM_INDEX = _build_antonym_index()
_LOWER_WORD_RE = re.compile(r"[a-z]+")


def _polarity_words(text: str) -> Counter[tuple[str, int]]:
    """Concept sides named in `text`; a two-word phrase ("turn off") wins over its single words."""
    counts: Counter[tuple[str, int]] = Counter()
    words = _LOWER_WORD_RE.findall(text.lower())
    index = 0
    while index < len(words):
        pair = f"{words[index]} {words[index + 1]}" if index + 1 < len(words) else ""
        if pair in _ANTONYM_INDEX:
            counts.update(_ANTONYM_INDEX[pair])
            index += 2
            continue
        counts.update(_ANTONYM_INDEX.get(words[index], ()))
        index += 1
    return counts


def _compare_polarity(text_a: str, text_b: str) -> str | None:
    negations_a, negations_b = _negations(text_a), _negations(text_b)
    if negations_a != negations_b:
        return f"negation differs ({negations_a} vs {negations_b})"
    if reason := _prefix_negation(text_a, text_b):
        return reason
    words_a, words_b = _polarity_words(text_a), _polarity_words(text_b)
    # A swap moves a concept's count from one side to the other ("enable" -> "disable"). A side that
    # only appears or vanishes is a synonym of another concept ("add" vs "include") or a dropped
    # detail ("save and load" vs "store and retrieve"), which the other checks judge.
    for concept in {concept for concept, _side in words_a + words_b}:
        towards_a = words_a[(concept, 0)] - words_b[(concept, 0)]
        towards_b = words_a[(concept, 1)] - words_b[(concept, 1)]
        if towards_a * towards_b < 0:
            return f"opposite wording differs ({concept})"
    return None


# --- Small edits -----------------------------------------------------------------------------------

# A content word added or dropped while everything else stays ("list the hotels" vs "list the free
# hotels") narrows or widens the request. Substitutions are left alone: tight synonym swaps ("loads" /
# "fetches") are the commonest paraphrase, and without a lexicon they look like any other swap.
_SMALL_EDIT_TOKENS = 2
_TOKEN_RE = re.compile(r"[a-z0-9]+")
_FILLER_TEXT = """
a an the please kindly just can could would will you me i my do does did is are be what whats how
tell give show let us we some any this that it its really exactly briefly of to for so yes
"""
_FILLER = frozenset(_FILLER_TEXT.split())


# A long shared passage (a document, a problem set) with another question next to it: the embedding
# cannot tell (it reads 256 word pieces and the passage dominates). Paraphrases in the data share a
# median of 11 words in order, such MMLU question pairs 39: past this many shared words, rewriting
# this many content words is another question.
_SHARED_WORDS = 30
_CHANGED_CONTENT_WORDS = 4


# Common synonyms of requests, so that the one-word rule below does not refuse the most usual rewording.
_SYNONYM_GROUPS = (
    ("quick", "fast", "rapid", "speedy"),
    ("big", "large", "huge"),
    ("small", "little", "tiny"),
    ("begin", "start", "commence", "initiate"),
    ("finish", "end", "complete", "conclude"),
    ("show", "display", "present"),
    ("get", "obtain", "retrieve", "fetch", "acquire", "load"),
    ("make", "create", "build", "generate", "construct", "produce"),
    ("use", "utilize", "utilise", "employ", "apply"),
    ("explain", "describe", "clarify", "outline"),
    ("help", "assist", "aid", "support"),
    ("choose", "pick", "select"),
    ("buy", "purchase"),
    ("answer", "reply", "respond"),
    ("contain", "include", "comprise", "hold"),
    ("define", "specify", "set", "configure"),
    ("recommend", "suggest", "advise"),
    ("return", "yield", "give", "produce"),
    ("way", "method", "technique", "approach", "means"),
    ("run", "execute", "launch"),
    ("example", "instance", "illustration", "sample"),
    ("need", "require", "necessary", "needed", "required"),
    ("goal", "purpose", "aim", "objective"),
    ("task", "job"),
    ("error", "exception", "failure"),
    ("change", "modify", "alter", "adjust"),
    ("remove", "delete", "erase"),
    ("add", "append", "insert"),
    ("save", "store", "persist"),
    ("find", "locate", "discover"),
    ("check", "verify", "confirm", "inspect", "examine"),
    ("allow", "enable", "let", "permit"),
    ("provide", "offer", "supply", "furnish"),
    ("important", "essential", "crucial", "key"),
    ("several", "various", "multiple", "many"),
    ("whole", "entire", "full"),
    ("simple", "easy", "straightforward"),
    ("specific", "particular", "certain"),
    ("about", "regarding", "concerning"),
)
_SYNONYM_INDEX: dict[str, set[int]] = {}
for _group_number, _group in enumerate(_SYNONYM_GROUPS):
    for _word in _group:
        _SYNONYM_INDEX.setdefault(_word, set()).add(_group_number)


def _synonym_groups(word: str) -> set[int]:
    for base in (word, _singular(word), word.removesuffix("ed"), word.removesuffix("d"), word.removesuffix("ing")):
        if base in _SYNONYM_INDEX:
            return _SYNONYM_INDEX[base]
    return set()


def _synonyms(left: str, right: str) -> bool:
    return bool(_synonym_groups(left) & _synonym_groups(right))


def _inflects(left: str, right: str) -> bool:
    left, right = sorted((left, right), key=len)
    return any(right.startswith(base) and len(right) - len(base) <= 3 for base in (left, left.removesuffix("e")))


def _content(words: Sequence[str]) -> list[str]:
    return [word for word in words if word not in _FILLER]


def _compare_small_edit(chunks: list[tuple[list[str], list[str]]]) -> str | None:
    content = [(_content(left), _content(right)) for left, right in chunks]
    content = [(left, right) for left, right in content if left or right]
    for left, right in content:
        if not (left and right):
            return f"a word is added or dropped: {' '.join(left or right)!r}"
    # One word swapped for one other, all else equal: that word is the whole difference, and an
    # unknown antonym ("new"/"existing", "vice"/"virtue") looks exactly like a synonym.
    if len(content) == 1 and len(content[0][0]) == len(content[0][1]) == 1:
        left, right = content[0][0][0], content[0][1][0]
        if not (_inflects(left, right) or _synonyms(left, right)):
            return f"one word swapped: {left!r} vs {right!r}"
    return None


def _reordered(words_a: list[str], words_b: list[str]) -> bool:
    """The same content words in another order: roles swapped ("A's momentum doubles its energy")."""
    content_a, content_b = _content(words_a), _content(words_b)
    return len(content_a) >= 3 and content_a != content_b and Counter(content_a) == Counter(content_b)


def _swapped_roles(chunks: list[tuple[list[str], list[str]]], set_a: set[str], set_b: set[str]) -> bool:
    """Words trading places ("the tortoise is twice as old as the parrot" / "the parrot ... the
    tortoise"): two or more one-for-one replacements by words that both prompts contain elsewhere."""
    swaps = [
        (left[0], right[0])
        for left, right in chunks
        if len(left) == len(right) == 1 and left[0] not in _FILLER and left[0] in set_b and right[0] in set_a
    ]
    return len(swaps) >= 2


def _compare_edits(text_a: str, text_b: str) -> str | None:
    words_a, words_b = _TOKEN_RE.findall(text_a.lower()), _TOKEN_RE.findall(text_b.lower())
    matcher = SequenceMatcher(a=words_a, b=words_b, autojunk=False)
    chunks = [(words_a[i1:i2], words_b[j1:j2]) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"]
    changed = sum(max(len(left), len(right)) for left, right in chunks)
    if changed <= _SMALL_EDIT_TOKENS:
        return _compare_small_edit(chunks)
    if _reordered(words_a, words_b) or _swapped_roles(chunks, set(words_a), set(words_b)):
        return "the same words in another order"
    shared = sum(block.size for block in matcher.get_matching_blocks())
    if shared < _SHARED_WORDS:
        return None
    rewritten = [
        (left, right) for left, right in chunks if not (len(left) == len(right) and all(map(_inflects, left, right)))
    ]
    content = max(
        sum(len(_content(left)) for left, _ in rewritten), sum(len(_content(right)) for _, right in rewritten)
    )
    if content >= _CHANGED_CONTENT_WORDS:
        left, right = max(rewritten, key=lambda chunk: len(chunk[0]) + len(chunk[1]))
        return f"same text, one passage differs: {' '.join(left)[:60]!r} vs {' '.join(right)[:60]!r}"
    return None


# --- Symbols ----------------------------------------------------------------------------------------

# Formulas, logic and single-letter variables ("~M ⊃ N", "set B") carry the question in symbols that
# no word check sees; natural-language paraphrases keep them as they are.
_SYMBOL_RE = re.compile(
    r"[=+*/^<>|~&%#@\\∀-⋿⌀-⏿←-⇿Α-Ωα-ω]|(?<![\w'’])[B-HJ-Z](?![\w'’])|(?<![\w'’.])[b-hj-z](?![\w'’.])"
)


def _compare_symbols(text_a: str, text_b: str) -> str | None:
    symbols_a, symbols_b = Counter(_SYMBOL_RE.findall(text_a)), Counter(_SYMBOL_RE.findall(text_b))
    if symbols_a != symbols_b:
        return f"symbols differ: {''.join(sorted((symbols_a - symbols_b).elements()))!r} vs " + repr(
            "".join(sorted((symbols_b - symbols_a).elements()))
        )
    return None


# --- Multiple-choice options ----------------------------------------------------------------------

_OPTION_RE = re.compile(r"^\s*\(?([A-J])[.)]\s*(.*?)\s*$")


def _options(text: str) -> list[tuple[str, str]]:
    """Answer options "A. ...", "B) ..." of a multiple-choice question, in order."""
    options = [match.groups() for line in text.splitlines() if (match := _OPTION_RE.match(line))]
    return [(letter, _normalized(option)) for letter, option in options] if len(options) >= 2 else []


def _compare_options(text_a: str, text_b: str) -> str | None:
    options_a, options_b = _options(text_a), _options(text_b)
    if options_a != options_b:
        return "answer options differ"
    if options_a and _stem_words(text_a) != _stem_words(text_b):
        # The answer is a letter: with the same options, a reworded question usually asks something
        # else ("the strongest" vs "the least strong" standard), so only tiny edits may differ.
        words_a, words_b = _stem_words(text_a), _stem_words(text_b)
        matcher = SequenceMatcher(a=words_a, b=words_b, autojunk=False)
        chunks = [(words_a[i1:i2], words_b[j1:j2]) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"]
        if sum(max(len(left), len(right)) for left, right in chunks) > _SMALL_EDIT_TOKENS:
            return "question differs (same options)"
        return _compare_small_edit(chunks)
    return None


def _stem_words(text: str) -> list[str]:
    stem = "\n".join(line for line in text.splitlines() if not _OPTION_RE.match(line))
    return _TOKEN_RE.findall(stem.lower())


# --- Putting it together --------------------------------------------------------------------------

_MAX_LENGTH_RATIO = 2.0  # paraphrase pairs in the data stay under 1.8x; longer gaps add or drop content


def _compare_request(text_a: str, text_b: str) -> str | None:
    """Why two versions of a user's request may need different answers, or None when none is found."""
    if _normalized(text_a) == _normalized(text_b):
        return None
    length_a, length_b = max(len(text_a), 1), max(len(text_b), 1)
    if max(length_a, length_b) / min(length_a, length_b) > _MAX_LENGTH_RATIO:
        return "lengths differ too much"
    return (
        _compare_options(text_a, text_b)
        or _compare_numbers(text_a, text_b)
        or _compare_polarity(text_a, text_b)
        or _entity_reasons(text_a, text_b)
        or _compare_symbols(text_a, text_b)
        or _compare_edits(text_a, text_b)
    )


def _turns(messages: Sequence[Message]) -> list[tuple[str, str]]:
    return [(str(message.get("role", "user")), message_text(message)) for message in messages]


def _compare_turn(index: int, role: str, text_a: str, text_b: str) -> str | None:
    # Only what the user wrote may be paraphrased; system prompts, earlier answers and tool output
    # shape the answer verbatim and must be equal.
    if role == "user":
        reason = _compare_request(text_a, text_b)
        return f"turn {index + 1} ({role}): {reason}" if reason else None
    if _normalized(text_a) != _normalized(text_b):
        return "system prompt differs" if role in ("system", "developer") else f"turn {index + 1} ({role}) differs"
    return None


def verify_semantic_match(query_messages: Sequence[Message], candidate_messages: Sequence[Message]) -> VerifyResult:
    """Whether the cached conversation `candidate_messages` may answer `query_messages`."""
    query, candidate = _turns(query_messages), _turns(candidate_messages)
    if [role for role, _ in query] != [role for role, _ in candidate]:
        roles_q = [role for role, _ in query if role in ("system", "developer")]
        roles_c = [role for role, _ in candidate if role in ("system", "developer")]
        return VerifyResult(False, "system prompt differs" if roles_q != roles_c else "turn structure differs")
    for index, ((role, text_q), (_, text_c)) in enumerate(zip(query, candidate, strict=True)):
        reason = _compare_turn(index, role, text_q, text_c)
        if reason:
            return VerifyResult(False, reason)
    return VerifyResult(True, "numbers, names, polarity and context agree")
