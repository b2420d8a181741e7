# bricksllm gateway image. Configuration comes from the environment (see README).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 BRICKSLLM_DATA_DIR=/data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir . && useradd --system --uid 10001 bricks && mkdir -p /data && chown bricks /data
USER bricks
EXPOSE 8001 8002
HEALTHCHECK --interval=10s --timeout=2s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8002/api/health')"
ENTRYPOINT ["bricksllm"]
CMD ["serve"]
