# syntax=docker/dockerfile:1
#
# botd image: a static, CGO-free binary on distroless, run as non-root.
#
#   docker build --build-arg VERSION="$(git describe --tags --always --dirty)" -t botd:dev .
#   docker buildx build --platform linux/amd64,linux/arm64 --build-arg VERSION=... -t REGISTRY/botd:TAG --push .
#
# deploy/image_test.go parses this file: the builder's Go version must match
# go.mod's go line, and the test builds botd with the exact go build line
# below and runs it. Keep one `go build` RUN line.

# The builder tag follows go.mod's go line at minor granularity (go 1.26.x ->
# golang:1.26), so image rebuilds pick up Go security patches. For
# reproducible release builds pin the digest too: golang:1.26@sha256:...
# --platform=$BUILDPLATFORM: cross-compile natively instead of under QEMU.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build

WORKDIR /src

# Dependencies in their own layer: it is rebuilt only when go.mod/go.sum
# change, not on every source edit.
COPY go.mod go.sum ./
RUN go mod download && go mod verify

COPY . .

ARG VERSION=dev
ARG TARGETOS
ARG TARGETARCH
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/botd ./cmd/botd
# The journal's directory, copied empty into the final stage (distroless
# has no shell to make it there).
RUN mkdir -p /out/data

# static-debian12 carries CA certificates (for Graph and login.microsoftonline
# .com), tzdata and /etc/passwd with the nonroot user; no shell, no package
# manager.
FROM gcr.io/distroless/static-debian12:nonroot

ARG VERSION=dev
LABEL org.opencontainers.image.title="botd" \
      org.opencontainers.image.description="Microsoft Teams calling bot server: Graph call notification webhook, call state, admin API" \
      org.opencontainers.image.source="https://github.com/botd/botd" \
      org.opencontainers.image.url="https://github.com/botd/botd" \
      org.opencontainers.image.documentation="https://github.com/botd/botd/blob/main/docs/deploy.md" \
      org.opencontainers.image.vendor="botd" \
      org.opencontainers.image.licenses="NOASSERTION" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/static-debian12:nonroot"

COPY --from=build /out/botd /botd

# The journal (BOTD_STATE=journal, the default) lives in /var/lib/botd,
# owned by the nonroot user; under Kubernetes the StatefulSet mounts a
# volume there, so that a restarted pod gets its calls back.
COPY --from=build --chown=65532:65532 /out/data /var/lib/botd
ENV BOTD_DATA_DIR=/var/lib/botd
VOLUME /var/lib/botd

# 65532 is distroless's nonroot user; numeric so Kubernetes' runAsNonRoot
# can verify it without reading /etc/passwd.
USER 65532:65532

# 8080: public listener (Graph callbacks, /livez).
# 9090: admin listener (admin API, /metrics, /livez, /readyz). botd's default
# binds it to 127.0.0.1; in a container it must be BOTD_ADMIN_LISTEN=:9090
# for probes and scraping, which botd allows only with BOTD_ADMIN_TOKEN set.
EXPOSE 8080 9090

ENTRYPOINT ["/botd"]
