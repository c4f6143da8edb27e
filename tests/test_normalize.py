from datetime import UTC, datetime

import pytest

from podrec.ingest.normalize import (
    FieldError,
    clean_text,
    normalise_language,
    parse_bool,
    parse_categories,
    parse_datetime,
    parse_duration,
)


@pytest.mark.parametrize(("raw", "seconds"), [
    ("3600", 3600), ("1:00:00", 3600), ("60:00", 3600), ("01:02:03", 3723), ("45", 45),
    (2739, 2739), (12.6, 13), ("1h 2m", 3720), ("", None), (None, None), ("90.4", 90),
])
def test_durations_in_any_common_form_become_seconds(raw, seconds):
    assert parse_duration(raw) == seconds


@pytest.mark.parametrize("raw", ["an hour", "1:xx", "-5:00", True])
def test_unreadable_duration_says_what_was_expected(raw):
    with pytest.raises(FieldError, match="duration"):
        parse_duration(raw)


@pytest.mark.parametrize(("raw", "expected"), [
    ("2017-12-01 00:09:47+00", datetime(2017, 12, 1, 0, 9, 47, tzinfo=UTC)),
    ("2017-12-01T02:09:47+02:00", datetime(2017, 12, 1, 0, 9, 47, tzinfo=UTC)),
    ("Sat, 02 Dec 2017 17:08:50 -0500", datetime(2017, 12, 2, 22, 8, 50, tzinfo=UTC)),
    ("1512086987", datetime(2017, 12, 1, 0, 9, 47, tzinfo=UTC)),
    (1512086987000, datetime(2017, 12, 1, 0, 9, 47, tzinfo=UTC)),
    ("2021-08-01", datetime(2021, 8, 1, tzinfo=UTC)),
])
def test_dates_become_utc(raw, expected):
    assert parse_datetime(raw) == expected


def test_unparseable_date_is_an_error():
    with pytest.raises(FieldError, match="ISO 8601"):
        parse_datetime("last tuesday")


def test_html_becomes_clean_text_without_promotional_boilerplate():
    raw = ("<p>In this episode, Phil &amp; Janelle talk&nbsp;movies.</p><p>Support this podcast"
           " at https://anchor.fm/x/support</p><script>x()</script><br/>Subscribe on Apple "
           "Podcasts!<ul><li>Learn more about your ad choices. Visit megaphone.fm</li></ul>")
    assert clean_text(raw) == "In this episode, Phil & Janelle talk movies."


def test_categories_from_lists_pipes_and_python_style_strings():
    assert parse_categories("Arts | Books | Arts") == ["Arts", "Books"]
    assert parse_categories("['Business', 'Investing']") == ["Business", "Investing"]
    assert parse_categories(["True Crime"]) == ["True Crime"]
    assert parse_categories("Commentary, News") == ["Commentary", "News"]


def test_flags_and_languages():
    assert parse_bool("yes") is True and parse_bool("clean") is False
    assert parse_bool("") is None
    with pytest.raises(FieldError):
        parse_bool("maybe")
    assert normalise_language("en-US") == "en"
    assert normalise_language("['zh-Hant']") == "zh"
    assert normalise_language("") is None
