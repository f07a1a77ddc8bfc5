"""fewshot.tools.postgres: a real PostgreSQL cluster on a loopback port, started, reused, stopped."""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from fewshot.core.errors import UserError
from fewshot.tools import postgres
from tests.conftest import free_port


def test_start_creates_the_database_once_then_answers_the_running_servers_uri():
    folder = Path(tempfile.mkdtemp(prefix="fewshot-pg-test-"))  # reachable by the postgres user
    try:
        port = free_port()
        uri = postgres.start(folder, port, durable=False)
        assert uri == f"postgresql+psycopg://fewshot@127.0.0.1:{port}/mlflow"
        with psycopg.connect(uri.replace("+psycopg", "")) as conn:
            conn.execute("CREATE TABLE kept (x int)")
            conn.execute("INSERT INTO kept VALUES (7)")
        assert postgres.start(folder, free_port()) == uri  # running: its own port, nothing redone
        postgres.stop(folder)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(uri.replace("+psycopg", ""), connect_timeout=2)
        again = postgres.start(folder, port, durable=False)  # the same cluster, its data kept
        with psycopg.connect(again.replace("+psycopg", "")) as conn:
            assert conn.execute("SELECT x FROM kept").fetchone() == (7,)
        postgres.stop(folder)
    finally:
        if (folder / "data/postmaster.pid").exists():
            postgres.stop(folder)
        shutil.rmtree(folder, ignore_errors=True)


def test_stopping_a_folder_without_a_server_is_one_line(tmp_path):
    with pytest.raises(UserError, match=r"no PostgreSQL server is running from '.*data'"):
        postgres.stop(tmp_path)
    done = subprocess.run([sys.executable, "-m", "fewshot.tools.postgres", "stop", str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        f"error: no PostgreSQL server is running from '{tmp_path / 'data'}'"]
