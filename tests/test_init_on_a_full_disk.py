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


def test_a_config_in_a_folder_rpd_may_not_write_is_written_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `--force` over a config rpd may write, in a folder it may not (no file can be made beside
    # it): written in place as before the write-whole change, not refused 'Permission denied'.
    # The tests run as root, which every folder lets write: the refusal is stood in for.
    from rudder_pipedrive_cli.cli.init_cmd import write_whole

    config = tmp_path / "rpd.toml"
    config.write_text(KEPT)
    write_text = Path.write_text

    def refused_beside(self: Path, *args: object, **kwargs: object) -> int:
        if self.name.startswith("."):
            raise PermissionError(13, "Permission denied", str(self))
        return write_text(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", refused_beside)
    write_whole(config, "[pipedrive]\\n")
    assert config.read_text() == "[pipedrive]\\n"
    assert [p.name for p in tmp_path.iterdir()] == ["rpd.toml"]
    with pytest.raises(PermissionError):  # a new file there: nothing to write in place
        write_whole(tmp_path / "new.toml", "[pipedrive]\\n")
    assert [p.name for p in tmp_path.iterdir()] == ["rpd.toml"]
