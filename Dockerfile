# epiflow worker image: the package and its sample config; `epiflow worker` by default.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY streams ./streams
COPY geo ./geo
COPY config ./config
RUN pip install . && useradd --system --home /app epiflow && chown -R epiflow /app
USER epiflow
EXPOSE 6066
ENTRYPOINT ["epiflow"]
CMD ["worker"]
