# Concert-Hub node image: `docker build -t concert-hub .`, or `docker compose up --build` for the
# cluster of docker-compose.yml (README: "Running a cluster with Docker Compose").
#
#   web      builds the browser UI (web/ -> web/dist) with Node, by scripts/build-ui as everywhere
#   build    installs the Python distribution, which carries the built UI (setup.py), and its
#            dependencies into a virtualenv
#   runtime  python:3.11-slim with that virtualenv, run as an unprivileged user
#
# Without arguments the image runs one node on the embedded default (SQLite in the working
# directory, in-process engine); the compose file points the nodes at MariaDB and Redis instead.

FROM node:22-bookworm-slim AS web
WORKDIR /src
# The Node packages first, in their own layer, so a change of the UI's sources does not
# reinstall them.
COPY scripts/build-ui scripts/
COPY web/package.json web/package-lock.json web/
RUN scripts/build-ui --deps
COPY web/ web/
RUN scripts/build-ui && test -f web/dist/index.html

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
WORKDIR /src
# Dependencies first, in their own layer, so a source change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; open('/tmp/requirements.txt', 'w').write('\n'.join(deps) + '\n')" \
    && /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt
COPY README.md setup.py MANIFEST.in ./
COPY protocol/ protocol/
COPY server/ server/
COPY booking/ booking/
COPY concert_hub_client/ concert_hub_client/
# Built, so the package build copies it into the distribution (server/web_dist) without Node.
COPY --from=web /src/web/dist web/dist
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps . \
    && /opt/venv/bin/concert-hub --help >/dev/null \
    && /opt/venv/bin/python -c "from server.web import default_dist; assert (default_dist() / 'index.html').is_file()"

FROM python:3.11-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 concert-hub \
    && useradd --system --uid 10001 --gid concert-hub --home-dir /var/lib/concert-hub \
       --create-home --shell /usr/sbin/nologin concert-hub
# DejaVu Sans, for ticket PDFs whose names or venue need more than Latin-1 (Greek, Cyrillic,
# Polish …): server/ticket_pdf.py embeds Debian's copy, and without it prints "?" for them.
# Not pinned: Debian's bookworm only takes security fixes, and a pin breaks the build on each.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# The embedded default keeps concert-hub.db and concert-hub.secret in the working directory.
WORKDIR /var/lib/concert-hub
USER 10001:10001
EXPOSE 8080 61613
# Liveness: /healthz answers 200 while the process serves (python: the slim image has no curl).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CONCERT_HUB_PORT', '8080'), timeout=2)"]
ENTRYPOINT ["concert-hub"]
CMD ["serve", "--host", "0.0.0.0"]
