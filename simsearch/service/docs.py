"""/docs offline: Swagger UI from the swagger-ui-bundle package (no CDN), over an OpenAPI 3.0 copy of the schema.

FastAPI writes OpenAPI 3.1; the Swagger UI that PyPI packages (swagger-ui-bundle: 4.x, 3.x on older installs)
reads 2.0 and 3.0 only and shows "Unable to render this definition" for 3.1. The 3.1 features our schema uses
have exact 3.0 spellings (`anyOf [X, null]` -> X with `nullable`, `contentMediaType` -> `format: binary`, a
`type` list, `const`, `examples`), so /docs reads `/docs/openapi-3.0.json`, the same API written as 3.0.3;
/openapi.json stays 3.1 for clients.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse

log = logging.getLogger(__name__)

DOCS_ASSETS = "/docs-assets"
DOCS_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")  # what /docs loads: open, the rest not
DOCS_SCHEMA = "/docs/openapi-3.0.json"
OPENAPI_30 = "3.0.3"


def _nullable(schema: dict[str, Any], variants: list[Any]) -> dict[str, Any]:
    """anyOf/oneOf variants less {'type': 'null'} -> one 3.0 schema with nullable: true."""
    kept = [v for v in variants if v != {"type": "null"}]
    if len(kept) == len(variants):
        return schema
    rest = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
    if len(kept) == 1:
        only = kept[0]
        merged = {"allOf": [only]} if "$ref" in only else dict(only)  # 3.0 ignores siblings of $ref
        return {**merged, **rest, "nullable": True}
    key = "anyOf" if "anyOf" in schema else "oneOf"
    return {**rest, key: kept, "nullable": True}


def _schema_30(node: Any) -> Any:
    """A JSON Schema (2020-12, as OpenAPI 3.1 holds it) rewritten in OpenAPI 3.0's dialect, recursively."""
    if isinstance(node, list):
        return [_schema_30(v) for v in node]
    if not isinstance(node, dict):
        return node
    schema = {k: _schema_30(v) for k, v in node.items()}
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            schema = _nullable(schema, schema[key])
    kind = schema.get("type")
    if isinstance(kind, list):
        named = [t for t in kind if t != "null"]
        del schema["type"]
        if len(named) == 1:
            schema["type"] = named[0]
        elif named:
            schema["anyOf"] = [{"type": t} for t in named]
        if "null" in kind:
            schema["nullable"] = True
    if "contentMediaType" in schema:  # an uploaded file: 3.0 says format binary
        schema.pop("contentMediaType")
        schema.setdefault("format", "binary")
    schema.pop("contentEncoding", None)
    if "const" in schema:
        schema["enum"] = [schema.pop("const")]
    if isinstance(schema.get("examples"), list):  # a schema's examples list; 3.0 holds one example
        examples = schema.pop("examples")
        if examples:
            schema.setdefault("example", examples[0])
    for bound, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(schema.get(bound), (int, float)) and not isinstance(schema[bound], bool):
            schema[flag], schema[bound] = schema[bound], True
    return schema


def openapi_30(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI 3.1 document FastAPI writes, as OpenAPI 3.0.3: the JSON Schemas under
    components/schemas and every parameter, request and response body rewritten."""
    document = copy.deepcopy(schema)
    document["openapi"] = OPENAPI_30
    document.pop("webhooks", None)
    document.pop("jsonSchemaDialect", None)
    if "schemas" in document.get("components", {}):
        document["components"]["schemas"] = {name: _schema_30(s)
                                             for name, s in document["components"]["schemas"].items()}

    def body_schemas(node: Any) -> Any:  # every "schema" below paths, leaving examples (data) untouched
        if isinstance(node, list):
            return [body_schemas(v) for v in node]
        if not isinstance(node, dict):
            return node
        return {k: (_schema_30(v) if k == "schema" else v if k in ("example", "examples") else body_schemas(v))
                for k, v in node.items()}
    document["paths"] = body_schemas(document.get("paths", {}))
    return document


def offline_docs(app: FastAPI) -> set[str]:
    """Serve /docs with Swagger UI's files from the swagger-ui-bundle package (no CDN) over the 3.0 copy of
    the schema; the open paths it adds. Without the package there is no /docs (the schema stays at
    /openapi.json)."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        log.warning("swagger-ui-bundle is not installed: no /docs (the schema is at /openapi.json)")
        return {app.openapi_url}
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    app.mount(DOCS_ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
    cached: dict[str, Any] = {}

    @app.get(DOCS_SCHEMA, include_in_schema=False)
    async def docs_schema() -> JSONResponse:
        if not cached:
            cached.update(openapi_30(app.openapi()))
        return JSONResponse(cached)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=DOCS_SCHEMA, title=f"{app.title} API",
                                   swagger_js_url=f"{DOCS_ASSETS}/{DOCS_FILES[0]}",
                                   swagger_css_url=f"{DOCS_ASSETS}/{DOCS_FILES[1]}",
                                   swagger_favicon_url=f"{DOCS_ASSETS}/{DOCS_FILES[2]}")

    # only the files /docs loads are open (a browser sends no bearer header for them); source maps and the
    # other bundles in the package's folder need the token
    return {app.openapi_url, "/docs", DOCS_SCHEMA, *(f"{DOCS_ASSETS}/{name}" for name in DOCS_FILES)}
