# The prism-operator image: one static binary on an empty base, running as 65532:65532.
#
# Build from the repository root, either way (both compile with images/compile.sh):
#   docker build -t ghcr.io/prism/prism-operator:0.1.0 .   compiles in a Rust container (network)
#   bash images/build.sh                                    compiles on the host, then copies the
#                                                           binary in (no network, no base image)
# images/build.sh passes --build-arg BINARY_FROM=context and a context holding only the binary.
# Unused stages are skipped by BuildKit and podman, so neither path runs the other's stage.
ARG BINARY_FROM=compile

FROM docker.io/library/rust:1-bookworm AS compile
WORKDIR /src
COPY . .
RUN bash images/compile.sh /out prism-operator

FROM scratch AS context
# Marks podman's intermediate image of this stage, which images/build.sh prunes.
LABEL prism.image-stage=context
COPY prism-operator /out/prism-operator

FROM ${BINARY_FROM} AS binary

FROM scratch
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="prism-operator" \
      org.opencontainers.image.description="Kubernetes operator for Prism data access gateway fleets" \
      org.opencontainers.image.source="https://github.com/prism/prism-operator" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=binary /out/prism-operator /prism-operator
# Nothing else: no shell, no CA bundle (the cluster CA comes from the service-account mount),
# no writable path (the chart sets readOnlyRootFilesystem).
USER 65532:65532
ENTRYPOINT ["/prism-operator"]
CMD ["run"]
