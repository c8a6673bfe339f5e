"""Whole-vault backup at scale: objects per second for backup, verify and restore, and the
peak memory of each, beside the per-object backup rate measured in the same run.

One run: a throwaway installation (SQLite, in a temp dir) with a vault of ``--objects`` secrets
(10,000) plus one secret of ``--versions`` versions (10,000), filled through the services.
Then, each phase in a process of its own so that its peak RSS is its own:

* ``per-object``: ``backup_object`` of every object, one blob each, kept nowhere (the baseline:
  what a script looping over ``POST /secrets/{name}/backup`` costs the server, minus HTTP);
* ``backup``: the whole vault into a directory (``VaultBackups.backup``);
* ``verify``: every seal and hash of that folder;
* ``restore``: the folder into an empty vault of the same installation.

It prints objects/s and peak RSS per phase and the ratio of the whole-vault backup rate to the
per-object rate. Memory is bounded when the peak RSS of backup and restore stays near the
per-object phase's, whatever the vault's size (try ``--objects 2000`` against the default).

    .venv/bin/python bench/vault_backup.py [--objects 10000] [--versions 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from strongroom.config import Settings
from strongroom.services.backup_locations import DirectoryLocation
from strongroom.services.container import Services
from strongroom.services.installation import open_installation
from strongroom.services.vaults import VaultService

SOURCE, TARGET = "benchsrc", "benchdst"


def _services(data_dir: Path) -> Services:
    return Services(open_installation(Settings(data_dir=data_dir)))


async def _fill(services: Services, objects: int, versions: int) -> None:
    vault = VaultService(services.installation).get_record(SOURCE)
    secrets = services.secrets
    batch = 200
    for start in range(0, objects, batch):
        await asyncio.gather(
            *(
                secrets.set_secret(vault, f"s{i:06d}", f"value-{i}-" + "x" * 64)
                for i in range(start, min(start + batch, objects))
            )
        )
    for start in range(0, versions, batch):
        await asyncio.gather(
            *(
                secrets.set_secret(vault, "many-versions", f"v{i}")
                for i in range(start, min(start + batch, versions))
            )
        )


def prepare(data_dir: Path, objects: int, versions: int) -> None:
    services = _services(data_dir)
    VaultService(services.installation).create(SOURCE)
    VaultService(services.installation).create(TARGET)
    asyncio.run(_fill(services, objects, versions))
    asyncio.run(services.close())
    services.installation.close()


def phase(name: str, data_dir: Path, out: Path) -> dict[str, Any]:
    """Runs one phase in this process; returns its figures."""
    services = _services(data_dir)
    vaults = VaultService(services.installation)
    location = DirectoryLocation(out)
    started = time.perf_counter()
    if name == "per-object":
        vault = vaults.get_record(SOURCE)
        count = 0
        after = None
        reads = services.installation.store.reads
        while True:
            rows = reads.list_objects(vault.id, "secret", deleted=False, after=after, limit=500)
            for obj, _ in rows:
                services.secrets.backup_object(vault, obj.name)
                count += 1
            if len(rows) < 500:
                break
            after = rows[-1][0].lname
    elif name == "backup":
        result = services.vault_backups.backup(vaults.get_record(SOURCE), location, folder="f")
        count = result.objects
    elif name == "verify":
        report = services.vault_backups.verify(location, "f")
        assert report.ok, report.problems
        count = report.objects
    elif name == "restore":
        restored = asyncio.run(
            services.vault_backups.restore(vaults.get_record(TARGET), location, "f")
        )
        count = restored.created
    else:
        raise SystemExit(f"unknown phase {name}")
    seconds = time.perf_counter() - started
    asyncio.run(services.close())
    services.installation.close()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"phase": name, "objects": count, "seconds": seconds, "peak_rss_mib": peak_kib / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--versions", type=int, default=10_000)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.data_dir, args.out)))
        return
    with tempfile.TemporaryDirectory(prefix="strongroom-backup-bench-") as tmp:
        data_dir, out = Path(tmp) / "data", Path(tmp) / "backups"
        started = time.perf_counter()
        prepare(data_dir, args.objects, args.versions)
        print(
            f"filled {args.objects} secrets + 1 of {args.versions} versions in "
            f"{time.perf_counter() - started:.1f} s"
        )
        figures = {}
        for name in ("per-object", "backup", "verify", "restore"):
            done = subprocess.run(
                [sys.executable, __file__, "--phase", name, "--data-dir", str(data_dir),
                 "--out", str(out)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            figures[name] = json.loads(done.stdout.strip().splitlines()[-1])
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"\n{'phase':<12}{'objects':>9}{'seconds':>10}{'objects/s':>11}{'peak RSS':>12}")
    for f in figures.values():
        rate = f["objects"] / f["seconds"]
        print(
            f"{f['phase']:<12}{f['objects']:>9}{f['seconds']:>10.1f}{rate:>11,.0f}"
            f"{f['peak_rss_mib']:>9.0f} MiB"
        )
    per_object = figures["per-object"]["objects"] / figures["per-object"]["seconds"]
    whole = figures["backup"]["objects"] / figures["backup"]["seconds"]
    print(f"\nfolder: {size / 2**20:.1f} MiB")
    print(f"whole-vault backup / per-object backup rate: {whole / per_object:.2f}")


if __name__ == "__main__":
    main()
