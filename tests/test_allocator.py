"""funcnn.allocator: glibc's malloc stops returning step-sized memory to the kernel.

Each check runs in a fresh interpreter: malloc settings are per process.
``import funcnn`` leaves them alone; ``funcnn.allocator.tune_allocator()`` applies them.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# A training step's pattern: several 2 MiB arrays (above glibc's starting mmap
# threshold, below NumPy's 4 MiB huge-page cut-off) made, then all freed. Prints the
# allocator status and the minor page faults of one round, after warm-up rounds.
CHURN = """
import json, resource, sys, numpy as np
import funcnn
if sys.argv[1:] == ["tune"]:
    funcnn.allocator.tune_allocator()

def churn():
    arrays = [np.ones(2**19, np.float32) for _ in range(6)]
    del arrays

for _ in range(3):
    churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    churn()
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20
print(json.dumps([funcnn.allocator.status(), faults]))
"""


def run(code: str, *args: str, **env: str) -> list:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "FUNCNN_"))}
    clean.pop("GLIBC_TUNABLES", None)
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def on_glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):
        return False


@pytest.mark.skipif(not on_glibc(), reason="the fault count is a property of glibc's malloc")
def test_import_changes_nothing_in_the_host_process():
    status, faults = run(CHURN)
    assert status == "not tuned yet: call tune_allocator()"
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if not (thp.exists() and "[always]" in thp.read_text()):  # huge pages fault less
        assert faults > 1000, f"only {faults} page faults per round with glibc's defaults"


def test_tune_allocator_makes_page_faults_stop():
    status, faults = run(CHURN, "tune")
    if not on_glibc():
        assert status.startswith("left alone: the C library is not glibc")
        return
    assert status.startswith("tuned (glibc"), status
    # 6 x 2 MiB of fresh pages would be 3,072 faults a round; recycled memory takes none
    assert faults < 64, f"{faults} page faults per round with the allocator tuned"


@pytest.mark.skipif(not on_glibc(), reason="the fault count is a property of glibc's malloc")
def test_opting_out_keeps_glibc_defaults_and_their_page_faults():
    status, faults = run(CHURN, "tune", FUNCNN_MALLOC_TUNING="0")
    assert status == "glibc defaults: FUNCNN_MALLOC_TUNING=0"
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if not (thp.exists() and "[always]" in thp.read_text()):  # huge pages fault less
        assert faults > 1000, f"only {faults} page faults per round with glibc's defaults"


@pytest.mark.parametrize(
    "env, named",
    [
        ({"MALLOC_TRIM_THRESHOLD_": "1000000"}, "MALLOC_TRIM_THRESHOLD_"),
        ({"MALLOC_MMAP_THRESHOLD_": "1000000"}, "MALLOC_MMAP_THRESHOLD_"),
        ({"MALLOC_TOP_PAD_": "0"}, "MALLOC_TOP_PAD_"),
        ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1000000"}, "GLIBC_TUNABLES"),
    ],
)
def test_the_users_own_malloc_settings_are_left_alone(env, named):
    code = (
        "import json, funcnn; funcnn.allocator.tune_allocator(); "
        "print(json.dumps([funcnn.allocator.status()]))"
    )
    (status,) = run(code, **env)
    assert status == f"left alone: the environment sets {named}"


def test_tune_allocator_is_idempotent():
    code = (
        "import json, funcnn; funcnn.allocator.tune_allocator(); "
        "first = funcnn.allocator.status(); "
        "again = funcnn.allocator.tune_allocator(); "
        "print(json.dumps([first, again, funcnn.allocator.status()]))"
    )
    first, again, status = run(code)
    assert status == first
    assert again is first.startswith("tuned")
