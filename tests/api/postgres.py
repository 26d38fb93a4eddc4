"""A throw-away PostgreSQL cluster for the tests: Debian's server binaries, a temporary data folder, a free
port of 127.0.0.1, trust authentication for local connections; stopped and deleted at the end.

``AGENTFLOW_TEST_POSTGRES_URL`` (a database the tests may create tables in) is used instead when set.
PostgreSQL refuses to run as root: as root, the cluster runs as the ``postgres`` system user that Debian's
package creates.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

URL_ENV = "AGENTFLOW_TEST_POSTGRES_URL"


class NoPostgres(Exception):
    """No PostgreSQL server can be started here; the message says what to install."""


def server_bin() -> Path:
    """The newest installed server's binaries (``/usr/lib/postgresql/N/bin``) or the ones on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3])
                   if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    raise NoPostgres("no PostgreSQL server binaries (pg_ctl, initdb): install Debian's postgresql "
                     "(bash scripts/test does), or set AGENTFLOW_TEST_POSTGRES_URL")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def throwaway_cluster() -> Iterator[str]:
    """Start a cluster; yields its URL (database ``agentflow``); stops and deletes it afterwards."""
    given = os.environ.get(URL_ENV)
    if given:
        yield given
        return
    binaries = server_bin()
    as_root = os.geteuid() == 0
    prefix: list[str] = []
    if as_root:
        if shutil.which("runuser") is None:
            raise NoPostgres("running as root, and runuser (to start PostgreSQL as its own user) is missing")
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            raise NoPostgres("running as root and there is no 'postgres' user to run the server as "
                             "(Debian's postgresql package creates it)") from None
        prefix = ["runuser", "-u", "postgres", "--"]
    folder = Path(tempfile.mkdtemp(prefix="agentflow-pg-"))
    data = folder / "data"
    data.mkdir()
    if as_root:
        os.chmod(folder, 0o755)
        shutil.chown(data, "postgres", "postgres")
        shutil.chown(folder, "postgres", "postgres")
    port = _free_port()
    run = lambda *cmd: subprocess.run([*prefix, *cmd], check=True, capture_output=True, text=True,
                                      timeout=120)
    try:
        run(str(binaries / "initdb"), "-D", str(data), "-U", "agentflow", "--auth=trust", "-E", "UTF8",
            "--no-sync")
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        run(str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "server.log"), "-w",
            "-t", "60", "start")
    except subprocess.CalledProcessError as exc:
        log = (folder / "server.log").read_text() if (folder / "server.log").exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"cannot start PostgreSQL: {exc.stderr or exc.stdout}\n{log}") from exc
    try:
        run(str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "agentflow", "agentflow")
        yield f"postgresql://agentflow@127.0.0.1:{port}/agentflow"
    finally:
        subprocess.run([*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=60, check=False)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":  # python -m tests.api.postgres: start one by hand, print its URL, wait
    import time

    with throwaway_cluster() as url:
        print(url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
