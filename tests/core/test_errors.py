"""R8's one error shape (``app.errors``): what the server answers, the fakes answer and the
page shows."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.errors import error_text, field_errors, validation_errors
from app.models import ExportOptions
from app.ports import HttpResponse

from .fakes import Scheduler, FakeServer


def _invalid(options: dict) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        ExportOptions.model_validate(options)
    return caught.value


def test_validation_errors_name_the_field_path_and_the_reason():
    body = validation_errors(_invalid({"pixel_size_um": 0, "visualization": {"opacity": 2}}))
    assert [item["field"] for item in body["detail"]] == ["visualization.opacity", "pixel_size_um"]
    assert all(set(item) == {"field", "reason"} and item["reason"] for item in body["detail"])
    nothing = validation_errors(_invalid({"annotation_formats": []}))
    assert nothing["detail"][0]["field"] == "options"  # a rule over several fields


def test_the_page_shows_the_servers_field_and_reason():
    body = field_errors([("pixel_size_um", "Input should be greater than or equal to 0.001")])
    assert error_text(body, 422) == "pixel_size_um: Input should be greater than or equal to 0.001"
    two = field_errors([("start_token", "too long"), ("", "nothing to export")])
    assert error_text(two, 422) == "start_token: too long; nothing to export"
    assert error_text({"detail": "already downloaded"}, 409) == "already downloaded"
    assert error_text(None, 502) == "HTTP 502" and error_text({"detail": []}, 422) == "HTTP 422"


def test_the_fake_server_refuses_bad_options_with_the_servers_body():
    bad = {"pixel_size_um": 0}
    answer = FakeServer(Scheduler())._route("POST", "/api/projects/1/exports", bad)
    assert answer == HttpResponse(422, validation_errors(_invalid(bad)))
