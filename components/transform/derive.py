"""Features derived from a raw column: parts of a date-time string, or a number read out of a string.

A feature with `derive:` reads its raw column (`source:`, or its own name) and turns it into a number before
its kind (numeric, bucketized, identity...) applies, inside the Transform graph, so the served model derives
it from the raw request exactly as training did. Two halves, one grammar:

- `derived_values` is the TensorFlow half, in the preprocessing_fn;
- `check_text` is the Python half, at ingest: a value the TensorFlow half could not read is rejected there
  as `bad_metadata` with its reason, instead of failing or silently defaulting inside Transform.

A serving request with a malformed or missing value gets the feature's `default` (0 when none), like any
missing value.

Date-times read: `YYYY-MM-DD`, optionally followed by ` HH:MM[:SS[.fraction]]` (or `T` before the time); the
date's separators may also be `/` or `:` (EXIF writes `2019:06:01 05:42:10`). No time zone: the clock time
as the camera wrote it, which is what "hour of the day" means for a camera trap.
"""

from __future__ import annotations

import datetime
import math
import re

import tensorflow as tf

from components.transform.settings import DATETIME_PARTS

# One period of each part, for its cyclical encoding: 23 h is next to 0 h, December next to January.
PERIODS = {"hour": 24, "day_of_week": 7, "month": 12, "day_of_year": 366}

# RE2 (TensorFlow) and Python `re` read these the same way.
DATETIME_PATTERN = r"\s*\d{4}[-/:]\d{1,2}[-/:]\d{1,2}(?:[ T]\d{1,2}:\d{1,2}(?::\d{1,2}(?:\.\d+)?)?)?\s*"
NUMBER_PATTERN = r"[^0-9]*?(-?[0-9]+(?:\.[0-9]+)?).*"
_CUMULATIVE_DAYS = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)


def parse_kind(derive: str) -> str:
    """What a raw column must hold for this derivation: "datetime" or "number"."""
    return "datetime" if derive in DATETIME_PARTS else "number"


def check_text(derive: str, text: str) -> str | None:
    """Why `text` cannot feed `derive`, or None if it can. Empty text is a missing value, not an error."""
    if not text.strip():
        return None
    if parse_kind(derive) == "number":
        if re.fullmatch(NUMBER_PATTERN, text) is None:
            return f"{text!r} holds no number"
        return None
    if re.fullmatch(DATETIME_PATTERN, text) is None:
        return f"{text!r} is not a date-time (YYYY-MM-DD[ HH:MM[:SS]])"
    year, month, day, hour, minute, second = (_datetime_numbers(text) + [0, 0, 0])[:6]
    try:
        datetime.datetime(year, month, day, hour, minute, min(second, 59))
    except ValueError as error:
        return f"{text!r} is not a date-time: {error}"
    return None


def python_value(derive: str, cyclical: str, text: str) -> float:
    """The derived value in plain Python: what the TensorFlow half computes, for tests and readers."""
    if parse_kind(derive) == "number":
        found = re.fullmatch(NUMBER_PATTERN, text)
        return float(found.group(1))
    year, month, day, hour = (_datetime_numbers(text) + [0, 0, 0])[:4]
    moment = datetime.date(year, month, day)
    value = {
        "hour": hour,
        "day_of_week": moment.weekday(),
        "month": month,
        "day_of_year": moment.timetuple().tm_yday,
    }[derive]
    if cyclical:
        angle = 2 * math.pi * value / PERIODS[derive]
        return math.sin(angle) if cyclical == "sin" else math.cos(angle)
    return float(value)


def _datetime_numbers(text: str) -> list[int]:
    return [int(float(part)) for part in re.findall(r"[0-9]+(?:\.[0-9]+)?", text)][:6]


def derived_values(raw: tf.Tensor, derive: str, cyclical: str, default: float) -> tf.Tensor:
    """[batch] strings (or numbers, for `number`) -> [batch] float32; unreadable or missing -> `default`."""
    if parse_kind(derive) == "number" and raw.dtype != tf.string:
        return tf.cast(raw, tf.float32)
    text = raw if raw.dtype == tf.string else tf.strings.as_string(raw)
    fill = tf.fill(tf.shape(text), tf.constant(default, tf.float32))
    if parse_kind(derive) == "number":
        valid = tf.strings.regex_full_match(text, NUMBER_PATTERN)
        digits = tf.strings.regex_replace(text, "^" + NUMBER_PATTERN + "$", r"\1")
        numbers = tf.strings.to_number(tf.where(valid, digits, "0"), tf.float32)
        return tf.where(valid, numbers, fill)
    valid = tf.strings.regex_full_match(text, DATETIME_PATTERN)
    spaced = tf.strings.strip(tf.strings.regex_replace(tf.where(valid, text, "1970-01-01"), r"[^0-9.]+", " "))
    parts = tf.strings.split(spaced).to_tensor(default_value="0", shape=[None, 6])
    numbers = tf.cast(tf.strings.to_number(parts, tf.float64), tf.int64)
    year, month, day, hour = numbers[:, 0], numbers[:, 1], numbers[:, 2], numbers[:, 3]
    if derive == "hour":
        value = hour
    elif derive == "month":
        value = month
    elif derive == "day_of_week":
        value = (_days_since_epoch(year, month, day) + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0.
    else:
        leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
        before = tf.gather(tf.constant(_CUMULATIVE_DAYS, tf.int64), tf.clip_by_value(month - 1, 0, 11))
        value = before + day + tf.cast(leap & (month > 2), tf.int64)
    if cyclical:
        # Looked up, not computed: TensorFlow's vectorised sin and cos differ from the scalar ones in the last
        # bit, and which elements of a batch take which path depends on the batch size, so Transform's Beam
        # batches and a serving request would not give the same float (the skew test compares bits).
        period = PERIODS[derive]
        angles = [2.0 * math.pi * step / period for step in range(period + 1)]
        table = tf.constant([math.sin(a) if cyclical == "sin" else math.cos(a) for a in angles], tf.float32)
        result = tf.gather(table, tf.clip_by_value(value, 0, period))
    else:
        result = tf.cast(value, tf.float32)
    return tf.where(valid, result, fill)


def _days_since_epoch(year: tf.Tensor, month: tf.Tensor, day: tf.Tensor) -> tf.Tensor:
    """Days from 1970-01-01 to a proleptic Gregorian date, in integer arithmetic (H. Hinnant's days_from_civil)."""
    year = year - tf.cast(month <= 2, tf.int64)
    era = tf.math.floordiv(year, 400)
    year_of_era = year - era * 400
    day_of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468
