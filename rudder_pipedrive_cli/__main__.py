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


def main() -> None:
    gc.disable()
    # A closed stdout or stderr (`rpd ... >&-`) is /dev/null: what rpd says there is lost, as its
    # caller asked, and the run itself goes on (rich and the commands write to them unchecked).
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 (as long as the process)
    # What stdout cannot encode (a Latin-1 locale, PYTHONIOENCODING=ascii; a file name that is
    # not UTF-8) is shown as escapes, as on stderr: it was "internal error", exit 70.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")
    from rudder_pipedrive_cli.cli.main import app

    app(prog_name="rpd")


if __name__ == "__main__":
    main()
