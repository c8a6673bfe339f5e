"""Route handlers, one module per object kind, and the data plane's route table built from
them: each kind's module lists its routes (``routes()``), the ones every kind shares come from
its ``ObjectKind`` (``api.kinds``). A new kind is a module here and a line below."""

from __future__ import annotations

from strongroom.api.routes.access_control import AccessControlRoutes
from strongroom.api.routes.administration import AdministrationRoutes
from strongroom.api.routes.certificates import CertificateRoutes
from strongroom.api.routes.keys import KeyRoutes
from strongroom.api.routes.replication import ReplicationRoutes
from strongroom.api.routes.secrets import SecretRoutes
from strongroom.api.routes.storage import StorageRoutes
from strongroom.api.routing import RouteTable
from strongroom.services.container import Services


def route_table(services: Services) -> RouteTable:
    kinds: list[SecretRoutes | KeyRoutes | CertificateRoutes | StorageRoutes] = [
        SecretRoutes(services.secrets, services.storage.sas),
        KeyRoutes(services.keys),
        CertificateRoutes(services.certificates, services.issuance, services.issuers),
        StorageRoutes(services.storage),
    ]
    routes = [route for kind in kinds for route in kind.routes()]
    routes += AdministrationRoutes(services).routes()  # whole-vault backup and restore
    routes += ReplicationRoutes(services).routes()
    routes += AccessControlRoutes(services.rbac).routes()  # role assignments and definitions
    return RouteTable(routes, KeyRoutes.refusals())
