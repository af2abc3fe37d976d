"""The API tokens' shared models (``app.api_tokens``) and what the page says about a token
(``app.browser.texts.expiry_text``, ``token_summary``): pure, checked in CPython."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from app.api_tokens import EXPIRY_DAYS, TokenRequest, expiry_after
from app.browser.texts import expiry_text, token_summary

DAY_MS = 86_400_000
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
NOW_MS = NOW.timestamp() * 1000


def test_a_request_trims_its_name_and_wants_a_future_expiry_with_a_zone():
    assert TokenRequest(name="  notebook ").name == "notebook"
    future = datetime.now(timezone.utc) + timedelta(hours=1)
    assert TokenRequest(name="a", expires_at=future).expires_at == future
    for bad in ({"name": " "}, {"name": "a", "expires_at": "2001-01-01T00:00:00Z"},
                {"name": "a", "expires_at": (datetime.now() + timedelta(days=1)).isoformat()},
                {"name": "a" * 101}, {"name": "a", "scopes": []}):
        with pytest.raises(ValidationError):
            TokenRequest.model_validate(bad)


def test_the_pages_lifetimes_become_iso_times_or_none():
    assert EXPIRY_DAYS[0] == 30 and None in EXPIRY_DAYS
    assert expiry_after(None, NOW) is None
    assert expiry_after(7, NOW) == "2026-03-08T12:00:00+00:00"


@pytest.mark.parametrize("expires, text", [
    (None, "never expires"), (NOW_MS - 1, "expired"), (NOW_MS + 3_600_000, "expires today"),
    (NOW_MS + DAY_MS, "expires in 1 day"), (NOW_MS + 7 * DAY_MS - 60_000, "expires in 7 days"),
])
def test_expiry_text(expires, text):
    assert expiry_text(expires, NOW_MS) == text


def test_a_token_in_one_line():
    token = {"prefix": "chub_abcdefg", "created_at": "2026-02-27T12:00:00.000+00:00",
             "expires_at": "2026-03-31T12:00:00.000+00:00", "last_used_at": None, "expired": False}
    assert token_summary(token, NOW_MS) == "chub_abcdefg… · created 2 days ago · expires in 30 days · never used"
    used = {**token, "last_used_at": "2026-03-01T11:55:00.000+00:00", "expired": True}
    assert token_summary(used, NOW_MS) == "chub_abcdefg… · created 2 days ago · expired · last used 5 min ago"
