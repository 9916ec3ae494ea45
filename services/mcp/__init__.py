"""The MCP tool server: sandboxed tools behind RBAC, approvals and audit."""
