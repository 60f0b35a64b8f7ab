"""The OpenAPI 3.1 document of the /api/v1 endpoints (kept in docs/api/openapi.json; a test holds
the file, the served document and every response to it)."""

from __future__ import annotations

from typing import Any, Final

from stream.analytics.community_flags import FLAGS
from stream.analytics.trends import TREND_METRICS

_NULLABLE_STR: Final = {"type": ["string", "null"]}
_COUNT: Final = {"type": "integer", "minimum": 0}
_TIER_ROW: Final = {
    "type": "object",
    "required": ["registered", "active", "participating", "contributing"],
    "properties": {t: _COUNT for t in ("registered", "active", "participating", "contributing")},
}
_ROLES: Final = {
    "type": "object",
    "required": ["owner", "member", "follower"],
    "properties": {
        r: {"type": "array", "items": {"type": "string"}} for r in ("owner", "member", "follower")
    },
}
_COMMUNITY: Final = {
    "type": "object",
    "required": [
        "community",
        "members_by_role",
        "people",
        "active_members",
        "health",
        "last_activity",
        "events",
        "idle",
        "orphaned",
    ],
    "properties": {
        "community": {"type": "string"},
        "members_by_role": {"type": "object", "additionalProperties": _COUNT},
        "people": _COUNT,
        "active_members": _COUNT,
        "health": {"type": ["number", "null"], "description": "active_members / people"},
        "last_activity": _NULLABLE_STR,
        "events": _COUNT,
        "idle": {"type": "boolean"},
        "orphaned": {"type": "boolean"},
    },
}
_COUNTS: Final = {"type": "object", "additionalProperties": _COUNT}
_GROUP: Final = {
    "type": "object",
    "required": ["users", "inactive_at_start", "weeks"],
    "properties": {
        "users": _COUNT,
        "inactive_at_start": _COUNT,
        "weeks": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["week", "end", "reactivated", "rate"],
                "properties": {
                    "week": {"type": "integer", "minimum": 1},
                    "end": {"type": "string"},
                    "reactivated": _COUNT,
                    "rate": {"type": ["number", "null"]},
                },
            },
        },
    },
}

SCHEMAS: Final[dict[str, Any]] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["status", "message"],
                "properties": {
                    "status": {"type": "integer"},
                    "param": {"type": "string"},
                    "message": {"type": "string"},
                },
            }
        },
    },
    "Summary": {
        "type": "object",
        "required": [
            "now",
            "clock",
            "users",
            "active",
            "stickiness",
            "tiers",
            "communities",
            "departments",
            "min_group_size",
        ],
        "properties": {
            "now": {"type": "string", "format": "date-time"},
            "clock": {"enum": ["wall", "event"]},
            "users": {
                "type": "object",
                "required": ["enabled", "inactive", "never_active"],
                "properties": {"enabled": _COUNT, "inactive": _COUNTS, "never_active": _COUNT},
            },
            "active": _COUNTS,
            "stickiness": {"type": "number", "minimum": 0},
            "tiers": {"type": "object", "additionalProperties": _TIER_ROW},
            "communities": _COUNTS,
            "departments": {"type": "object", "additionalProperties": _COUNTS},
            "min_group_size": {"type": "integer"},
        },
    },
    "Trend": {
        "type": "object",
        "required": ["metric", "definition", "from", "to", "points"],
        "properties": {
            "metric": {"enum": list(TREND_METRICS)},
            "definition": {"type": "string"},
            "from": {"type": "string", "format": "date"},
            "to": {"type": "string", "format": "date"},
            "points": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["date", "value"],
                    "properties": {"date": {"type": "string"}, "value": {"type": "number"}},
                },
            },
        },
    },
    "User": {
        "type": "object",
        "required": [
            "user_id",
            "first_seen",
            "last_seen",
            "events",
            "counts",
            "likes",
            "mentions",
            "enabled",
            "flags",
            "department",
            "created",
            "communities",
        ],
        "properties": {
            "user_id": {"type": "string"},
            "first_seen": _NULLABLE_STR,
            "last_seen": _NULLABLE_STR,
            "events": _COUNT,
            "counts": _COUNTS,
            "likes": {
                "type": "object",
                "required": ["given", "received"],
                "properties": {"given": _COUNT, "received": _COUNT},
            },
            "mentions": {
                "type": "object",
                "required": ["given", "received"],
                "properties": {"given": _COUNT, "received": _COUNT},
            },
            "enabled": {"type": ["boolean", "null"]},
            "flags": {"type": "array", "items": {"type": "string"}},
            "department": _NULLABLE_STR,
            "created": _NULLABLE_STR,
            "communities": _ROLES,
        },
    },
    "Inactive": {
        "type": "object",
        "required": ["total", "users"],
        "properties": {
            "total": _COUNT,
            "users": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": [
                        "user_id",
                        "flags",
                        "last_seen",
                        "created",
                        "department",
                        "communities",
                    ],
                    "properties": {
                        "user_id": {"type": "string"},
                        "flags": {"type": "array", "items": {"type": "string"}},
                        "last_seen": _NULLABLE_STR,
                        "created": _NULLABLE_STR,
                        "department": _NULLABLE_STR,
                        "communities": _ROLES,
                    },
                },
            },
        },
    },
    "Community": _COMMUNITY,
    "Communities": {
        "type": "object",
        "required": ["now", "window_days", "counts", "communities"],
        "properties": {
            "now": {"type": "string"},
            "window_days": {"type": "integer"},
            "counts": _COUNTS,
            "communities": {"type": "array", "items": _COMMUNITY},
        },
    },
    "Content": {
        "type": "object",
        "required": ["from", "to", "by_type_and_object", "by_day"],
        "properties": {
            "from": {"type": "string"},
            "to": {"type": "string"},
            "by_type_and_object": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["type", "object_type", "events"],
                    "properties": {
                        "type": {"type": "string"},
                        "object_type": {"type": "string"},
                        "events": _COUNT,
                    },
                },
            },
            "by_day": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["date", "counts"],
                    "properties": {"date": {"type": "string"}, "counts": _COUNTS},
                },
            },
        },
    },
    "TopItems": {
        "type": "object",
        "required": ["period", "from", "to", "exact", "error_bound", "items"],
        "properties": {
            "period": {"enum": ["day", "week"]},
            "from": {"type": "string"},
            "to": {"type": "string"},
            "exact": {
                "type": "boolean",
                "description": "false once a day of the period dropped items",
            },
            "error_bound": {
                "type": "integer",
                "minimum": 0,
                "description": "how much a listed count may be short (0 when exact)",
            },
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["item", "object_type", "id", "interactions"],
                    "properties": {
                        "item": {"type": "string"},
                        "object_type": {"type": "string"},
                        "id": {"type": "string"},
                        "interactions": _COUNT,
                    },
                },
            },
        },
    },
    "Initiatives": {
        "type": "object",
        "required": ["initiatives"],
        "properties": {
            "initiatives": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "start", "users"],
                    "properties": {
                        "name": {"type": "string"},
                        "start": {"type": "string"},
                        "users": _COUNT,
                    },
                },
            }
        },
    },
    "Initiative": {
        "type": "object",
        "required": ["name", "start", "now", "users", "unknown_users", "initiative", "others"],
        "properties": {
            "name": {"type": "string"},
            "start": {"type": "string"},
            "now": {"type": "string"},
            "users": _COUNT,
            "unknown_users": _COUNT,
            "initiative": _GROUP,
            "others": _GROUP,
        },
    },
}


def _param(
    name: str, where: str, description: str, schema: dict[str, Any], required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "description": description,
        "schema": schema,
    }


_DATE: Final = {"type": "string", "format": "date"}
_RANGE: Final = [
    _param("from", "query", "First UTC day, inclusive (default: 30 days before to).", _DATE),
    _param("to", "query", "Last UTC day, inclusive (default: the clock's today).", _DATE),
]


def _get(
    summary: str, schema: str, params: list[dict[str, Any]] | None = None, not_found: bool = False
) -> dict[str, Any]:
    error = {
        "description": "",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    responses: dict[str, Any] = {
        "200": {
            "description": "OK",
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        },
        "400": {**error, "description": "A parameter is invalid; error.param names it."},
    }
    if not_found:
        responses["404"] = {**error, "description": "Not known."}
    return {"get": {"summary": summary, "parameters": params or [], "responses": responses}}


def openapi_document() -> dict[str, Any]:
    """The whole document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ESN Pulse analytics API",
            "version": "1.0.0",
            "description": "Engagement figures of an enterprise social network, served by every "
            "worker. Times are UTC; days are whole UTC days; the clock is the wall clock, or with "
            "ESN_CLOCK=event the highest event time folded.",
        },
        "paths": {
            "/api/v1/summary": _get("Headline figures now", "Summary"),
            "/api/v1/trends": _get(
                "A daily series",
                "Trend",
                [
                    _param(
                        "metric",
                        "query",
                        "; ".join(f"{k}: {v}" for k, v in TREND_METRICS.items()),
                        {"enum": list(TREND_METRICS)},
                        required=True,
                    ),
                    *_RANGE,
                ],
            ),
            "/api/v1/users/{user_id}": _get(
                "One user (a raw id is pseudonymised when ESN_PSEUDONYMIZE_KEY is set)",
                "User",
                [_param("user_id", "path", "User id or pseudonym.", {"type": "string"})],
                not_found=True,
            ),
            "/api/v1/inactive": _get(
                "Flagged users, newest silence first",
                "Inactive",
                [
                    _param(
                        "threshold",
                        "query",
                        "A configured threshold, e.g. 30d (default: the first).",
                        {"type": "string"},
                    ),
                    _param(
                        "never_active",
                        "query",
                        "true: never-active users instead.",
                        {"enum": ["true", "false"]},
                    ),
                    _param(
                        "limit",
                        "query",
                        "At most this many rows (1-10000, default 1000).",
                        {"type": "integer", "minimum": 1, "maximum": 10000},
                    ),
                ],
            ),
            "/api/v1/communities": _get(
                "Every community's health",
                "Communities",
                [
                    _param(
                        "state",
                        "query",
                        "all (default), orphaned or idle.",
                        {"enum": ["all", *FLAGS]},
                    )
                ],
            ),
            "/api/v1/communities/{community_id}": _get(
                "One community's health",
                "Community",
                [_param("community_id", "path", "Community id.", {"type": "string"})],
                not_found=True,
            ),
            "/api/v1/content": _get(
                "Content mix: events by type and object type", "Content", list(_RANGE)
            ),
            "/api/v1/content/top": _get(
                "Most-interacted-with items of a day or ISO week",
                "TopItems",
                [
                    _param("period", "query", "day (default) or week.", {"enum": ["day", "week"]}),
                    _param(
                        "date", "query", "A day of the period (default: the clock's today).", _DATE
                    ),
                    _param(
                        "limit",
                        "query",
                        "Items (1-100, default 10).",
                        {"type": "integer", "minimum": 1, "maximum": 100},
                    ),
                ],
            ),
            "/api/v1/initiatives": _get("Stored initiatives", "Initiatives"),
            "/api/v1/initiatives/{name}": _get(
                "An initiative against everyone else, week by week",
                "Initiative",
                [_param("name", "path", "Initiative name.", {"type": "string"})],
                not_found=True,
            ),
            "/api/v1/openapi.json": {
                "get": {"summary": "This document", "responses": {"200": {"description": "OK"}}}
            },
        },
        "components": {"schemas": SCHEMAS},
    }
