"""``[store] backend = "postgres"`` and ``[cluster]``: read, checked and named by key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from smppgw.gateway.config import ConfigError, parse_config, summary
from smppgw.gateway.config.cluster import ClusterSettings, dsn_has_password

ENV = {"SMPPGW_PASSWORD": "pw", "PG": "postgresql://gw:hunter2@db/smppgw"}


def minimal(**sections: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "gateway": {"system_id": "acme", "password_env": "SMPPGW_PASSWORD"},
        "servers": [{"name": "smpp1", "host": "smpp1.example", "port": 3634}],
    }
    data.update(sections)
    return data


def errors_of(data: dict[str, Any]) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, environ=ENV)
    return info.value.errors


def test_a_postgres_store_takes_its_dsn_from_the_environment_and_never_shows_it() -> None:
    config = parse_config(
        minimal(store={"backend": "postgres", "dsn_env": "PG"}, cluster={"instance": "gw-a"}),
        environ=ENV,
    )
    assert config.postgres is not None
    assert config.postgres.dsn == ENV["PG"]
    assert config.cluster == ClusterSettings(instance="gw-a")
    text = summary(config)
    assert "store: postgres, dsn from env PG" in text
    assert "cluster: instance=gw-a ttl=10s heartbeat=2s margin=3s schema=smppgw_cluster" in text
    assert "hunter2" not in text
    assert "hunter2" not in repr(config)


def test_a_dsn_from_a_file_is_read_without_its_line_end(tmp_path: Path) -> None:
    secret = tmp_path / "dsn"
    secret.write_text("host=db user=gw password=x\n", encoding="utf-8")
    config = parse_config(
        minimal(store={"backend": "postgres", "dsn_file": str(secret)}), environ=ENV
    )
    assert config.postgres is not None
    assert config.postgres.dsn == "host=db user=gw password=x"
    assert config.postgres.source == f"file {secret}"


def test_a_dsn_without_a_password_may_be_written_in_the_file() -> None:
    config = parse_config(
        minimal(store={"backend": "postgres", "dsn": "postgresql://gw@db/smppgw"}), environ=ENV
    )
    assert config.postgres is not None
    assert config.postgres.source == "config"


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://gw:hunter2@db/smppgw",
        "postgres://db/smppgw?user=gw&password=hunter2",
        "host=db user=gw password=hunter2",
        "host=db PASSWORD = hunter2",
    ],
)
def test_a_dsn_with_a_password_in_the_file_is_refused_by_its_key_without_the_value(
    dsn: str,
) -> None:
    found = errors_of(minimal(store={"backend": "postgres", "dsn": dsn}))
    assert len(found) == 1
    assert found[0].startswith("store.dsn: holds a password")
    assert "hunter2" not in found[0]


@pytest.mark.parametrize(
    ("store", "cluster", "error"),
    [
        ({"backend": "postgres"}, None, "store.dsn: required with backend"),
        (
            {"backend": "postgres", "dsn": "host=db", "dsn_env": "PG"},
            None,
            "store.dsn_env: give one of dsn, dsn_env and dsn_file",
        ),
        ({"backend": "postgres", "dsn_env": "NOPE"}, None, "store.dsn_env: environment variable"),
        ({"dsn": "host=db"}, None, 'store.dsn: only with backend = "postgres"'),
        ({}, {"ttl": 10}, 'cluster: needs [store] backend = "postgres"'),
        ({"backend": "postgres", "dsn_env": "PG"}, {"ttl": 0}, "cluster.ttl:"),
        ({"backend": "postgres", "dsn_env": "PG"}, {"margin": 1}, "cluster.margin: must be more"),
        (
            {"backend": "postgres", "dsn_env": "PG"},
            {"ttl": 4, "margin": 2, "heartbeat": 2},
            "cluster.heartbeat: must be less than ttl - margin",
        ),
        (
            {"backend": "postgres", "dsn_env": "PG"},
            {"schema": "Smppgw; drop"},
            "cluster.schema: must be a lower-case SQL identifier",
        ),
        ({"backend": "postgres", "dsn_env": "PG"}, {"lease": 3}, "cluster.lease: unknown key"),
    ],
)
def test_each_cluster_error_is_named_by_its_key(
    store: dict[str, Any], cluster: dict[str, Any] | None, error: str
) -> None:
    data = minimal(store=store) if cluster is None else minimal(store=store, cluster=cluster)
    found = errors_of(data)
    assert any(e.startswith(error) for e in found), found


def test_dsn_password_detection_covers_both_dsn_forms() -> None:
    assert not dsn_has_password("postgresql://gw@db:5432/smppgw?sslmode=require")
    assert not dsn_has_password("host=db user=gw dbname=smppgw")
    assert dsn_has_password("postgresql://gw:pw@db/smppgw")
    assert dsn_has_password("dbname=x password=pw")
