"""The one table of permissions, tool sensitivity and role defaults.

Everything about who may do what starts here: the database is seeded from this
module and the MCP server reads tool sensitivity from it. A second table
anywhere else is a bug (the predecessor had two that disagreed on 11 tools).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Sensitivity(IntEnum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4


class Role:
    VIEWER = "viewer"
    DEVELOPER = "developer"
    ADMIN = "admin"


ROLES: dict[str, str] = {
    Role.VIEWER: "Read-only: models, chat, embeddings, and LOW sensitivity tools.",
    Role.DEVELOPER: "Everyday work: LOW and MEDIUM tools; HIGH tools after approval.",
    Role.ADMIN: "Everything; HIGH and CRITICAL tools after approval; decides approvals.",
}


@dataclass(frozen=True)
class Permission:
    name: str
    sensitivity: Sensitivity
    description: str


def tool_permission(tool: str) -> str:
    return f"tool:{tool}"


# Tool sensitivity (issue: MCP tool server). LOW: reads; HIGH: changes the
# workspace; CRITICAL: runs arbitrary allowlisted programs.
TOOL_SENSITIVITY: dict[str, Sensitivity] = {
    "list_files": Sensitivity.LOW,
    "read_file": Sensitivity.LOW,
    "search_files": Sensitivity.LOW,
    "git_status": Sensitivity.LOW,
    "git_diff": Sensitivity.LOW,
    "git_log": Sensitivity.LOW,
    "system_info": Sensitivity.LOW,
    "rag_search": Sensitivity.LOW,
    "write_file": Sensitivity.HIGH,
    "git_add": Sensitivity.HIGH,
    "git_commit": Sensitivity.HIGH,
    "run_command": Sensitivity.CRITICAL,
}

# Platform actions that are not tools.
ACTIONS: tuple[Permission, ...] = (
    Permission("models:read", Sensitivity.LOW, "List models."),
    # Also covers the legacy POST /v1/completions: the same models generating text.
    Permission("chat:create", Sensitivity.LOW, "Create chat completions."),
    Permission("embeddings:create", Sensitivity.LOW, "Create embeddings."),
    Permission("rag:query", Sensitivity.LOW, "Query RAG collections."),
    Permission("rag:index", Sensitivity.MEDIUM, "Index and delete RAG documents."),
    Permission("rag:manage", Sensitivity.HIGH, "Delete any RAG collection, whoever created it."),
    Permission("approvals:request", Sensitivity.LOW, "See and cancel one's own approvals."),
    Permission("approvals:decide", Sensitivity.CRITICAL, "Approve or reject any request."),
    Permission("keys:manage", Sensitivity.CRITICAL, "Create, list and revoke API keys."),
    Permission("audit:read", Sensitivity.HIGH, "Read the audit log."),
)

# Highest sensitivity each role may use, and from which level it needs approval.
# Actions (non-tool permissions) never need approval: approving a chat makes no sense.
ROLE_CEILING: dict[str, Sensitivity] = {
    Role.VIEWER: Sensitivity.LOW,
    Role.DEVELOPER: Sensitivity.HIGH,
    Role.ADMIN: Sensitivity.CRITICAL,
}
ROLE_APPROVAL_FROM: dict[str, Sensitivity | None] = {
    Role.VIEWER: None,
    Role.DEVELOPER: Sensitivity.HIGH,
    Role.ADMIN: Sensitivity.HIGH,
}
# Actions whose sensitivity exceeds what the ceiling implies for everyday use;
# granted by explicit list so that e.g. a developer cannot manage keys.
ADMIN_ONLY_ACTIONS = frozenset({"approvals:decide", "keys:manage", "audit:read", "rag:manage"})


def all_permissions() -> list[Permission]:
    tools = [
        Permission(tool_permission(name), level, f"Use the {name} tool.")
        for name, level in TOOL_SENSITIVITY.items()
    ]
    return [*ACTIONS, *tools]


@dataclass(frozen=True)
class Grant:
    role: str
    permission: str
    requires_approval: bool


def default_grants() -> list[Grant]:
    """Role-permission grants derived from the tables above."""
    grants: list[Grant] = []
    for role, ceiling in ROLE_CEILING.items():
        approval_from = ROLE_APPROVAL_FROM[role]
        for perm in all_permissions():
            is_tool = perm.name.startswith("tool:")
            if perm.name in ADMIN_ONLY_ACTIONS and role != Role.ADMIN:
                continue
            if perm.sensitivity > ceiling and perm.name not in ADMIN_ONLY_ACTIONS:
                continue
            needs = bool(is_tool and approval_from and perm.sensitivity >= approval_from)
            grants.append(Grant(role, perm.name, needs))
    return grants
