# signer: HSM-backed firmware signing service.
#
#   docker build -t signer .                          production (the last stage)
#   docker build --target dev -t signer:dev .         development default: SoftHSM2 + SQLite
#   docker run --rm -p 127.0.0.1:50051:50051 signer:dev
#
# pip needs a CA bundle where a TLS-intercepting proxy sits in front of PyPI: pass it as the
# optional build secret "pipca" (e.g. --secret id=pipca,src=/etc/ssl/certs/ca-certificates.crt);
# without it the build uses the image's own CA certificates.
# No secret, PIN, key or certificate is baked in: production mounts them (README, "Container
# image").

ARG BASE=debian:bookworm-slim

# -- build: a wheel of the project and of every dependency ------------------------------------
FROM ${BASE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY signer ./signer
RUN --mount=type=secret,id=pipca,required=false \
    if [ -f /run/secrets/pipca ]; then export PIP_CERT=/run/secrets/pipca; fi; \
    python3 -m venv /opt/build \
 && /opt/build/bin/pip install --no-cache-dir -q --upgrade pip wheel \
 && /opt/build/bin/pip wheel --no-cache-dir -q --wheel-dir /wheels .

# -- runtime: Python and the installed wheel, nothing to build with ---------------------------
FROM ${BASE} AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/signer \
      --shell /usr/sbin/nologin signer \
 && install -d -o signer -g signer -m 0750 /var/lib/signer
COPY --from=build /wheels /tmp/wheels
RUN python3 -m venv /opt/signer \
 && /opt/signer/bin/pip install --no-cache-dir -q --no-index --find-links /tmp/wheels signer \
 && rm -rf /tmp/wheels \
 && /opt/signer/bin/signer --version
ENV PATH=/opt/signer/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
EXPOSE 50051 9464

# -- dev: the development default, provisioned inside the container on first start -----------
FROM runtime AS dev
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends softhsm2 \
 && rm -rf /var/lib/apt/lists/*
COPY softhsm/init-token softhsm/softhsm2.conf.in /opt/signer/share/softhsm/
COPY deploy/container/dev-entrypoint /usr/local/bin/signer-dev-entrypoint
USER signer:signer
WORKDIR /var/lib/signer
# the token, keys, SQLite database and example delivery (a volume keeps them across runs)
VOLUME /var/lib/signer
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD ["signer", "health", "--server", "127.0.0.1:50051"]
ENTRYPOINT ["/usr/local/bin/signer-dev-entrypoint"]

# -- prod (default): signer serve on the mounted configuration --------------------------------
FROM runtime AS prod
USER signer:signer
WORKDIR /var/lib/signer
# mTLS is mandatory outside development mode: the probe presents a client certificate named by
# SIGNER_CLIENT_CA / SIGNER_CLIENT_CERT / SIGNER_CLIENT_KEY (mounted files; its identity
# needs no role: health is open to every client that passes the handshake)
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD ["signer", "health", "--server", "127.0.0.1:50051"]
ENTRYPOINT ["signer"]
CMD ["serve", "--config", "/etc/signer/signer.toml"]
