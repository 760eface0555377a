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


def test_a_config_to_standard_output_through_its_device_name_is_written_to_a_pipe(
    tmp_path: Path,
) -> None:
    # -o /dev/stdout into a pipe (`rpd init -o /dev/stdout --force | ...`): the link's real path
    # is no file (/proc/PID/fd/pipe:[N]), so the file beside it could not be made: 'cannot
    # write /dev/stdout: No such file or directory', exit 2, where it wrote the config.
    run = rpd_process(
        tmp_path,
        *("init", "-q", "--from-rudderstack", DESTINATION, "-o", "/dev/stdout", "--force"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert (run.returncode, run.stderr) == (0, b"")
    assert run.stdout.decode().startswith("# rpd config converted from the RudderStack")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def read_only_folder(folder: Path) -> None:
    """`folder` made one no file can be made in (files in it still writable), or the test
    skipped: as root, mode bits are not enough, and `chattr +i` may be refused."""
    folder.chmod(0o555)
    try:
        (folder / ".probe").touch()
    except PermissionError:
        return
    (folder / ".probe").unlink()
    folder.chmod(0o755)
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False).returncode:
        pytest.skip("no way here to make a folder read-only")


def test_a_writable_config_in_a_read_only_folder_is_written_in_place(tmp_path: Path) -> None:
    # The file beside it cannot be made there: 'cannot write rpd.toml: Permission denied', exit
    # 2, for a config rpd may write (init wrote it in place before d453120).
    folder = tmp_path / "etc"
    folder.mkdir()
    config = folder / "rpd.toml"
    config.write_text(KEPT)
    read_only_folder(folder)
    try:
        run = rpd_process(
            folder,
            *("init", "-q", "--from-rudderstack", DESTINATION, "-o", "rpd.toml", "--force"),
            stderr=subprocess.PIPE,
        )
    finally:
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True, check=False)
        folder.chmod(0o755)
    assert (run.returncode, run.stderr) == (0, b"")
    assert config.read_text().startswith("# rpd config converted from the RudderStack")
    assert sorted(p.name for p in folder.iterdir()) == ["rpd.toml"]
