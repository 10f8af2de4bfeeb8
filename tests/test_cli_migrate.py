"""``smppgw migrate``: the cluster's schemas created, reported and checked against PostgreSQL."""

from __future__ import annotations

import argparse
import io
import socket
from pathlib import Path

import asyncpg
import pytest
from postgres_helper import fresh_schema

from smppgw.gateway.cli import main
from smppgw.gateway.cli.migrate import migrate_command
from smppgw.gateway.store.postgres import SCHEMA_VERSION as STORE_VERSION

HEAD = """
[gateway]
system_id = "acme"
password_file = "pw"
[[servers]]
name = "a"
host = "127.0.0.1"
port = 2775
"""


def write_config(tmp_path: Path, store: str) -> str:
    (tmp_path / "pw").write_text("secret\n", encoding="utf-8")
    path = tmp_path / "smppgw.toml"
    path.write_text(HEAD + store, encoding="utf-8")
    return str(path)


def postgres_store(dsn: str, schema: str) -> str:
    """The store in ``<schema>_store`` (dropped by :func:`drop_store`), the leases in ``schema``."""
    return (
        f'[store]\nbackend = "postgres"\ndsn = "{dsn}"\nschema = "{schema}_store"\n'
        f'[cluster]\nschema = "{schema}"\n'
    )


async def drop_store(dsn: str, schema: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f"DROP SCHEMA IF EXISTS {schema}_store CASCADE")
    finally:
        await connection.close()


async def run(config: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = await migrate_command(argparse.Namespace(config=config), out, err)
    return code, out.getvalue(), err.getvalue()


async def test_migrate_creates_the_cluster_schema_and_says_its_version_twice_alike(
    tmp_path: Path,
) -> None:
    async with fresh_schema() as db:
        config = write_config(tmp_path, postgres_store(db.dsn, db.schema))
        said = f"store schema {db.schema}_store: version {STORE_VERSION}\n"
        said += f"cluster schema {db.schema}: version 1\n"
        try:
            assert await run(config) == (0, said, "")
            assert await run(config) == (0, said, "")
            connection = await asyncpg.connect(db.dsn)
            try:
                tables = await connection.fetch(
                    "SELECT table_schema, table_name FROM information_schema.tables"
                    " WHERE table_schema IN ($1, $2)",
                    db.schema,
                    f"{db.schema}_store",
                )
            finally:
                await connection.close()
        finally:
            await drop_store(db.dsn, db.schema)
        cluster = {r["table_name"] for r in tables if r["table_schema"] == db.schema}
        assert cluster == {"cluster_meta", "instances", "slot_leases"}
        assert {"meta", "messages"} <= {r["table_name"] for r in tables} - cluster


async def test_migrate_refuses_a_schema_of_another_version_with_exit_1(tmp_path: Path) -> None:
    async with fresh_schema() as db:
        config = write_config(tmp_path, postgres_store(db.dsn, db.schema))
        try:
            assert (await run(config))[0] == 0
            connection = await asyncpg.connect(db.dsn)
            try:
                await connection.execute(
                    f"UPDATE {db.schema}.cluster_meta SET value = '2' WHERE key = 'schema_version'"
                )
            finally:
                await connection.close()
            code, out, err = await run(config)
        finally:
            await drop_store(db.dsn, db.schema)
        assert (code, out) == (1, "")
        assert f"schema {db.schema} is at version 2; this release uses 1" in err


async def test_migrate_exits_3_when_postgresql_cannot_be_reached_without_showing_the_dsn(
    tmp_path: Path,
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "dsn").write_text(f"postgresql://gw:hunter2@127.0.0.1:{port}/x\n", encoding="utf-8")
    store = '[store]\nbackend = "postgres"\ndsn_file = "dsn"\n'
    code, out, err = await run(write_config(tmp_path, store))
    assert (code, out) == (3, "")
    assert "cannot connect to PostgreSQL" in err
    assert "hunter2" not in err


def test_migrate_exits_2_on_an_sqlite_store_and_on_an_invalid_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, "")
    assert main(["migrate", "--config", config]) == 2
    assert "[store] backend is sqlite" in capsys.readouterr().err
    bad = write_config(tmp_path, '[store]\nbackend = "postgres"\ndsn = "host=db password=x"\n')
    assert main(["migrate", "--config", bad]) == 2
    assert "store.dsn: holds a password" in capsys.readouterr().err
