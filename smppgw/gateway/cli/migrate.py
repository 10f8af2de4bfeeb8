"""``smppgw migrate --config F``: create or migrate the PostgreSQL schemas of a cluster.

Run once before the first instance starts and after each upgrade (instances also create what
is missing at start, but a deployment step that fails loudly is the safer place for it). Exit
codes: 0 every schema is at this release's version; 2 the configuration is invalid or its store
is not PostgreSQL; 3 the database cannot be reached; 1 a schema is at another version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from smppgw.gateway.cli.client import EXIT_FAILED, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE

if TYPE_CHECKING:
    import argparse
    from typing import TextIO

__all__ = ["migrate_command"]

_CONNECT_TIMEOUT = 10.0


async def migrate_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Create or migrate the cluster's schemas in the configured database."""
    from smppgw.gateway.config import ConfigError, load_config  # noqa: PLC0415

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        err.write(f"{exc}\n")
        return EXIT_USAGE
    if config.postgres is None:
        err.write(
            f"smppgw migrate: {config.source}: [store] backend is sqlite; the SQLite store is "
            'created and migrated by the daemon itself (migrate is for backend = "postgres")\n'
        )
        return EXIT_USAGE
    pg = config.postgres
    return await _migrate(pg.dsn, pg.source, (pg.schema, config.cluster.schema), out, err)


async def _migrate(
    dsn: str, source: str, schemas: tuple[str, str], out: TextIO, err: TextIO
) -> int:
    store_schema, schema = schemas
    try:
        import asyncpg  # noqa: PLC0415

        from smppgw.gateway.cluster.leaser import (  # noqa: PLC0415
            SCHEMA_VERSION,
            ClusterSchemaError,
            ensure_schema,
        )
        from smppgw.gateway.store.postgres import (  # noqa: PLC0415
            StoreSchemaError,
            StoreUnavailableError,
        )
        from smppgw.gateway.store.postgres import migrate as migrate_store  # noqa: PLC0415
    except ImportError:
        err.write("smppgw migrate: needs the postgres extra: pip install 'smppgw[postgres]'\n")
        return EXIT_USAGE
    try:
        connection = await asyncpg.connect(dsn, timeout=_CONNECT_TIMEOUT)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        err.write(
            f"smppgw migrate: cannot connect to PostgreSQL (dsn from {source}): "
            f"{type(exc).__name__}: {exc}\n"
        )
        return EXIT_UNAVAILABLE
    try:
        store_version = await migrate_store(dsn, store_schema, connect_timeout=_CONNECT_TIMEOUT)
        await ensure_schema(connection, schema)
    except (ClusterSchemaError, StoreSchemaError) as exc:
        err.write(f"smppgw migrate: {exc}\n")
        return EXIT_FAILED
    except StoreUnavailableError as exc:
        err.write(f"smppgw migrate: {exc}\n")
        return EXIT_UNAVAILABLE
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        err.write(f"smppgw migrate: PostgreSQL failed: {type(exc).__name__}: {exc}\n")
        return EXIT_UNAVAILABLE
    finally:
        await connection.close()
    out.write(f"store schema {store_schema}: version {store_version}\n")
    out.write(f"cluster schema {schema}: version {SCHEMA_VERSION}\n")
    return EXIT_OK
