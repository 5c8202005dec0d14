"""Progress bars, in one place: on a terminal only, so that logs and pipes get no bar remnants."""

from __future__ import annotations


def bar(total=None, **kwargs):
    """A tqdm bar on stderr that turns itself off when stderr is not a terminal."""
    from tqdm import tqdm

    # no monitor thread: the tessellation forks its workers while a bar is open
    tqdm.monitor_interval = 0
    return tqdm(total=total, leave=False, disable=None, **kwargs)
