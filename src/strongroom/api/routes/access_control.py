"""Role assignments and role definitions in Managed HSM's shape (the API that
``KeyVaultAccessControlClient`` and ``az keyvault role`` drive), served on every vault.

- ``GET {scope}/providers/Microsoft.Authorization/roleAssignments[?$filter=…]``,
  ``PUT|GET|DELETE {scope}/providers/Microsoft.Authorization/roleAssignments/{name}``;
- ``GET {scope}/providers/Microsoft.Authorization/roleDefinitions``,
  ``PUT|GET|DELETE {scope}/providers/Microsoft.Authorization/roleDefinitions/{name}`` (custom
  roles; the built-in ones are read-only).

``{scope}`` is any number of path segments before ``/providers/`` (clients send ``//``,
``///keys``, ``/keys/k1``); the data plane routes these paths by their tail and hands the
scope over as the first argument (``DataPlane._route``). Who may call them is the vault's
permission model's business (``services.rbac``): under RBAC, a role whose ``actions`` include
the ``Microsoft.Authorization`` action; under access policies, nobody but the operator unless
the vault is open.
"""

from __future__ import annotations

from typing import Any

from strongroom.api import wire
from strongroom.api.calls import Call, Reply, json_reply
from strongroom.api.routing import Need, Route
from strongroom.errors import BadParameter
from strongroom.services.rbac import (
    CUSTOM,
    RBAC_KIND,
    Permission,
    RbacService,
    RoleAssignment,
    RoleDefinition,
    normalise_scope,
)

_PREFIX = "/providers/Microsoft.Authorization"
_MAX_FILTER = 500


def _need(operation: str, status: int = 200) -> Need:
    return Need(RBAC_KIND, operation, operation, status)


def _provider_path(scope: str) -> str:
    return ("" if scope == "/" else scope) + _PREFIX


def assignment_json(a: RoleAssignment) -> dict[str, Any]:
    return {
        "id": f"{_provider_path(a.scope)}/roleAssignments/{a.name}",
        "name": a.name,
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": {
            "scope": a.scope,
            "roleDefinitionId": a.role_definition_id,
            "principalId": a.principal_id,
        },
    }


def definition_json(d: RoleDefinition) -> dict[str, Any]:
    return {
        "id": d.id,
        "name": d.name,
        "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": d.role_name,
            "description": d.description,
            "type": d.role_type,
            "permissions": [
                {
                    "actions": list(p.actions),
                    "notActions": list(p.not_actions),
                    "dataActions": list(p.data_actions),
                    "notDataActions": list(p.not_data_actions),
                }
                for p in d.permissions
            ],
            "assignableScopes": list(d.assignable_scopes),
        },
    }


def parse_filter(text: str | None) -> tuple[bool, str | None]:
    """``$filter`` of a role assignment list: ``atScope()``, ``principalId eq '…'``, or both
    joined by ``and``. Returns (at scope only, principal id)."""
    if not text:
        return False, None
    if len(text) > _MAX_FILTER:
        raise BadParameter(f"'$filter' may have at most {_MAX_FILTER} characters.")
    at_scope, principal = False, None
    for clause in text.split(" and "):
        clause = clause.strip()
        if clause.lower() == "atscope()":
            at_scope = True
            continue
        field, _, rest = clause.partition(" ")
        op, _, value = rest.strip().partition(" ")
        value = value.strip()
        if (
            field.lower() == "principalid"
            and op.lower() == "eq"
            and len(value) >= 2
            and value[0] == value[-1] == "'"
        ):
            principal = value[1:-1]
            continue
        raise BadParameter(
            f"The filter '{text[:100]}' is not supported: use atScope(), principalId eq "
            "'<id>', or both joined by 'and'.",
            code="InvalidFilter",
        )
    return at_scope, principal


def _permission(data: Any) -> Permission:
    if not isinstance(data, dict):
        raise BadParameter("Each of 'permissions' must be an object.")

    def strings(field: str) -> tuple[str, ...]:
        return tuple(wire.opt_str_list(data, field) or ())

    return Permission(
        strings("actions"), strings("notActions"), strings("dataActions"),
        strings("notDataActions"),
    )  # fmt: skip


class AccessControlRoutes:
    def __init__(self, rbac: RbacService):
        self._rbac = rbac

    def routes(self) -> list[Route]:
        a, d = f"{_PREFIX}/roleAssignments", f"{_PREFIX}/roleDefinitions"
        one_a, one_d = f"{a}/{{name}}", f"{d}/{{name}}"
        return [
            Route("GET", a, self.list_assignments, _need("RoleAssignmentList")),
            Route("GET", one_a, self.get_assignment, _need("RoleAssignmentGet")),
            Route("PUT", one_a, self.create_assignment, _need("RoleAssignmentCreate", 201)),
            Route("DELETE", one_a, self.delete_assignment, _need("RoleAssignmentDelete")),
            Route("GET", d, self.list_definitions, _need("RoleDefinitionList")),
            Route("GET", one_d, self.get_definition, _need("RoleDefinitionGet")),
            Route("PUT", one_d, self.set_definition, _need("RoleDefinitionSet", 201)),
            Route("DELETE", one_d, self.delete_definition, _need("RoleDefinitionDelete")),
        ]

    # -- assignments ------------------------------------------------------------------------

    async def list_assignments(self, call: Call) -> Reply:
        scope = normalise_scope(call.args[0])
        at_scope, principal = parse_filter(call.query.get("$filter"))
        found = self._rbac.list_assignments(
            call.record, scope, at_scope=at_scope, principal_id=principal
        )
        return json_reply({"value": [assignment_json(a) for a in found], "nextLink": None})

    async def get_assignment(self, call: Call) -> Reply:
        scope, name = normalise_scope(call.args[0]), call.args[1]
        return json_reply(assignment_json(self._rbac.get_assignment(call.record, scope, name)))

    async def create_assignment(self, call: Call) -> Reply:
        scope, name = normalise_scope(call.args[0]), call.args[1]
        properties = wire.opt_object(await call.json(), "properties")
        if properties is None:
            raise BadParameter("'properties' is required.")
        role = wire.req_str(properties, "roleDefinitionId")
        principal = wire.req_str(properties, "principalId")
        if not call.caller.operator and self._rbac.enabled(call.record):
            self._rbac.check_delegation(call.record, call.caller.client_id, scope, role)
        created = self._rbac.create_assignment(call.record, scope, name, role, principal)
        return json_reply(assignment_json(created), 201)

    async def delete_assignment(self, call: Call) -> Reply:
        scope, name = normalise_scope(call.args[0]), call.args[1]
        return json_reply(assignment_json(self._rbac.delete_assignment(call.record, scope, name)))

    # -- definitions ------------------------------------------------------------------------

    async def list_definitions(self, call: Call) -> Reply:
        normalise_scope(call.args[0])
        found = self._rbac.list_definitions(call.record)
        return json_reply({"value": [definition_json(d) for d in found], "nextLink": None})

    async def get_definition(self, call: Call) -> Reply:
        normalise_scope(call.args[0])
        return json_reply(definition_json(self._rbac.get_definition(call.record, call.args[1])))

    async def set_definition(self, call: Call) -> Reply:
        if normalise_scope(call.args[0]) != "/":
            raise BadParameter("Role definitions are made at scope '/' only.")
        properties = wire.opt_object(await call.json(), "properties")
        if properties is None:
            raise BadParameter("'properties' is required.")
        role_type = wire.opt_str(properties, "type")
        if role_type is not None and role_type.lower() != CUSTOM.lower():
            raise BadParameter("Only custom roles ('type': 'CustomRole') can be made.")
        permissions = properties.get("permissions") or []
        if not isinstance(permissions, list):
            raise BadParameter("'permissions' must be a list.")
        definition = RoleDefinition(
            name=call.args[1],
            role_name=wire.opt_str(properties, "roleName") or "",
            description=wire.opt_str(properties, "description") or "",
            role_type=CUSTOM,
            permissions=tuple(_permission(p) for p in permissions[:11]),
            assignable_scopes=tuple(wire.opt_str_list(properties, "assignableScopes") or ("/",)),
        )
        return json_reply(definition_json(self._rbac.set_definition(call.record, definition)), 201)

    async def delete_definition(self, call: Call) -> Reply:
        normalise_scope(call.args[0])
        deleted = self._rbac.delete_definition(call.record, call.args[1])
        return json_reply(definition_json(deleted))
