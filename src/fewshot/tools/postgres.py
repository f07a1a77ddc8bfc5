"""A PostgreSQL server of your own for team mode's MLflow store: Debian's `postgresql` binaries, a
data folder you choose, listening on 127.0.0.1 only.

Usage:
  python -m fewshot.tools.postgres start DIR [--port 5432]   # initdb on first use; prints the URI
  python -m fewshot.tools.postgres stop DIR
then
  mlflow server --host 127.0.0.1 --port 5000 --backend-store-uri URI --artifacts-destination DIR/artifacts

The cluster has one role, `fewshot`, trusted from this machine's loopback (no password: any local
user can connect, nobody else can reach it) and a database `mlflow`. For a server others reach,
use your organisation's PostgreSQL with a password in the URI instead (docs/experiments.md). As
root, the server runs as Debian's `postgres` user (PostgreSQL refuses to run as root), which then
owns DIR.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fewshot.core.errors import UserError, one_line_errors

ROLE, DATABASE = "fewshot", "mlflow"


def binaries() -> Path:
    """The folder of `initdb` and `pg_ctl`: the newest /usr/lib/postgresql/<version>/bin, or PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    raise UserError("PostgreSQL is not installed (no pg_ctl in /usr/lib/postgresql/*/bin or on PATH); "
                    "install Debian's package: apt-get install postgresql")


def uri(port: int) -> str:
    """The SQLAlchemy URI MLflow takes as `--backend-store-uri` (psycopg 3 driver)."""
    return f"postgresql+psycopg://{ROLE}@127.0.0.1:{port}/{DATABASE}"


def _as_owner() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _run(cmd: list[str], what: str) -> None:
    done = subprocess.run(_as_owner() + cmd, capture_output=True, text=True)
    if done.returncode:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise UserError(f"{what} failed: {detail[-1] if detail else f'exit {done.returncode}'}")


def start(folder: Path, port: int, durable: bool = True) -> str:
    """Start the server of `folder` on 127.0.0.1:`port` (creating the cluster and the `mlflow`
    database on first use) and return its URI. `durable=False` turns fsync off: for tests only."""
    folder = Path(folder).absolute()
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        if subprocess.run(_as_owner() + ["test", "-w", str(folder)]).returncode:
            raise UserError(f"the postgres user cannot reach '{folder}': a folder above it is closed "
                            "to others (e.g. mode 0700); pick a DIR under /tmp or /srv, or chmod o+x "
                            "the folders above it")
    bin_dir, data = binaries(), folder / "data"
    if not (data / "PG_VERSION").is_file():
        _run([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", ROLE, "-E", "UTF8",
              "--no-instructions", *([] if durable else ["--no-sync"])], f"initdb of '{data}'")
    if subprocess.run(_as_owner() + [str(bin_dir / "pg_ctl"), "-D", str(data), "status"],
                      capture_output=True).returncode == 0:  # already running: its own port
        return uri(int((data / "postmaster.pid").read_text().splitlines()[3]))
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1" + ("" if durable else " -c fsync=off")
    _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "server.log"),
          "-w", "start"], f"starting PostgreSQL on 127.0.0.1:{port} (see {folder / 'server.log'})")
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=port, user=ROLE, dbname="postgres",
                         autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone():
            conn.execute(f"CREATE DATABASE {DATABASE}")
    return uri(port)


def stop(folder: Path) -> None:
    """Stop the server of `folder` (fast shutdown: open sessions are ended, data is kept)."""
    data = Path(folder).absolute() / "data"
    if not (data / "postmaster.pid").is_file():
        raise UserError(f"no PostgreSQL server is running from '{data}'")
    _run([str(binaries() / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
         f"stopping PostgreSQL of '{data}'")


@contextlib.contextmanager
def temporary(port: int) -> Iterator[str]:
    """A throwaway server (fsync off) in a new temp folder, yielding its URI; stopped and removed
    after the block, whatever happens in it."""
    folder = Path(tempfile.mkdtemp(prefix="fewshot-postgres-"))
    try:
        yield start(folder, port, durable=False)
    finally:
        if (folder / "data/postmaster.pid").is_file():
            stop(folder)
        shutil.rmtree(folder, ignore_errors=True)


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="python -m fewshot.tools.postgres", description=__doc__.split("\n")[0],
                                  formatter_class=argparse.RawDescriptionHelpFormatter,
                                  epilog="\n".join(__doc__.split("\n")[2:]))
    commands = cli.add_subparsers(dest="command", required=True)
    begin = commands.add_parser("start", help="start (and on first use create) the server of DIR")
    begin.add_argument("folder", type=Path, metavar="DIR")
    begin.add_argument("--port", type=int, default=5432, help="loopback port (default 5432)")
    end = commands.add_parser("stop", help="stop the server of DIR")
    end.add_argument("folder", type=Path, metavar="DIR")
    return cli


@one_line_errors
def main() -> None:
    args = parser().parse_args()
    if args.command == "start":
        print(start(args.folder, args.port))
    else:
        stop(args.folder)


if __name__ == "__main__":
    main()
