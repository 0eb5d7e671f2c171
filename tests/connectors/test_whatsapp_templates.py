"""WhatsApp templates read from the platform's list: what each needs filled in, and a
filled one in the Graph API's send form."""

from __future__ import annotations

import pytest

from connectors.whatsapp_templates import TemplateError, fill, read_template, requirements

MEDIA = {
    "name": "receipt",
    "language": "en",
    "status": "approved",
    "category": "UTILITY",
    "id": 77,
    "components": [
        {"type": "HEADER", "format": "DOCUMENT"},
        {"type": "BODY", "text": "Your receipt for {{1}}"},
        {"type": "BUTTONS", "buttons": [
            {"type": "COPY_CODE", "example": "SAVE10"},
            {"type": "URL", "text": "Shop", "url": "https://shop.example/"},
        ]},
    ],
}


def test_a_listed_template_is_read_with_what_it_needs():
    template = read_template(MEDIA)
    assert template is not None
    assert (template.external_id, template.status) == ("77", "APPROVED")
    assert requirements(template.components) == {
        "header": {"format": "document", "count": 1, "named": False, "names": []},
        "body": {"count": 1, "named": False, "names": []},
        # A URL without a placeholder takes nothing.
        "buttons": [{"index": 0, "type": "copy_code", "count": 1}],
    }
    assert read_template({"name": "no language"}) is None
    assert read_template("not an object") is None


def test_a_media_header_takes_a_link_and_a_code_button_its_code():
    template = read_template(MEDIA)
    assert template is not None
    filled = fill(template, ["May"], ["https://files.example/r.pdf"], ["SAVE10"])
    assert filled.payload["components"] == [
        {"type": "header", "parameters": [
            {"type": "document", "document": {"link": "https://files.example/r.pdf"}}]},
        {"type": "body", "parameters": [{"type": "text", "text": "May"}]},
        {"type": "button", "sub_type": "copy_code", "index": "0",
         "parameters": [{"type": "coupon_code", "coupon_code": "SAVE10"}]},
    ]
    assert filled.text == "Your receipt for May"
    with pytest.raises(TemplateError) as refused:
        fill(template, ["May"], ["not a link"], ["SAVE10"])
    assert refused.value.field == "parameters.header[0]"


def test_named_parameters_go_by_name_and_an_empty_value_is_refused():
    template = read_template({
        "name": "welcome", "language": "en", "status": "APPROVED",
        "parameter_format": "NAMED",
        "components": [{"type": "BODY", "text": "Hi {{first_name}}!"}],
    })
    assert template is not None
    filled = fill(template, {"first_name": "Ana"}, [], [])
    assert filled.payload == {
        "name": "welcome",
        "language": {"code": "en"},
        "components": [{"type": "body", "parameters": [
            {"type": "text", "text": "Ana", "parameter_name": "first_name"}]}],
    }
    assert filled.text == "Hi Ana!"
    with pytest.raises(TemplateError, match="has no parameter last_name"):
        fill(template, {"first_name": "Ana", "last_name": "B"}, [], [])
    plain = read_template({"name": "p", "language": "en", "status": "APPROVED",
                           "components": [{"type": "BODY", "text": "{{1}} and {{2}}"}]})
    assert plain is not None
    with pytest.raises(TemplateError, match="parameter 2 is empty"):
        fill(plain, ["a", " "], [], [])
