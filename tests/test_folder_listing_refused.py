"""A local folder that cannot be listed (a subfolder rpd may not open) names the folder refused
and its permissions; it said 'access denied' and asked to check the URL and the provider's
credentials, words for a bucket."""

from __future__ import annotations

import errno

from rudder_pipedrive_cli.io.readers import listing_refused


def test_a_local_folder_refused_names_the_subfolder_and_its_permissions() -> None:
    denied = PermissionError(errno.EACCES, "Permission denied", "/data/backup/src-1/gw")
    refusal = listing_refused("/data/backup", denied)
    assert (refusal.message, refusal.hint) == (
        "cannot list /data/backup: Permission denied (/data/backup/src-1/gw)",
        "check the folder's permissions (nothing was read or sent)",
    )


def test_a_bucket_refused_still_names_the_credentials() -> None:
    refusal = listing_refused("s3://bucket/rs", PermissionError(errno.EACCES, "Forbidden"))
    assert (refusal.message, refusal.hint) == (
        "cannot list s3://bucket/rs: access denied",
        "check the URL and the provider's credentials (nothing was read or sent)",
    )
