"""The OpenAPI 3.1 document (``/api/openapi.json``) and a human page (``/api/docs``).

Both are built once, at start, from the route table (:mod:`server.api.operations`) and the
pydantic models' JSON schemas; the page is plain HTML with inline CSS (no scripts, no CDN).
"""

from __future__ import annotations

import html
import json
from http import HTTPStatus
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from server.api import models
from server.api.auth import Access
from server.api.operations import PATH_PARAMS, Operation
from server.auth import Principal
from server.errors import BOOKING_KINDS, HTTP_KINDS, PROBLEM_JSON, STATUS_BY_KIND
from server.keys import API_DOCS_PAGE, OPENAPI_DOCUMENT

TITLE = "Concert-Hub REST API"
VERSION = "0.1.0"
REF = "#/components/schemas/{model}"

JsonSchemaMode = Literal["validation", "serialization"]


def _error_statuses(op: Operation) -> list[int]:
    statuses = set(op.errors) | {429, 500}
    if op.body is not None or any(h.required for h in op.headers):
        statuses.add(400)
    if op.body is not None:
        statuses |= {413, 422}
    if op.access is not Access.PUBLIC:
        statuses.add(401)
    if op.query is not None:
        statuses.add(422)
    if op.path_params():
        statuses.add(404)  # a parameter the route's pattern refuses (too long, say) is a 404
    if op.access in (Access.ADMIN, Access.SCANNER):
        statuses.add(403)
    return sorted(statuses)


def _security(access: Access) -> list[dict[str, list[str]]]:
    if access is Access.PUBLIC:
        return []
    if access is Access.OPTIONAL:
        return [{}, {"bearer": []}]
    return [{"bearer": []}]


def _kinds_for(status: int) -> list[str]:
    kinds = [k for k, s in STATUS_BY_KIND.items() if s == status]
    return kinds + [k for k, (s, _) in HTTP_KINDS.items() if s == status]


def build_document(operations: list[Operation]) -> dict[str, Any]:
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(models.ProblemOut, "serialization")]
    for op in operations:
        if op.body is not None:
            wanted.append((op.body, "validation"))
        if op.response is not None:
            wanted.append((op.response, "serialization"))
    refs, schemas = models_json_schema(list(dict.fromkeys(wanted)), ref_template=REF)
    problem_ref = refs[(models.ProblemOut, "serialization")]

    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        parameters: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": PATH_PARAMS[name][1]}
            for name in op.path_params()
        ]
        if op.query is not None:
            schema = op.query.model_json_schema()
            parameters += [
                {
                    "name": name,
                    "in": "query",
                    "required": name in schema.get("required", []),
                    "description": field.get("description", ""),
                    "schema": {k: v for k, v in field.items() if k not in ("title", "description")},
                }
                for name, field in schema["properties"].items()
            ]
        parameters += [
            {
                "name": h.name,
                "in": "header",
                "required": h.required,
                "description": h.description,
                "schema": dict(h.schema),
            }
            for h in op.headers
        ]
        success: dict[str, Any] = {"description": HTTPStatus(op.status).phrase}
        if op.response is not None:
            schema = refs[(op.response, "serialization")]
            if op.many:
                schema = {"type": "array", "items": schema}
            success["content"] = {op.media_type: {"schema": schema}}
        elif op.media_type != "application/json":
            success["content"] = {op.media_type: {"schema": {"type": "string"}}}
        responses: dict[str, Any] = {str(op.status): success}
        for status in _error_statuses(op):
            kinds = ", ".join(_kinds_for(status))
            responses[str(status)] = {
                "description": f"{HTTPStatus(status).phrase} (kind: {kinds})",
                "content": {PROBLEM_JSON: {"schema": problem_ref}},
            }
        entry: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": [op.tag],
            "parameters": parameters,
            "responses": responses,
            "security": _security(op.access),
        }
        if op.description:
            entry["description"] = op.description
        if op.access is Access.ADMIN:
            entry["x-role"] = "admin"
        if op.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
            }
        paths.setdefault(op.path, {})[op.method.lower()] = entry

    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": "Booking API of Concert-Hub (SPEC §5). Errors are RFC 9457 problem "
            "details (application/problem+json) with a machine-readable `kind`.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "a token from POST /api/auth/guest or `concert-hub token`",
                }
            },
        },
    }


_CSS = """
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h2{border-bottom:1px solid #ddd;margin-top:2rem}
.op{border:1px solid #ddd;border-radius:6px;padding:.5rem 1rem;margin:.75rem 0}
.m{display:inline-block;min-width:4.5rem;font-weight:bold;font-family:monospace}
.GET{color:#0a6}.POST{color:#06c}.PATCH{color:#a60}.DELETE{color:#c22}
code,pre{font-family:ui-monospace,monospace;font-size:13px}
pre{background:#f6f6f6;padding:.5rem;overflow:auto;max-height:20rem}
td,th{text-align:left;padding:.2rem .6rem;vertical-align:top}
.who{float:right;color:#777;font-size:13px}
"""


def build_page(operations: list[Operation], document: dict[str, Any]) -> str:
    e = html.escape
    schemas = document["components"]["schemas"]
    out = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{e(TITLE)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(TITLE)}</h1>",
        "<p>JSON over HTTP. Send <code>Authorization: Bearer &lt;token&gt;</code> (from "
        "<code>POST /api/auth/guest</code> or <code>concert-hub token</code>) where marked. "
        'Errors are <code>application/problem+json</code>; see <a href="#problems">kinds</a>. '
        'Machine-readable: <a href="/api/openapi.json">/api/openapi.json</a>.</p>',
    ]
    tags = list(dict.fromkeys(op.tag for op in operations))
    for tag in tags:
        out.append(f"<h2>{e(tag)}</h2>")
        for op in (o for o in operations if o.tag == tag):
            who = {Access.PUBLIC: "public", Access.USER: "bearer token",
                   Access.ADMIN: "admin token", Access.SCANNER: "scanner token",
                   Access.OPTIONAL: "bearer token or order key"}[op.access]  # fmt: skip
            out.append(f'<div class=op id="{e(op.operation_id)}">')
            out.append(f"<span class=who>{who}</span>")
            out.append(f"<span class='m {e(op.method)}'>{e(op.method)}</span> ")
            out.append(f"<code>{e(op.path)}</code> — {e(op.summary)}")
            if op.description:
                out.append(f"<p>{e(op.description)}</p>")
            for h in op.headers:
                need = "required" if h.required else "optional"
                out.append(f"<p>Header <code>{e(h.name)}</code> ({need}): {e(h.description)}</p>")
            entry = document["paths"][op.path][op.method.lower()]
            if op.body is not None:
                name = entry["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                name = name.rsplit("/", 1)[-1]
                body = json.dumps(schemas[name], indent=2)
                out.append(f"<details><summary>Body: <code>{e(name)}</code></summary>")
                out.append(f"<pre>{e(body)}</pre></details>")
            codes = ", ".join(entry["responses"])
            out.append(f"<p>Responses: {e(codes)}</p></div>")
    out.append("<h2 id=problems>Problem kinds</h2><table><tr><th>kind</th><th>status</th>"
               "<th>meaning</th></tr>")  # fmt: skip
    kinds = [(k, STATUS_BY_KIND[k], BOOKING_KINDS[k]) for k in STATUS_BY_KIND]
    kinds += [(k, s, text) for k, (s, text) in HTTP_KINDS.items()]
    for kind, status, text in kinds:
        out.append(
            f"<tr id=problem-{e(kind)}><td><code>{e(kind)}</code></td><td>{status}</td>"
            f"<td>{e(text)}</td></tr>"
        )
    out.append("</table></body></html>")
    return "".join(out)


def publish(app: web.Application, operations: list[Operation]) -> None:
    document = build_document(operations)
    app[OPENAPI_DOCUMENT] = json.dumps(document, indent=1).encode()
    app[API_DOCS_PAGE] = build_page(operations, document).encode()


async def openapi_document(request: web.Request, _: Principal) -> web.Response:
    return web.Response(body=request.app[OPENAPI_DOCUMENT], content_type="application/json")


async def docs_page(request: web.Request, _: Principal) -> web.Response:
    return web.Response(body=request.app[API_DOCS_PAGE], content_type="text/html",
                        charset="utf-8")  # fmt: skip


OPERATIONS: list[Operation] = [
    Operation("GET", "/api/openapi.json", openapi_document, "This API as OpenAPI 3.1", "meta"),
    Operation("GET", "/api/docs", docs_page, "This API as a page", "meta",
              media_type="text/html"),
]  # fmt: skip
