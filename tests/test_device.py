import platform
import subprocess
import sys

import pytest
import torch

from impasto.core.device import pick_device


def _tune(env_flag: str | None) -> str:
    code = (
        "import os\n"
        + (f"os.environ['IMPASTO_KEEP_MALLOC'] = '{env_flag}'\n" if env_flag is not None else "")
        + "from impasto.core.malloc import tune_allocator\nprint(tune_allocator(), tune_allocator())"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
@pytest.mark.subprocess
def test_allocator_tuning_applies_once_and_can_be_turned_off():
    assert _tune(None) == "True True"
    assert _tune("1") == "False False"


def test_auto_device_on_this_machine_is_usable():
    dev = pick_device("auto")
    assert torch.zeros(1, device=dev).device.type == dev.type


@pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
@pytest.mark.subprocess
def test_free_memory_is_returned_between_scales():
    """With the tuned heap, memory freed in the middle of the heap stays resident until
    :func:`release_free_memory` gives its pages back (what coarse to fine calls between scales)."""
    code = (
        "import resource\n"
        "from impasto.core.malloc import tune_allocator, release_free_memory\n"
        "def rss():\n"
        "    return int(open('/proc/self/statm').read().split()[1]) * resource.getpagesize() >> 20\n"
        "assert tune_allocator()\n"
        "big = bytearray(300 << 20)\n"
        "after = bytearray(1 << 20)  # keeps the freed block from being the heap's top\n"
        "del big\n"
        "kept = rss()\n"
        "release_free_memory()\n"
        "print(kept, rss())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    kept, released = map(int, out)
    assert kept - released > 250, (kept, released)
