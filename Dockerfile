# One image for the four services; compose.yaml picks the command.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY headwater ./headwater
COPY services ./services
COPY plugins ./plugins
RUN pip install --no-cache-dir . && useradd --create-home headwater && \
    mkdir -p /var/lib/headwater && chown headwater /var/lib/headwater
USER headwater
ENV HEADWATER_HOME=/var/lib/headwater HEADWATER_HOST=0.0.0.0
EXPOSE 50051 50052 50053 50054 8080 8081 9101 9102 9103 9104
CMD ["headwater", "--help"]
