"""`python tests/short_waits.py ARGS` is `python -m rudder_pipedrive_cli ARGS` whose retry
back-offs and 429 waits (http/retry.py) last a hundredth of their length.

For the runs tests start as processes of their own (resume_support.send_command): they meet the
sandbox's seeded 5xx, 429s and resets, and waited their real back-offs (0.25 s to 30 s each, a
429's 2 s; a third of the resume chaos tests' time). Each wait is still a wait, as long against the
others as it would be, while other events go on; what the run decides from a wait's length sees
the length it asked for (a 429 refused again after a whole window: Attempts.last_wait), and the
lengths themselves are pinned on fake clocks in tests/http. As tests/conftest.py's no_waits does
in-process, through the sleep a PipedriveClient made without one of its own (every command's)
takes by default; its pacer takes it too, but sleeps again until its window has room by the clock.
"""

import asyncio
import runpy
import sys

SCALE = 0.01


async def short_wait(seconds: float) -> None:
    await asyncio.sleep(seconds * SCALE)


def main() -> None:
    del sys.path[0]  # this folder (tests/): as under `python -m`, none of the tests' modules
    from rudder_pipedrive_cli.http.client import PipedriveClient

    PipedriveClient.__init__.__kwdefaults__["sleep"] = short_wait
    runpy.run_module("rudder_pipedrive_cli", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
