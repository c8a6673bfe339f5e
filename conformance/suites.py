"""The Azure SDK test suites that run.py runs live against Strongroom, and what each leaves out.

Each suite is one ``Suite`` in ``SUITES``: the distribution and the version whose sdist ships
``tests/``, and an ``Exclusion`` for each group of tests that cannot run against any Key Vault
stand-in, with the reason the report prints. Exclusions are only for tests that need a service
Strongroom does not imitate (a Managed HSM, an attestation service); a test that fails because
Strongroom misbehaves stays in and counts as a failure. Tests parametrised over a Managed HSM skip
by themselves while ``AZURE_MANAGEDHSM_URL`` is unset, so they need no exclusion. In keys, only
``test_key_release`` needs the attestation service; the other release-policy tests need just its
URL as a string (see the keys suite's ``env``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Exclusion:
    """Tests deselected before the run: ``pattern`` is an fnmatch pattern on pytest node ids."""

    pattern: str
    reason: str


@dataclass(frozen=True)
class Suite:
    name: str
    distribution: str
    version: str
    exclusions: tuple[Exclusion, ...] = ()
    # Node-id patterns of long tests to start first, so that parallel workers finish together.
    slow: tuple[str, ...] = ()
    # What is known about a failure: node-id pattern -> the server behaviour behind it. The
    # report prints it beside each failing test it matches; a fixed server leaves it unused.
    diagnoses: dict[str, str] = field(default_factory=dict)
    # Extra environment for this suite's tests, on top of what every suite gets.
    env: dict[str, str] = field(default_factory=dict)
    # Where (key, certificate), relative to the unpacked sdist, run.py writes a fresh test CA
    # (PEM, ca.py) that the suite's tests read but its sdist does not ship.
    test_ca: tuple[str, str] | None = None
    # The test files (or node ids) to run, relative to the sdist; the report names them.
    paths: tuple[str, ...] = ("tests",)
    # Serve the vault as the suite's Managed HSM (AZURE_MANAGEDHSM_URL) and give the tests a
    # blob container on Azurite (BLOB_STORAGE_URL, BLOB_CONTAINER_NAME, BLOB_STORAGE_SAS_TOKEN),
    # whose account the server also holds the key of (the tests' "managed identity").
    managed_hsm_with_storage: bool = False
    # pytest-xdist workers for this suite, instead of run.py's --workers.
    workers: str | None = None
    # The longest sleep the suite's tests may take, in seconds (CONFORMANCE_MAX_SLEEP): their
    # fixed waits are for the real service's timing, not for what they check.
    max_sleep: float | None = None

    @property
    def sdist_dir_name(self) -> str:
        return f"{self.distribution.replace('-', '_')}-{self.version}"


SUITES: dict[str, Suite] = {
    suite.name: suite
    for suite in (
        Suite(
            name="secrets",
            distribution="azure-keyvault-secrets",
            version="4.12.0",
            # Every secrets test can run against a vault: none needs a Managed HSM or an
            # attestation service.
            exclusions=(),
            # Live, the backup/restore samples sleep 60 s between purge and restore.
            slow=("tests/test_samples_secrets*::*test_example_secrets_backup_restore*",),
            diagnoses={},
        ),
        Suite(
            name="keys",
            distribution="azure-keyvault-keys",
            version="4.11.3",
            exclusions=(
                Exclusion(
                    pattern="tests/test_key*.py::*::test_key_release[[]*_vault]",
                    reason=(
                        "Secure key release: the test fetches a token from an attestation service "
                        "(`GET {AZURE_KEYVAULT_ATTESTATION_URL}/generate-test-token`), which "
                        "Strongroom does not imitate, and then calls `POST /keys/{name}//release`."
                    ),
                ),
            ),
            # The release-policy tests (test_update_release_policy, test_immutable_release_policy)
            # only write the attestation URL into the policy as its authority and never contact
            # it, so they run against any URL; unset, _get_attestation_uri raises instead of
            # skipping. The .invalid name never resolves. (test_imported_key_release and the
            # mhsm parametrisations skip by themselves: AZURE_MANAGEDHSM_URL is unset.)
            env={"AZURE_KEYVAULT_ATTESTATION_URL": "https://attestation.invalid"},
            # Live, the backup/restore samples sleep 3 x 60 s between purge and restore.
            slow=("tests/test_samples_keys*::*test_example_keys_backup_restore*",),
            diagnoses={},
        ),
        Suite(
            name="certificates",
            distribution="azure-keyvault-certificates",
            version="4.12.0",
            # Every certificates test can run against a vault: none needs a Managed HSM or an
            # attestation service.
            exclusions=(),
            # test_merge_certificate signs the CSR with the SDK repository's tests/ca.key and
            # tests/ca.crt, which the sdist (tests/*.py only) leaves out.
            test_ca=("tests/ca.key", "tests/ca.crt"),
            # Live, the backup/restore sample sleeps 60 s and recover/purge 50 s.
            slow=(
                "tests/test_examples_certificates*::*test_example_certificate_backup_restore*",
                "tests/test_certificates_client*::*test_recover_and_purge*",
            ),
            diagnoses={},
        ),
        Suite(
            name="administration",
            distribution="azure-keyvault-administration",
            version="4.7.2",
            # The backup client's tests and samples: whole-vault backup, restore, selective
            # restore, pre-checks, polling and continuation tokens, through a SAS token and
            # through the server's own key ("managed identity"); and the access-control
            # client's: role definitions (custom roles made, updated, read, deleted) and role
            # assignments. The settings tests are for an API Strongroom does not serve, so
            # their files are not run.
            paths=(
                "tests/test_backup_client.py",
                "tests/test_backup_client_async.py",
                "tests/test_examples_administration.py",
                "tests/test_examples_administration_async.py",
                "tests/test_access_control.py",
                "tests/test_access_control_async.py",
            ),
            exclusions=(
                Exclusion(
                    pattern="tests/test_backup_client_async.py::*::test_backup_restore_sas*",
                    reason=(
                        "The test reads `.error` from `await begin_pre_restore(...).result()`, "
                        "which the aio client defines to return None (`cls=lambda *_: None` in "
                        "azure/keyvault/administration/aio/_backup_client.py): it fails against "
                        "any service, Managed HSM included. Its sync twin runs."
                    ),
                ),
            ),
            managed_hsm_with_storage=True,
            # The access-control tests assign a role to the principal this names (upstream: the
            # pipeline's managed identity); Strongroom takes any principal id, as Managed HSM does.
            env={"MANAGED_IDENTITY_CLIENT_ID": "5b1f5a5e-7c1d-4c55-9a43-3a1f0c2e9d10"},
            # A full restore restores the whole vault, which the other tests share: one at a
            # time, as upstream runs them against one HSM.
            workers="0",
            # Each test sleeps 15 s and 60 s for the real Managed HSM (about 17 minutes).
            max_sleep=1.0,
        ),
    )
}
