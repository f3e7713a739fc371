# syntax=docker/dockerfile:1
# pressmon: multi-stage build on the slim Python image; runs as a non-root user.
# Installs exactly what CI installs (pyproject.toml, extra "ner"), without the dev tools.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/pressmon
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY migrations ./migrations
COPY config ./config
RUN /opt/pressmon/bin/pip install '.[ner]'

FROM python:3.11-slim
RUN useradd --system --create-home --uid 10001 pressmon \
 && mkdir -p /var/lib/pressmon \
 && chown pressmon /var/lib/pressmon
COPY --from=build /opt/pressmon /opt/pressmon
COPY config /etc/pressmon
ENV PATH=/opt/pressmon/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PRESSMON_CONFIG=/etc/pressmon/pressmon.yaml \
    PRESSMON_DATABASE_URL=sqlite:////var/lib/pressmon/pressmon.db
USER pressmon
WORKDIR /var/lib/pressmon
VOLUME ["/var/lib/pressmon", "/etc/pressmon"]
# The daemon serves /healthz on server.listen; in a container it must listen beyond
# loopback for `docker run -p`, so PRESSMON_LISTEN is read by the shipped config.
ENV PRESSMON_LISTEN=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os,sys,urllib.request; port=os.environ.get('PRESSMON_LISTEN','127.0.0.1:8080').rsplit(':',1)[1]; sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["pressmon"]
CMD ["run"]
