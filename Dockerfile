# The image the runner builds for `uses: lornu-ai/secrets-sync@v1`, at the start of each job.
# tests/test_image.py reads this file and replays its ENV, COPY, pip install and ENTRYPOINT lines
# outside Docker (no Docker engine where `make test` runs); `make image-test` builds it on a real
# engine, and the CI self-test on GitHub builds it as the runner does.

# BASE is for `make image-test` alone, which builds this file where Docker Hub cannot be reached,
# on a stand-in base (`--build-arg BASE=<image>`). Everyone else builds on the pinned base below:
# the default names its stage, and BuildKit skips that stage when BASE names another image. The
# pinned image stays on a FROM line of its own because Dependabot does not read ARGs.
ARG BASE=python-base

# Tag and digest are bumped together (Dependabot does both); the digest is the multi-platform
# index of that tag, so amd64 and arm64 runners get the same build.
FROM python:3.14.7-slim@sha256:ce40764625a4ff50df3548277632e7f96c4e77fe75fa848aae9885476e7df5a4 AS python-base

FROM ${BASE}

# For the build's own Python processes (pip). The entrypoint runs with `python -I`, which ignores
# every PYTHON* variable, so it repeats these two as the -u and -B flags.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Dependencies before code: this layer is rebuilt only when the lock changes. Every file
# downloaded is checked against its hash, and --no-deps keeps out anything the lock does not name
# (actions-toolkit's declared dependencies, which it does not need here, among them). In the same
# RUN, so that they never reach a layer, the botocore service models no run can load are deleted
# (scripts/slim_botocore.py says which stay).
COPY requirements.lock scripts/slim_botocore.py /tmp/build/
RUN python -m pip install --no-cache-dir --require-hashes --no-deps -r /tmp/build/requirements.lock \
    && python -I /tmp/build/slim_botocore.py \
    && rm -r /tmp/build

COPY entrypoint.py /app/entrypoint.py
COPY lib/ /app/lib/
COPY schema/ /app/schema/
# Byte code for our modules, made once here: the entrypoint runs with -B and would otherwise
# compile them on every run. unchecked-hash: the image never changes, so no stat per import.
RUN python -m compileall -q --invalidation-mode unchecked-hash /app/lib

# No USER: GitHub requires Docker actions to run as the default user (root); another user could
# not write to the workspace, GITHUB_OUTPUT and the step summary that the runner mounts.
# No WORKDIR either: the runner sets the working directory to the workspace.
# -I (isolated): no PYTHON* variables, no user site-packages, no script directory on sys.path,
# so a PATH, PYTHONPATH or HOME handed in by the workflow cannot put code in front of ours.
ENTRYPOINT ["/usr/local/bin/python", "-I", "-u", "-B", "/app/entrypoint.py"]
