# ogshot's image. Build:   docker build -t ogshot .
#   with a local browser:  docker build --build-arg CHROMIUM=true -t ogshot:chromium .
# System packages come from scripts/install-system-deps, the script the test command runs too.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the package and its dependencies, in a virtualenv copied whole into the image ------
FROM ${PYTHON_IMAGE} AS build
ARG CHROMIUM=false
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/ogshot
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ogshot ./ogshot
COPY templates ./templates
# With CHROMIUM=true, Playwright too (it drives the system Chromium; it downloads no browser).
RUN if [ "$CHROMIUM" = true ]; then /opt/ogshot/bin/pip install ".[chromium]"; \
    else /opt/ogshot/bin/pip install .; fi

# --- the image: slim Python, fonts and fribidi, the virtualenv, a user without privileges ----
FROM ${PYTHON_IMAGE}
ARG CHROMIUM=false
COPY scripts/install-system-deps /usr/local/sbin/install-system-deps
RUN if [ "$CHROMIUM" = true ]; then install-system-deps --chromium; else install-system-deps; fi \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --create-home --home-dir /home/ogshot ogshot \
 && mkdir -p /var/cache/ogshot \
 && chown ogshot:ogshot /var/cache/ogshot
COPY --from=build /opt/ogshot /opt/ogshot

ENV PATH=/opt/ogshot/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OGSHOT_CACHE_DIR=/var/cache/ogshot
# The disk cache tier: keep it on a volume to survive restarts.
VOLUME /var/cache/ogshot

USER ogshot
WORKDIR /home/ogshot
EXPOSE 8000
# Liveness only: /readyz (Redis, capture provider) is for the load balancer to ask.
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
# SIGTERM: stop accepting, finish what is in progress (OGSHOT_SHUTDOWN_TIMEOUT), close.
STOPSIGNAL SIGTERM
CMD ["ogshot", "serve", "--host", "0.0.0.0", "--port", "8000"]
