# The agent image: the prebuilt binary and the libtorch it was built against (the venv's
# torch/lib and NVIDIA libraries) on a base image you already have. Build context:
# target/docker/agent from deploy/docker/stage.sh.
#
#   docker build --build-arg BASE_IMAGE=debian:bookworm-slim -t beard-agent:0.1.0 \
#       -f deploy/docker/agent.Dockerfile target/docker/agent
#
# The base needs glibc and libstdc++ (debian:bookworm-slim has both). The GPU driver comes from
# the host through the NVIDIA container runtime (Kubernetes' device plugin, `docker run --gpus`).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
COPY site-packages /opt/beard/site-packages
COPY agent /usr/local/bin/agent
COPY --chown=65532:65532 empty /var/cache/beard
# The binary's rpath names the build machine's venv; inside the image libtorch is found here
# (and the CUDA libraries through libtorch's own relative rpaths).
ENV LD_LIBRARY_PATH=/opt/beard/site-packages/torch/lib \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    HOME=/tmp
USER 65532:65532
WORKDIR /var/cache/beard
ENTRYPOINT ["/usr/local/bin/agent"]
CMD ["run", "--coordinator", "http://beard-coordinator:50051", "--device", "cuda:0", "--work-dir", "/var/cache/beard"]
