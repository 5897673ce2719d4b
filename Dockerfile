# syntax=docker/dockerfile:1
# edgeblock container image: a static binary on distroless (CA certificates, time zone
# data, a non-root user). The build step is deploy/build.sh, the same script CI runs.
#   docker build --build-arg VERSION=$(git describe --tags --always) -t edgeblock .
#   docker run -v $PWD/conf:/etc/edgeblock:ro -v edgeblock-certs:/var/lib/edgeblock \
#     -p 80:80 -p 443:443 -p 443:443/udp -p 127.0.0.1:9090:9090 edgeblock
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=devel
ARG REVISION=unknown
RUN VERSION="$VERSION" REVISION="$REVISION" bash deploy/build.sh /out && mkdir -p /out/state

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/edgeblock /usr/local/bin/edgeblock
# Config and blocklist come from a mounted directory; certificates and the
# snapshot of the last applied state (see `edgeblock help hot-reload`) from a
# volume. The directory belongs to the non-root user, so that a named volume
# created from it is writable (distroless has no shell to chown it later).
COPY --from=build --chown=65532:65532 /out/state /var/lib/edgeblock
VOLUME ["/var/lib/edgeblock"]
ENV XDG_DATA_HOME=/var/lib EDGEBLOCK_STATE_DIR=/var/lib/edgeblock
USER 65532:65532
EXPOSE 80 443 443/udp 9090
ENTRYPOINT ["/usr/local/bin/edgeblock"]
CMD ["serve", "-config", "/etc/edgeblock/edgeblock.yaml"]
