# mamabear: a worker (the default command) or any other command, e.g.
#   docker run --rm -e MAMABEAR_BROKER_URL=... IMAGE run research -i topic=otters --queue
# Slim, non-root, CPU-only torch (the memory embedder's wheel declares it; mamabear never imports it).
# Not built in this repository's CI (no Docker there); linted by tests/test_deploy.py with hadolint.
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/mamabear \
    && /opt/mamabear/bin/pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY pyproject.toml README.md ./
COPY src ./src
COPY config ./config
COPY crews ./crews
RUN /opt/mamabear/bin/pip install ".[postgres]"

FROM python:3.11-slim-bookworm
# The local sandbox's jail (bubblewrap, slirp4netns); git for agents' work. A pod without the privileges a jail needs
# runs agents' tools on Scrapybara (MAMABEAR_SANDBOX=scrapybara) or with isolation: best-effort (config/sandbox.yaml).
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap=0.8.* slirp4netns=1.2.* git=1:2.39.* \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 mamabear
COPY --from=build /opt/mamabear /opt/mamabear
ENV PATH=/opt/mamabear/bin:$PATH \
    MAMABEAR_HOME=/home/mamabear/.mamabear \
    PYTHONUNBUFFERED=1
USER 10001
WORKDIR /home/mamabear
ENTRYPOINT ["mamabear"]
CMD ["worker", "--concurrency", "2"]
