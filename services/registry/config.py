"""Settings of the registry service (on top of :class:`headwater.config.ServiceConfig`).

Each can be set in the config file (``registry:`` section) or as
``HEADWATER_REGISTRY_<SETTING>`` in the environment.
"""

from __future__ import annotations

from dataclasses import dataclass

from headwater.config import ServiceConfig

__all__ = ["RegistryConfig"]


@dataclass
class RegistryConfig(ServiceConfig):
    #: Where schemas are kept: "sqlite" (one file, the default) or "postgres".
    store: str = "sqlite"
    #: The SQLite file; default <data_dir>/registry.sqlite3.
    sqlite_path: str = ""
    #: libpq connection string of the PostgreSQL store, e.g. postgresql://postgres@127.0.0.1:5432/test.
    postgres_dsn: str = ""
    #: PostgreSQL schema (namespace) holding the registry's tables; replicas sharing one registry use the same.
    postgres_schema: str = "headwater_registry"
    #: Connections the PostgreSQL store keeps open.
    postgres_pool_size: int = 4
    #: Registering into a group that does not exist creates it (with the schema's format and
    #: default_compatibility), as a local convenience; false refuses with RESOURCE_NOT_FOUND as Azure does.
    auto_create_groups: bool = True
    #: Compatibility mode of groups created without one: none, backward, forward, full, or *_transitive.
    default_compatibility: str = "BACKWARD"
    #: Largest definition accepted, in bytes (Azure's limit is 1 MB).
    max_definition_bytes: int = 1_000_000
