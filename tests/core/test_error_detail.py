"""The page shows the server's own reasons for a refused request (R8's 422 body)."""
from app.export_hook import error_detail


def test_server_422_field_and_reason_are_shown():
    body = {"detail": [{"field": "pixel_size_um", "reason": "Input should be greater than or equal to 0.001"}]}
    assert error_detail(body, 422) == "pixel_size_um: Input should be greater than or equal to 0.001"


def test_fastapi_loc_msg_items_and_plain_strings_still_work():
    assert error_detail({"detail": [{"loc": ["body", "x"], "msg": "bad"}]}, 422) == "x: bad"
    assert error_detail({"detail": "already downloaded"}, 409) == "already downloaded"
    assert error_detail(None, 502) == "HTTP 502"
