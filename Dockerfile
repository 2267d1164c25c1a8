# syntax=docker/dockerfile:1
# neostore-secrets: a static binary on distroless, run as the nonroot user.
#
#   docker build -t neostore-secrets .
#   docker run --rm -p 8200:8200 -v neostore-data:/data \
#     -v /etc/neostore/tls:/tls:ro -v /etc/neostore/master.key:/run/secrets/master_key:ro \
#     -e NEOSTORE_TLS_CERT=/tls/tls.crt -e NEOSTORE_TLS_KEY=/tls/tls.key \
#     -e NEOSTORE_MASTER_KEY_FILE=/run/secrets/master_key neostore-secrets
#
# Every flag of `serve` is read from its NEOSTORE_* variable, so the command
# stays `serve`. The image listens on 0.0.0.0:8200, which needs TLS
# (NEOSTORE_TLS_CERT/NEOSTORE_TLS_KEY) or, behind a TLS-terminating proxy,
# NEOSTORE_INSECURE_HTTP=true; without either it refuses to start. Files the
# server must read (master key, TLS key) must be readable by uid 65532 and,
# for the master key, by no one else (mode 0600 or 0400).

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/neostore-secrets ./cmd/neostore-secrets \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/neostore-secrets /usr/local/bin/neostore-secrets
# The data directory belongs to the server's user and no one else; a new
# named volume mounted on /data inherits this owner and mode.
COPY --from=build --chown=65532:65532 --chmod=0700 /out/data /data
USER 65532:65532
ENV NEOSTORE_LISTEN=0.0.0.0:8200 \
    NEOSTORE_DATA=/data
EXPOSE 8200
VOLUME ["/data"]
ENTRYPOINT ["/usr/local/bin/neostore-secrets"]
CMD ["serve"]
