"""The container image: the Dockerfile builds with podman and the demo runs in it.

Opt-in: runs only with ``FIFTYONE_DEDUP_CONTAINER_TESTS=1``, where podman and
runc are installed and the tests run as root (a build from nothing writes
about 15 GB and takes minutes, too much for every test run);
``FIFTYONE_DEDUP_SKIP_CONTAINER=1`` or ``-m "not container"`` opts out again.
Each unmet need is a skip that names it.

No container registry has to be reachable: when the default base
(``python:3.11-slim-bookworm``) cannot be had, a Debian bookworm base is made
once with ``debootstrap`` from the host's Debian mirror, holding the host's CA
bundle, and imported as ``localhost/fiftyone-dedup-base:bookworm``
(``FIFTYONE_DEDUP_CONTAINER_BASE=IMAGE`` names another base). pip inside the
build uses the host's pip settings (config files and ``PIP_*`` variables,
with local indexes bind-mounted read-only) and the host network. Podman runs
with runc and raised ulimits through a ``CONTAINERS_CONF`` file.

The first build takes a while (the dependencies are about 6 GB with PyPI's
CUDA torch); later builds reuse podman's cached dependency layer.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP_ENV = "FIFTYONE_DEDUP_SKIP_CONTAINER"
OPT_IN_ENV = "FIFTYONE_DEDUP_CONTAINER_TESTS"
BASE_ENV = "FIFTYONE_DEDUP_CONTAINER_BASE"
#: the base made with debootstrap when no registry is reachable
LOCAL_BASE = "localhost/fiftyone-dedup-base:bookworm"
DEFAULT_BASE = "docker.io/library/python:3.11-slim-bookworm"
IMAGE = "localhost/fiftyone-dedup:test"
#: pip settings passed on to the build (config keys)
PIP_KEYS = (
    "index-url", "extra-index-url", "find-links", "trusted-host", "timeout",
    "default-timeout", "retries", "proxy", "no-index",
)
#: the host CA bundle's place in the debootstrap base
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

pytestmark = pytest.mark.container

CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
"""


def _podman_env(conf_dir):
    env = dict(os.environ)
    path = os.path.join(conf_dir, "containers.conf")
    with open(path, "w") as f:
        f.write(CONTAINERS_CONF)
    env["CONTAINERS_CONF"] = path
    return env


def _run(cmd, env, timeout, check=True, **kw):
    proc = subprocess.run(
        cmd, env=env, timeout=timeout, capture_output=True, text=True, **kw
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{shlex.join(cmd)} exited {proc.returncode}:\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def _image_exists(name, env):
    return _run(["podman", "image", "exists", name], env, 60, check=False).returncode == 0


def debian_mirror():
    """The host's Debian mirror for bookworm, from its apt sources.

    Returns:
        the mirror URL (default ``http://deb.debian.org/debian``)
    """
    found = []
    d = "/etc/apt/sources.list.d"
    files = [os.path.join(d, n) for n in sorted(os.listdir(d))] if os.path.isdir(d) else []
    files.append("/etc/apt/sources.list")
    for path in files:
        if not path.endswith((".list", ".sources")) or not os.path.isfile(path):
            continue
        with open(path) as f:
            text = f.read()
        if path.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(
                    (k.strip().lower(), v.strip())
                    for k, _, v in (
                        line.partition(":") for line in stanza.splitlines()
                        if ":" in line and not line.lstrip().startswith("#")
                    )
                )
                if "bookworm" in fields.get("suites", "").split():
                    found.extend(fields.get("uris", "").split())
        else:
            for line in text.splitlines():
                words = line.split("#")[0].split()
                if len(words) >= 3 and words[0] == "deb" and "bookworm" in words:
                    found.append(next(w for w in words[1:] if "://" in w))
    for uri in found:
        if "security" not in uri:
            return uri
    return "http://deb.debian.org/debian"


def make_debian_base(env, name=LOCAL_BASE):
    """Makes a Debian bookworm base image with debootstrap and imports it.

    The host's CA bundle goes in, as the system bundle and as a local CA file
    (kept when ``ca-certificates`` rebuilds the bundle), so that pip inside
    trusts what the host trusts.
    """
    root = tempfile.mkdtemp(prefix="fiftyone-dedup-rootfs-")
    try:
        _run(
            ["nice", "-n", "10", "debootstrap", "--variant=minbase", "bookworm", root,
             debian_mirror()],
            env, 1800,
        )
        if os.path.isfile(CA_BUNDLE):
            local = os.path.join(root, "usr/local/share/ca-certificates")
            os.makedirs(local, exist_ok=True)
            shutil.copyfile(CA_BUNDLE, os.path.join(local, "host-ca-bundle.crt"))
            os.makedirs(os.path.dirname(root + CA_BUNDLE), exist_ok=True)
            shutil.copyfile(CA_BUNDLE, root + CA_BUNDLE)
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        try:
            _run(["podman", "import", "-", name], env, 900, stdin=tar.stdout)
        finally:
            tar.stdout.close()
            tar.wait()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return name


def _base_image(env):
    """The base to build on: the one named, the default, or a Debian one made here."""
    if os.environ.get(BASE_ENV):
        return os.environ[BASE_ENV]
    for name in (LOCAL_BASE, DEFAULT_BASE):
        if _image_exists(name, env):
            return name
    pull = _run(["podman", "pull", "-q", DEFAULT_BASE], env, 120, check=False)
    if pull.returncode == 0:
        return DEFAULT_BASE
    if not shutil.which("debootstrap"):
        pytest.skip(
            f"no base image: {DEFAULT_BASE} cannot be pulled and debootstrap "
            f"is not installed (or set {BASE_ENV})"
        )
    return make_debian_base(env)


def host_pip_settings():
    """The host's pip settings, from its config files and ``PIP_*`` variables.

    Returns:
        ``(pip.conf text, local folders to bind-mount read-only)``
    """
    out = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True, text=True, timeout=120,
    ).stdout
    settings = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        section, _, name = key.partition(".")
        if section in ("global", "install") and name in PIP_KEYS:
            settings[name] = value.strip().strip("'\"")
    for name in PIP_KEYS:
        value = os.environ.get("PIP_" + name.upper().replace("-", "_"))
        if value:
            settings[name] = value
    mounts = set()
    for name in ("index-url", "extra-index-url", "find-links"):
        for token in settings.get(name, "").split():
            path = token[len("file://"):] if token.startswith("file://") else token
            if not path.startswith("/") or not os.path.exists(path):
                continue
            path = path.rstrip("/")
            # a PEP 503 index links to its files beside "simple/"
            if os.path.basename(path) == "simple":
                path = os.path.dirname(path)
            mounts.add(path)
    lines = ["[global]"] + [f"{k} = {v}" for k, v in sorted(settings.items())]
    if os.path.isfile(CA_BUNDLE):
        lines.append(f"cert = {CA_BUNDLE}")
    return "\n".join(lines) + "\n", sorted(mounts)


def build_image(env, base, tag=IMAGE, work_dir=None):
    """Builds the repository's Dockerfile with podman.

    Args:
        env: the environment for podman (with ``CONTAINERS_CONF``)
        base: the base image (build argument ``BASE``)
        tag: the image's name (default ``localhost/fiftyone-dedup:test``)
        work_dir: where the pip.conf for the build is written (default: a
            temporary folder)

    Returns:
        the seconds the build took
    """
    work_dir = work_dir or tempfile.mkdtemp(prefix="fiftyone-dedup-build-")
    conf, mounts = host_pip_settings()
    conf_path = os.path.join(work_dir, "pip.conf")
    with open(conf_path, "w") as f:
        f.write(conf)
    cmd = [
        "nice", "-n", "10", "podman", "build", "--network", "host",
        "--build-arg", f"BASE={base}",
        # pip's usual index (PyPI here) gives torch: no PyTorch index needed
        "--build-arg", "TORCH_INDEX_URL=",
        "-v", f"{conf_path}:/etc/pip.conf:ro",
    ]
    for path in mounts:
        cmd += ["-v", f"{path}:{path}:ro"]
    cmd += ["-t", tag, "-f", os.path.join(REPO, "Dockerfile"), REPO]
    start = time.monotonic()
    _run(cmd, env, 5400)
    return time.monotonic() - start


@pytest.fixture(scope="module")
def podman_env(tmp_path_factory):
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{SKIP_ENV}=1")
    if os.environ.get(OPT_IN_ENV) != "1":
        pytest.skip(
            f"the container build is opt-in: set {OPT_IN_ENV}=1 "
            "(about 15 GB of disk and several minutes)"
        )
    for tool in ("podman", "runc"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (apt-get install podman runc)")
    if os.geteuid() != 0:
        pytest.skip("not root: the container test runs rootful podman")
    return _podman_env(str(tmp_path_factory.mktemp("containers")))


@pytest.fixture(scope="module")
def image(podman_env, tmp_path_factory):
    base = _base_image(podman_env)
    seconds = build_image(podman_env, base, work_dir=str(tmp_path_factory.mktemp("build")))
    size = _run(
        ["podman", "image", "inspect", "--format", "{{.Size}}", IMAGE], podman_env, 60
    ).stdout.strip()
    print(f"\nbuilt {IMAGE} on {base} in {seconds:.0f} s, {int(size) / 1e9:.2f} GB")
    return IMAGE


def test_demo_runs_in_the_container(podman_env, image, tmp_path):
    # the demo writes into a host folder mounted at /data, with no network
    proc = _run(
        ["podman", "run", "--rm", "--network", "none", "-v", f"{tmp_path}:/data",
         image, "demo", "--dir", "/data/demo", "--quiet"],
        podman_env, 1800, check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    found = re.search(r"Planted near-duplicates found: (\d+) of (\d+)", out)
    kept = re.search(r"originals kept \(--keep oldest\): (\d+) of (\d+)", out)
    assert found and kept, out[-6000:]
    assert int(found.group(2)) > 0 and found.group(1) == found.group(2), found.group(0)
    assert kept.group(1) == kept.group(2), kept.group(0)
    # the moves and the report landed in the mounted folder
    demo = tmp_path / "demo"
    assert (demo / "report.json").is_file()
    moved = [p for p in (demo / "duplicates").rglob("*") if p.suffix.lower() in (".jpg", ".png")]
    assert len(moved) >= int(found.group(2))


def test_the_image_runs_the_command_line_as_its_entrypoint(podman_env, image):
    proc = _run(["podman", "run", "--rm", "--network", "none", image], podman_env, 300)
    assert "fiftyone-dedup" in proc.stdout and "--dirs" in proc.stdout
    env = _run(
        ["podman", "run", "--rm", "--network", "none", "--entrypoint", "env", image],
        podman_env, 300,
    ).stdout.splitlines()
    assert "FIFTYONE_DATABASE_VALIDATION=false" in env
    assert "FIFTYONE_DO_NOT_TRACK=true" in env


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(url, query):
    import json
    import urllib.request

    req = urllib.request.Request(
        url + "graphql", data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def test_the_app_serves_the_duplicates_on_a_published_port(podman_env, image, tmp_path):
    import urllib.request

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(7)
    for i in range(3):
        img = Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).resize((256, 192))
        img.save(tmp_path / f"img{i}.png")
    Image.open(tmp_path / "img0.png").resize((128, 96)).save(tmp_path / "img0_small.png")
    port = _free_port()
    name = f"fiftyone-dedup-app-test-{port}"
    _run(
        ["podman", "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:5151",
         "-v", f"{tmp_path}:/data", image, "-d", "/data", "--no_data_dir", "--no_annot",
         "--encoder", "DHash", "--dataset", "app-test", "--dry_run", "--quiet", "--app"],
        podman_env, 300,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 600
        while True:
            logs = _run(["podman", "logs", name], podman_env, 60, check=False)
            if "App: " in logs.stdout + logs.stderr:
                break
            running = _run(
                ["podman", "inspect", "--format", "{{.State.Running}}", name],
                podman_env, 60, check=False,
            ).stdout.strip()
            assert running == "true" and time.monotonic() < deadline, (
                logs.stdout[-4000:] + logs.stderr[-4000:]
            )
            time.sleep(2)
        # the session may print its URL before the server answers
        while True:
            try:
                with urllib.request.urlopen(url, timeout=30) as r:
                    assert r.status == 200 and b"FiftyOne" in r.read()
                break
            except OSError:
                assert time.monotonic() < deadline, "the App never answered on " + url
                time.sleep(2)
        data = _graphql(
            url, '{ doNotTrack dataset(name: "app-test") { name estimatedSampleCount } }'
        )["data"]
        assert data["doNotTrack"] is True
        assert data["dataset"] == {"name": "app-test", "estimatedSampleCount": 4}
        # tini passes the stop signal on: the App ends well before the 30 s kill
        start = time.monotonic()
        _run(["podman", "stop", "-t", "30", name], podman_env, 120)
        assert time.monotonic() - start < 25
    finally:
        _run(["podman", "rm", "-f", name], podman_env, 120, check=False)


def test_a_database_volume_keeps_the_dataset_closed_cleanly(podman_env, image, tmp_path):
    # the container ends only after mongod has shut down, so a database kept on
    # a volume opens cleanly in the next container, with its exact counts
    from PIL import Image

    (tmp_path / "images").mkdir()
    for i, size in enumerate([(64, 48), (96, 64), (80, 80), (50, 70)]):
        Image.new("RGB", size, (60 * i, 40, 200 - 40 * i)).save(tmp_path / "images" / f"{i}.png")
    volume = f"fiftyone-dedup-test-{os.getpid()}"
    db = ["-v", f"{volume}:/home/fiftyone-dedup/.fiftyone"]
    try:
        _run(
            ["podman", "run", "--rm", "--network", "none", *db,
             "-v", f"{tmp_path / 'images'}:/data",
             image, "-d", "/data", "--no_data_dir", "--no_annot", "--encoder", "DHash",
             "--dataset", "volume-test", "--dry_run", "--quiet"],
            podman_env, 900,
        )
        script = (
            "import fiftyone as fo; ds = fo.load_dataset('volume-test'); "
            "print('counts', len(ds), ds._sample_collection.estimated_document_count())"
        )
        out = _run(
            ["podman", "run", "--rm", "--network", "none", *db, "--entrypoint", "python3",
             image, "-c", script],
            podman_env, 900,
        ).stdout
        assert "counts 4 4" in out, out
        log = _run(
            ["podman", "run", "--rm", "--network", "none", *db, "--entrypoint", "sh", image,
             "-c", "cat /home/fiftyone-dedup/.fiftyone/var/lib/mongo/log/mongo.log"],
            podman_env, 300,
        ).stdout
        assert "unclean shutdown" not in log.lower()
    finally:
        _run(["podman", "volume", "rm", "-f", volume], podman_env, 120, check=False)
