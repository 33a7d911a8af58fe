# signer: HSM-backed firmware signing service (README, "Container image").
#
#   docker build -t signer .                    production: `prod` is the LAST stage, so a plain
#                                               build (no --target) gives production
#   docker build --target dev -t signer:dev .   the development default: SoftHSM2 + SQLite,
#                                               provisioned on first start
#   docker run --rm -p 127.0.0.1:50051:50051 signer:dev
#
# podman/buildah: add `--format docker`, or HEALTHCHECK is dropped (the OCI image format has
# no health check). pip needs this machine's CA bundle where a TLS-intercepting proxy sits in
# front of PyPI: pass it as the optional build secret "pipca"
# (`--secret id=pipca,src=/etc/ssl/certs/ca-certificates.crt`); without it pip uses the
# build image's own CA certificates, so the same file builds unchanged elsewhere.
#
# No secret, PIN, key or certificate is baked in: production mounts them.

ARG BASE=debian:bookworm-slim

# -- build: wheels of the project and of every dependency, into /wheels ------------------------
FROM ${BASE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv python3-pip ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# the dependencies first: this layer stays cached while only the code changes. The runtime
# installs with the pip wheel kept in /pip, run from the wheel itself: no pip lands in it.
COPY pyproject.toml ./
RUN --mount=type=secret,id=pipca,required=false \
    if [ -f /run/secrets/pipca ]; then export PIP_CERT=/run/secrets/pipca; fi; \
    set -e; \
    python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
      > /tmp/requirements.txt; \
    pip wheel --quiet --wheel-dir /wheels -r /tmp/requirements.txt; \
    install -d /pip && cp /usr/share/python-wheels/pip-*.whl /pip/pip.whl
COPY README.md ./
COPY signer ./signer
RUN --mount=type=secret,id=pipca,required=false \
    if [ -f /run/secrets/pipca ]; then export PIP_CERT=/run/secrets/pipca; fi; \
    set -e; \
    pip wheel --quiet --no-deps --wheel-dir /wheels .

# -- runtime: Python and the installed wheels; no compiler, no pip, no cache --------------------
FROM ${BASE} AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && groupadd --system --gid 10001 signer \
 && useradd --system --uid 10001 --gid signer --home-dir /var/lib/signer --no-create-home \
      --shell /usr/sbin/nologin signer \
 && install -d -o signer -g signer -m 0750 /var/lib/signer
# offline, from the build stage's wheels (bind-mounted: they leave no layer behind)
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    --mount=type=bind,from=build,source=/pip,target=/pip \
    python3 -m venv --without-pip /opt/signer \
 && /opt/signer/bin/python /pip/pip.whl/pip install --quiet --no-cache-dir \
      --disable-pip-version-check --root-user-action=ignore \
      --no-index --find-links /wheels signer \
 && /opt/signer/bin/signer --version
ENV PATH=/opt/signer/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SIGNER_SERVER=127.0.0.1:50051
WORKDIR /var/lib/signer
EXPOSE 50051 9464

# -- dev: the development default, provisioned inside the container on first start -------------
FROM runtime AS dev
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends softhsm2 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && install -d -o signer -g signer -m 0700 /var/lib/signer/dev
COPY softhsm/init-token softhsm/softhsm2.conf.in /opt/signer/share/softhsm/
COPY deploy/container/dev-entrypoint /usr/local/bin/signer-dev-entrypoint
# the token, PINs, keys' certificates, SQLite database and example delivery live in
# SIGNER_DEV_DIR: mount a volume there (-v signer-dev:/var/lib/signer/dev) to keep them
ENV SIGNER_DEV_DIR=/var/lib/signer/dev \
    SIGNER_CONFIG=/var/lib/signer/dev/signer.toml \
    SIGNER_DEV_MODE=1
USER 10001:10001
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD ["signer", "health"]
ENTRYPOINT ["/usr/local/bin/signer-dev-entrypoint"]

# -- prod (the default target, so the last stage): signer serve on the mounted configuration ---
FROM runtime AS prod
USER 10001:10001
# Outside development mode the server requires mTLS: the probe presents the client
# certificate named by SIGNER_CLIENT_CA / SIGNER_CLIENT_CERT / SIGNER_CLIENT_KEY (set them to
# mounted files; health needs no role), or SIGNER_SERVER names a plaintext health-only port.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
  CMD ["signer", "health"]
ENTRYPOINT ["signer"]
CMD ["serve", "--config", "/etc/signer/signer.toml"]
