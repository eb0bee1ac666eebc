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
