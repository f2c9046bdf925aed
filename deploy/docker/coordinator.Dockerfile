# The coordinator image: the prebuilt binary on a base image you already have (no registry and
# no compiler needed). Build context: target/docker/coordinator from deploy/docker/stage.sh.
#
#   docker build --build-arg BASE_IMAGE=debian:bookworm-slim -t beard-coordinator:0.1.0 \
#       -f deploy/docker/coordinator.Dockerfile target/docker/coordinator
#
# The base needs glibc (the binary links it dynamically; SQLite is built in) and nothing else.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
COPY coordinator /usr/local/bin/coordinator
# An unprivileged numeric user (Kubernetes' runAsNonRoot can check it) owning the state
# directory; mount a volume there to keep the state.
COPY --chown=65532:65532 empty /var/lib/beard
USER 65532:65532
WORKDIR /var/lib/beard
EXPOSE 50051 9100
ENTRYPOINT ["/usr/local/bin/coordinator"]
CMD ["serve", "--listen", "0.0.0.0:50051", "--state", "/var/lib/beard", "--metrics-listen", "0.0.0.0:9100"]
