"""Retry delays: exponential growth with full jitter, `Retry-After` honoured, capped, per key."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bespoke_operator.runtimes.kubernetes.backoff import Backoff
from bespoke_operator.runtimes.kubernetes.client import retry_after


def _top_of_range() -> float:
    return 1.0


def test_delays_double_with_each_failure_in_a_row_up_to_the_cap() -> None:
    backoff = Backoff(base=2, cap=60, random=_top_of_range)
    assert [backoff.failed("a") for _ in range(7)] == [2, 4, 8, 16, 32, 60, 60]


def test_full_jitter_draws_anywhere_below_the_ceiling() -> None:
    draws = iter([0.0, 0.5, 0.25])
    backoff = Backoff(base=2, cap=60, random=lambda: next(draws))
    assert [backoff.failed("a") for _ in range(3)] == [0.0, 2.0, 2.0]


def test_each_customization_backs_off_on_its_own_and_a_success_resets_it() -> None:
    backoff = Backoff(base=2, cap=60, random=_top_of_range)
    backoff.failed("a")
    backoff.failed("a")
    assert backoff.failed("b") == 2
    assert backoff.failed("a") == 8
    backoff.succeeded("a")
    assert backoff.failures("a") == 0
    assert backoff.failed("a") == 2


def test_retry_after_and_a_floor_lengthen_the_delay_but_never_past_the_cap() -> None:
    backoff = Backoff(base=2, cap=60, random=_top_of_range)
    assert backoff.failed("a", retry_after=10) == 10
    assert backoff.failed("a", retry_after=1) == 4  # the backoff is longer than the server asks
    assert backoff.failed("b", at_least=30) == 30
    assert backoff.failed("c", retry_after=3600) == 60


def test_a_nonsensical_range_is_refused_with_both_values() -> None:
    with pytest.raises(ValueError, match=r"base=5, cap=1"):
        Backoff(base=5, cap=1)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 12 ", 12.0),
        ("Fri, 04 Dec 2026 12:00:30 GMT", 30.0),
        ("Fri, 04 Dec 2026 11:00:00 GMT", 0.0),  # already past: retry now
        (None, None),
        ("", None),
        ("soon", None),
        ("-3", None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(
    header: str | None, seconds: float | None
) -> None:
    now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    assert retry_after(header, now) == seconds
