"""The `rpd` command (`[project.scripts]`) and `python -m rudder_pipedrive_cli`.

Start-up makes some 36,000 tracked objects that live as long as the process (modules, classes,
typer's command tree, rich's styles) and no garbage worth collecting. So the cyclic garbage
collector is off while rpd starts; once the command is loaded (`load_command` in cli/main.py),
what exists is frozen (`gc.freeze`: left out of every later collection) and collection is back on.
The collections during start-up, and later ones walking the start-up objects again, were a sixth
of an offline dry-run's start (issue 14 item 13; `python -m benchmarks.startup`).
"""

import gc
import io
import os
import sys


def whole_writes(stream: io.TextIOWrapper, kind: type[io.TextIOWrapper]) -> io.TextIOWrapper:
    """`stream` again (as a `kind`), over a buffered layer of its own on the same descriptor (not
    closed with it: sys.__stdout__ and sys.__stderr__ still hold the first), flushed at every
    line as stderr is (and as unbuffered text was written). A buffered layer writes all or
    raises: under PYTHONUNBUFFERED or -u (many container images set it) the binary layer is the
    raw file, whose write may take part of what it is given (a disk filling up, the size limit)
    and say so only by its count, which print, rich and rpd never look at: the output was cut
    short without a word, exit 0."""
    try:
        descriptor = stream.fileno()
    except (OSError, ValueError):  # a stream with no descriptor (embedded, tests): as it is
        return stream
    buffered = open(descriptor, "wb", closefd=False)  # noqa: SIM115 (as long as the process)
    return kind(buffered, encoding=stream.encoding, errors=stream.errors, line_buffering=True)


def main() -> None:
    gc.disable()
    from rudder_pipedrive_cli.cli.exits import Stderr

    # A closed stdout or stderr (`rpd ... >&-`) is /dev/null: what rpd says there is lost, as its
    # caller asked, and the run itself goes on (rich and the commands write to them unchecked).
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None:
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 (as long as the process)
        elif name == "stderr" and isinstance(stream, io.TextIOWrapper):
            setattr(sys, name, whole_writes(stream, Stderr))  # never stops a run (exits.py)
        elif isinstance(stream, io.TextIOWrapper) and isinstance(stream.buffer, io.RawIOBase):
            setattr(sys, name, whole_writes(stream, io.TextIOWrapper))
    # What stdout cannot encode (a Latin-1 locale, PYTHONIOENCODING=ascii; a file name that is
    # not UTF-8) is shown as escapes, as on stderr: it was "internal error", exit 70.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")
    from rudder_pipedrive_cli.cli.main import app

    app(prog_name="rpd")


if __name__ == "__main__":
    main()
