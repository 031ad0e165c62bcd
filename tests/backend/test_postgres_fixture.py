"""The test PostgreSQL: a real server of the tests' own, isolated from the machine's."""

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.postgres import TestPostgres

pytestmark = pytest.mark.integration

MACHINE_PORT = 5432


async def _query(url: str, statement: str) -> Any:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return (await connection.execute(text(statement))).scalar_one()
    finally:
        await engine.dispose()


async def _execute(url: str, *statements: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


def _query_sync(url: str, statement: str) -> Any:
    return asyncio.run(_query(url, statement))


def _save_note(url: str, body: str) -> None:
    insert = f"INSERT INTO notes VALUES ('{body}')"
    asyncio.run(_execute(url, "CREATE TABLE notes (body text)", insert))


def test_server_answers_through_sqlalchemy_and_asyncpg(pg_url: str) -> None:
    assert pg_url.startswith("postgresql+asyncpg://")
    assert _query_sync(pg_url, "SELECT version()").startswith("PostgreSQL ")


def test_embedded_server_is_not_the_machines(private_postgres: TestPostgres) -> None:
    url = private_postgres.url()
    assert private_postgres.port != MACHINE_PORT
    assert _query_sync(url, "SELECT inet_server_port()") == private_postgres.port
    data_directory = Path(_query_sync(url, "SHOW data_directory"))
    assert data_directory.resolve() == private_postgres.data_dir.resolve()


def test_fresh_databases_are_isolated_from_each_other(postgres: TestPostgres, pg_url: str) -> None:
    other_url = postgres.create_database()
    try:
        asyncio.run(_execute(pg_url, "CREATE TABLE only_here (id int)"))
        count_tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        assert _query_sync(pg_url, count_tables) == 1
        assert _query_sync(other_url, count_tables) == 0
    finally:
        postgres.drop_database(other_url.rsplit("/", 1)[1])


def test_text_compares_bytewise_with_collate_c(pg_url: str) -> None:
    assert _query_sync(pg_url, "SELECT 'B' < 'a' COLLATE \"C\"") is True
    ordered = "SELECT string_agg(x, '' ORDER BY x COLLATE \"C\") FROM unnest('{b,a,B,A}'::text[]) x"
    assert _query_sync(pg_url, ordered) == "ABab"


def test_data_survives_stop_and_start(private_postgres: TestPostgres) -> None:
    url = private_postgres.create_database("survivor")
    _save_note(url, "kept")

    private_postgres.stop()
    with pytest.raises(ConnectionRefusedError):
        _query_sync(url, "SELECT 1")

    private_postgres.start()
    assert _query_sync(url, "SELECT body FROM notes") == "kept"


def test_committed_data_survives_a_kill(private_postgres: TestPostgres) -> None:
    url = private_postgres.create_database("survivor")
    _save_note(url, "kept")

    private_postgres.kill()
    with pytest.raises(ConnectionRefusedError):
        _query_sync(url, "SELECT 1")

    private_postgres.start()
    assert _query_sync(url, "SELECT body FROM notes") == "kept"


def test_an_external_server_gets_fresh_databases_and_drops_them(
    private_postgres: TestPostgres,
) -> None:
    with TestPostgres(external_url=private_postgres.url()) as external:
        url = external.create_database()
        assert _query_sync(url, "SELECT current_database()") == url.rsplit("/", 1)[1]
    count_test_databases = "SELECT count(*) FROM pg_database WHERE datname LIKE 'test\\_%'"
    assert _query_sync(private_postgres.url(), count_test_databases) == 0
