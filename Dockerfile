FROM python:3.11-slim-bookworm

# fribidi for Pillow's RAQM text layout; Noto for every script ogshot can set.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libfribidi0 fonts-noto-core fonts-noto-cjk fonts-noto-color-emoji \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY ogshot ./ogshot
COPY templates ./templates
RUN pip install --no-cache-dir . && useradd --system --uid 10001 ogshot

USER ogshot
EXPOSE 8000
CMD ["ogshot", "serve", "--host", "0.0.0.0", "--port", "8000"]
