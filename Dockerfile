# wspush in a container: a static binary on distroless, as a non-root user.
#
#   docker build --build-arg VERSION=$(git describe --always --dirty) -t wspush .
#   docker run -d --name wspush -p 8080:8080 -p 127.0.0.1:8081:8081 \
#     -e WSPUSH_ADMIN_TOKEN=$(openssl rand -hex 16) \
#     --ulimit nofile=1048576:1048576 --stop-timeout 40 \
#     -v wspush-state:/var/lib/wspush wspush -push-interval 1s
#
# - The admin listener (/healthz, /metrics, the publish API) listens on every
#   interface of the container, so wspush refuses to start without an admin
#   token (WSPUSH_ADMIN_TOKEN); /healthz needs none.
# - Connections per container are capped by the open-file limit (-max-conns
#   defaults to RLIMIT_NOFILE minus a reserve): raise it with --ulimit
#   nofile=N:N (Go raises the soft limit to the hard one by itself).
# - docker stop sends STOPSIGNAL and waits --stop-timeout (default 10 s)
#   before SIGKILL; the drain closes -drain-rate clients per second (default
#   10,000) and takes up to -shutdown-timeout (default 30 s): give it time.
# - Any wspush flag can follow the image name, or be set as WSPUSH_<FLAG>.
#   docs/deploy.md, section "Container", has the rest.
#
# server/docker_test.go builds the binary as the build stage does and runs
# it as this file's final stage would (its ENV, USER, HEALTHCHECK and
# STOPSIGNAL); keep the two in step.

FROM docker.io/library/golang:1.26 AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-mod=readonly
COPY go.mod go.sum ./
RUN go mod download
COPY server/ ./server/
COPY client/ ./client/
ARG VERSION=devel
RUN go build -trimpath -buildvcs=false -ldflags="-s -w -X main.stamped=${VERSION}" -o /out/wspush ./server && \
    mkdir -p /out/state

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/wspush /usr/local/bin/wspush
COPY --from=build --chown=65532:65532 /out/state /var/lib/wspush
USER 65532:65532
ENV WSPUSH_ADDR=0.0.0.0:8080 WSPUSH_ADMIN_ADDR=0.0.0.0:8081 WSPUSH_STATE_DIR=/var/lib/wspush
EXPOSE 8080 8081
VOLUME ["/var/lib/wspush"]
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["/usr/local/bin/wspush", "-healthcheck"]
ENTRYPOINT ["/usr/local/bin/wspush"]
