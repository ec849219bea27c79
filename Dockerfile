# syntax=docker/dockerfile:1
# Build: docker build -t etcd-inspector .
# Run:   docker run -p 9979:9979 etcd-inspector run --etcd.endpoints=https://etcd-0:2379 ...

# The base image; a mirror's copy works too: --build-arg PYTHON_IMAGE=mirror.example/python:3.11-slim
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY exporter ./exporter
COPY mixin.libsonnet config.libsonnet jsonnetfile.json ./
COPY rules ./rules
COPY dashboards ./dashboards
COPY servicemonitors ./servicemonitors
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
RUN useradd --system --uid 65532 --no-create-home --shell /usr/sbin/nologin inspector
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 65532:65532
EXPOSE 9979
ENTRYPOINT ["etcd-inspector"]
CMD ["run", "--web.listen-address=:9979"]
