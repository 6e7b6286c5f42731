"""How many pages a family may ask for: a rate per minute and a quota per day.

Both are counted in the cache so that every server process sees the same figures (Redis
through django-redis in production, Django's database cache embedded). A *unit* is one
cache key, taken with ``cache.add``: SET NX on Redis, an INSERT on the database cache, so
when two requests race for the last free unit both add the same key and only one wins.
``cache.incr`` would be shorter on Redis, but the database cache implements it as a read
then a write, where two racing requests can both read "one left"; ``add`` is atomic on
both backends, so one mechanism serves both.

- The rate: ``GENERATION_RATE_PER_MINUTE`` generation requests (make a page, write a page,
  make parts again) per clock minute (a fixed window, keys named after the minute; a burst
  across a minute's edge can reach twice the rate, which is fine for this guard).
- The quota: ``DAILY_PAGE_QUOTA`` new pages per day, the day ending at midnight in
  ``settings.TIME_ZONE``. A page holds a unit while it is made; the unit is kept when the
  page is kept in the book and given back when the run fails or is stopped. A hold
  expires by itself shortly after the longest a run may take, so a server that dies
  mid-page does not eat the unit for the rest of the day.
A limit of 0 switches that limit off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.cache import cache
from django.utils import formats
from django.utils.translation import gettext, ngettext

from books.domain import DomainError

MINUTE = 60
# A unit's key outlives its minute a little so a clock a second off between servers cannot reuse it.
RATE_KEY_MARGIN_SECONDS = 5
# A held page unit lapses this long after the run's own time limit (GENERATION_TIMEOUT).
HOLD_MARGIN_SECONDS = 60
KEPT_MARGIN_SECONDS = 60 * 60

HELD, KEPT = "held", "kept"


class GenerationLimited(DomainError):
    """A limit is reached; ``retry_after`` is how many seconds until it is not.

    The sentence is built when it is shown (``str``), like every ``DomainError``'s, so it
    comes out in the language of whoever reads it; it needs plurals, hence its own ``__str__``.
    """

    status = 429

    def __init__(self, *, retry_after: int) -> None:
        super().__init__("")
        self.retry_after = max(int(retry_after), 1)


class RateLimited(GenerationLimited):
    def __str__(self) -> str:
        minutes = max(math.ceil(self.retry_after / MINUTE), 1)
        return ngettext(
            "That is a lot of pages in a short time! Please wait %(minutes)s minute and try again.",
            "That is a lot of pages in a short time! Please wait %(minutes)s minutes and try again.",
            minutes,
        ) % {"minutes": minutes}


class QuotaReached(GenerationLimited):
    def __init__(self, *, quota: int, now: datetime, next_midnight: datetime) -> None:
        super().__init__(retry_after=_seconds(now, next_midnight))
        self.quota, self.now, self.next_midnight = quota, now, next_midnight

    def __str__(self) -> str:
        return _quota_sentence(self.quota, self.now, self.next_midnight)


@dataclass(frozen=True)
class PageHold:
    """The unit of today's quota held by the page being made."""

    key: str


def _now() -> datetime:
    return datetime.now(UTC)


def _take_unit(keys: list[str], *, timeout: int, value: str = HELD) -> str | None:
    """Take one free unit among ``keys``, or None when all are taken. The ``add`` decides, not the read."""
    taken = cache.get_many(keys)  # one round trip to skip the units already gone
    for key in keys:
        if key not in taken and cache.add(key, value, timeout=timeout):
            return key
    return None


# -- the rate ---------------------------------------------------------------------------------------


def take_rate_unit(user_id: int, *, now: datetime | None = None) -> None:
    """Count one generation request of this user, or refuse it with ``RateLimited``."""
    rate: int = settings.LITTLEWRITER["GENERATION_RATE_PER_MINUTE"]
    if rate <= 0:
        return
    moment = (now or _now()).timestamp()
    window = int(moment // MINUTE)
    seconds_left = math.ceil((window + 1) * MINUTE - moment)
    keys = [f"usage:rate:{user_id}:{window}:{unit}" for unit in range(1, rate + 1)]
    if _take_unit(keys, timeout=seconds_left + RATE_KEY_MARGIN_SECONDS) is None:
        raise RateLimited(retry_after=seconds_left)


# -- the daily quota ------------------------------------------------------------------------------


def _zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE or "UTC")


def _day_and_next_midnight(now: datetime) -> tuple[str, datetime]:
    local = now.astimezone(_zone())
    next_midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tzinfo=_zone())
    return local.date().isoformat(), next_midnight


def hold_page_unit(user_id: int, *, now: datetime | None = None) -> PageHold | None:
    """Hold one unit of today's quota for a new page, or refuse with ``QuotaReached``."""
    quota: int = settings.LITTLEWRITER["DAILY_PAGE_QUOTA"]
    if quota <= 0:
        return None
    moment = now or _now()
    day, next_midnight = _day_and_next_midnight(moment)
    keys = [f"usage:pages:{user_id}:{day}:{unit}" for unit in range(1, quota + 1)]
    hold_seconds = int(settings.LITTLEWRITER["GENERATION_TIMEOUT_SECONDS"]) + HOLD_MARGIN_SECONDS
    key = _take_unit(keys, timeout=hold_seconds)
    if key is None:
        raise QuotaReached(quota=quota, now=moment, next_midnight=next_midnight)
    return PageHold(key=key)


def keep_page_unit(hold: PageHold | None, *, now: datetime | None = None) -> None:
    """The page is in the book: its unit stays taken until the day is over."""
    if hold is None:
        return
    moment = now or _now()
    _, next_midnight = _day_and_next_midnight(moment)
    # Our own key (the hold cannot have lapsed: the run ends before it does), so a plain set.
    cache.set(hold.key, KEPT, timeout=_seconds(moment, next_midnight) + KEPT_MARGIN_SECONDS)


def give_back_page_unit(hold: PageHold | None) -> None:
    """No page came of it (failed, stopped, refused): the unit is free again."""
    if hold is not None and cache.get(hold.key) == HELD:
        cache.delete(hold.key)


def pages_counted_today(user_id: int, *, now: datetime | None = None) -> int:
    """How many units of today's quota are taken (kept pages and pages being made)."""
    quota: int = settings.LITTLEWRITER["DAILY_PAGE_QUOTA"]
    if quota <= 0:
        return 0
    day, _ = _day_and_next_midnight(now or _now())
    return len(cache.get_many([f"usage:pages:{user_id}:{day}:{unit}" for unit in range(1, quota + 1)]))


def _seconds(start: datetime, end: datetime) -> int:
    return max(math.ceil((end - start).total_seconds()), 1)


def _quota_sentence(quota: int, now: datetime, next_midnight: datetime) -> str:
    wait_minutes = max(math.ceil((next_midnight - now).total_seconds() / MINUTE), 1)
    if wait_minutes >= 2 * MINUTE:
        hours = wait_minutes // MINUTE
        wait = ngettext("about %(count)s hour", "about %(count)s hours", hours) % {"count": hours}
    else:
        wait = ngettext("%(count)s minute", "%(count)s minutes", wait_minutes) % {"count": wait_minutes}
    pages = ngettext("%(count)s page", "%(count)s pages", quota) % {"count": quota}
    return gettext(
        "You have made %(pages)s today, as many as one day allows. "
        "You can make more from %(time)s (%(zone)s), in %(wait)s."
    ) % {
        "pages": pages,
        "time": formats.time_format(next_midnight, "H:i"),
        "zone": next_midnight.tzname() or settings.TIME_ZONE,
        "wait": wait,
    }
