"""CPU thread policy (common/train/cpu_runtime.py): contention is read from what runs now."""
import subprocess
import sys
from pathlib import Path

import pytest

from domainspec.common.train.cpu_runtime import busy_cpus_elsewhere, cpu_threads


@pytest.mark.skipif(not Path("/proc/loadavg").is_file(), reason="needs Linux /proc/loadavg")
def test_a_spinning_process_counts_as_busy():
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        import time
        time.sleep(0.3)  # let it get scheduled
        assert busy_cpus_elsewhere() >= 1
    finally:
        spin.kill()
        spin.wait()


def test_omp_num_threads_wins_and_the_current_setting_is_never_raised(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert cpu_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert cpu_threads(current=1) == 1
    assert cpu_threads(local_world_size=64) == 1
