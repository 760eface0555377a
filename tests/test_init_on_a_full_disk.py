"""`rpd init` whose config cannot be written whole (a full disk, the file size limit) leaves
what was there: it truncated the file, then failed, so `--force` over a config destroyed it (an
empty or cut file), and a first init left an empty rpd.toml that the rerun refused as 'already
exists' and every other command read as a valid, empty config."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from process_support import ROOT, rpd_process

DESTINATION = str(ROOT / "examples" / "rudderstack-destination.json")
LIMIT = 512  # bytes: the config init writes from that destination is about 1 KiB
KEPT = '# my config, as I left it\n[pipedrive]\nplan = "lite"\n'


def init(folder: Path, *args: str) -> tuple[int, list[str]]:
    run = rpd_process(
        folder,
        *("init", "-q", "--from-rudderstack", DESTINATION, "-o", "rpd.toml", *args),
        file_size=LIMIT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return run.returncode, run.stderr.decode().splitlines()


@pytest.mark.parametrize("before", [None, KEPT])
def test_a_config_that_cannot_be_written_whole_leaves_what_was_there(
    tmp_path: Path, before: str | None
) -> None:
    config = tmp_path / "rpd.toml"
    if before is not None:
        config.write_text(before)
    code, stderr = init(tmp_path, *(["--force"] if before else []))
    assert code == 2
    assert stderr == [
        "error: cannot write rpd.toml: File too large (over the largest file this process may "
        "write: `ulimit -f`)",
        "hint: write the output elsewhere (or raise the limit), then run it again",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == (["rpd.toml"] if before else [])
    if before is not None:
        assert config.read_text() == before
