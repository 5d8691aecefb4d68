"""executor="ray": the same results as a local run, on a real 2-node Ray
cluster.

The cluster, its ``mongod`` and the driver run in tests/ray_scenario.py
inside a network namespace that has only loopback (``unshare -n``, as
root), so no Ray process can bind or probe anything but 127.0.0.1; a PID
namespace (``-p``) ends every one of them when the scenario exits. Never
``ray stop`` (it would end every Ray process on the machine).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def _skip_reason():
    try:
        import ray  # noqa: F401
    except ImportError:
        return "Ray is not installed (pip install fiftyone-dedup[ray])"
    if os.geteuid() != 0:
        return "needs root for a loopback-only network namespace (unshare -n)"
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "needs unshare and ip (util-linux, iproute2)"
    probe = subprocess.run(
        ["unshare", "-n", "-p", "-f", "--mount-proc", "true"], capture_output=True
    )
    if probe.returncode != 0:
        return "unshare -n -p is not permitted here: " + probe.stderr.decode().strip()
    return None


@pytest.fixture(scope="module")
def scenario():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    work = tempfile.mkdtemp(prefix="fiftyone-dedup-ray-")
    try:
        script = os.path.join(HERE, "ray_scenario.py")
        inner = f"ip link set lo up && exec {sys.executable} {script} {work} 6390"
        proc = subprocess.run(
            ["unshare", "-n", "-p", "-f", "--mount-proc", "bash", "-c", inner],
            capture_output=True, text=True, timeout=1500, cwd=REPO,
        )
        checks = {}
        for line in proc.stdout.splitlines():
            if line.startswith('{"check"'):
                entry = json.loads(line)
                checks[entry["check"]] = entry
        yield checks, proc
    finally:
        shutil.rmtree(work, ignore_errors=True)


CHECKS = [
    "two nodes on loopback",
    "images",
]
for _enc in ("dhash", "cnn"):
    CHECKS += [
        f"{_enc}: a worker was killed mid-run",
        f"{_enc}: identical encodings",
        f"{_enc}: failures reported alike",
        f"{_enc}: identical groups and kept samples",
        f"{_enc}: duplicates found",
        f"{_enc}: identical cross pairs",
        f"{_enc}: rerun skips finished chunks",
        f"{_enc}: rerun redoes only what is missing",
        f"{_enc}: identical cross-dataset results",
    ]
CHECKS += [
    "cnn: IVF probing every list gives the exact pairs",
    "cnn: IVF recall is measured right",
    "cnn: IVF recall recorded in the run",
    "delegated operator run on Ray",
    "command line --executor ray",
]


@pytest.mark.parametrize("name", CHECKS)
def test_ray_matches_local(scenario, name):
    checks, proc = scenario
    assert name in checks, (
        f"check did not run (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
    )
    assert checks[name]["ok"], json.dumps(checks[name])


def test_ray_pairs_match_local_tile_by_tile(scenario):
    checks, proc = scenario
    tiled = [c for n, c in checks.items() if ": identical pairs (" in n]
    assert len(tiled) == 2, proc.stderr[-4000:]
    assert all(c["ok"] and c["num_pairs"] > 0 for c in tiled), tiled


def test_scenario_exits_cleanly(scenario):
    _, proc = scenario
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_missing_ray_names_the_extra():
    # a fresh process where `import ray` fails, as without the extra
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "import fiftyone_dedup as fod\n"
        "from fiftyone_dedup.engine import distributed\n"
        "try:\n"
        "    distributed.connect()\n"
        "except ImportError as e:\n"
        "    print(str(e))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    message = out.stdout.strip()
    assert message == distributed_message()
    assert "pip install fiftyone-dedup[ray]" in message and "\n" not in message


def distributed_message():
    from fiftyone_dedup.engine import distributed

    return distributed.MISSING_RAY


def test_bad_executor_is_refused(fresh_dataset):
    import fiftyone_dedup as fod

    with pytest.raises(ValueError, match="executor must be one of local, ray"):
        fod.compute_hashes(fresh_dataset, executor="dask")
    with pytest.raises(ValueError, match="ray_address applies to executor='ray'"):
        fod.find_duplicates(fresh_dataset, ray_address="127.0.0.1:6379")
