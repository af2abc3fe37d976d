"""``app.identity``: the browser id every tab of one browser shares, and the start token
that carries it to the job (C10)."""
from __future__ import annotations

import pytest

from app import identity

from .fakes import World


def test_the_browser_id_is_made_once_and_shared_by_the_tabs(world: World):
    a, b = world.storage.view("a"), world.storage.view("b")
    made = iter(["f00d", "beef"])
    assert identity.browser_id(a, lambda: next(made)) == "f00d"
    assert identity.browser_id(b, lambda: next(made)) == "f00d"  # the second tab finds it
    a.set(identity.BROWSER_KEY, "not.an.id")
    assert identity.browser_id(b, lambda: next(made)) == "beef"  # a malformed one is replaced
    with pytest.raises(ValueError):
        identity.browser_id(world.browser("b2").storage.view("c"), lambda: "a.b")


def test_a_start_token_begins_with_its_browser_and_fits_r1():
    token = identity.start_token("0123456789abcdef", "8f1c2e9a-5b6d-4c3e-9f10-aa22bb33cc44", 123456)
    assert token.startswith("0123456789abcdef.8f1c2e9a-") and token.endswith(".123456") and len(token) <= 64
    assert identity.token_browser(token) == "0123456789abcdef"
    assert identity.started_in("0123456789abcdef", token) and not identity.started_in("other", token)
    assert identity.token_browser(None) is None and not identity.started_in("b1", None)
    assert not identity.started_in(None, token)
