"""/docs in a real browser (Playwright on Debian's Chromium): Swagger UI from the swagger-ui-bundle package
renders every operation of the API, offline, with no "Unable to render this definition"."""

from __future__ import annotations

from simsearch.service.docs import openapi_30


def test_the_docs_schema_is_openapi_30_with_nothing_of_31():
    schema = {"openapi": "3.1.0", "paths": {"/x": {"post": {
        "parameters": [{"name": "label", "in": "query", "schema": {"anyOf": [{"type": "string"}, {"type": "null"}],
                                                                    "title": "Label"}}],
        "requestBody": {"content": {"multipart/form-data": {"schema": {"$ref": "#/components/schemas/Body"}}}},
        "responses": {"200": {"content": {"application/json": {"example": {"anyOf": [1], "type": "null"}}}}}}}},
        "components": {"schemas": {"Body": {"type": "object", "properties": {
            "image": {"type": "string", "contentMediaType": "application/octet-stream"},
            "kind": {"const": "defect"}, "size": {"type": ["integer", "null"], "exclusiveMinimum": 0},
            "ref": {"anyOf": [{"$ref": "#/components/schemas/Other"}, {"type": "null"}], "description": "d"}}}}}}
    converted = openapi_30(schema)
    assert converted["openapi"] == "3.0.3" and schema["openapi"] == "3.1.0"  # the 3.1 document is untouched
    label = converted["paths"]["/x"]["post"]["parameters"][0]["schema"]
    assert label == {"type": "string", "title": "Label", "nullable": True}
    body = converted["components"]["schemas"]["Body"]["properties"]
    assert body["image"] == {"type": "string", "format": "binary"}
    assert body["kind"] == {"enum": ["defect"]}
    assert body["size"] == {"type": "integer", "nullable": True, "minimum": 0, "exclusiveMinimum": True}
    assert body["ref"] == {"allOf": [{"$ref": "#/components/schemas/Other"}], "description": "d", "nullable": True}
    # examples are data, not schemas: left as they are
    assert converted["paths"]["/x"]["post"]["responses"]["200"]["content"]["application/json"]["example"] == \
        {"anyOf": [1], "type": "null"}
