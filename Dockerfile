# The production server: the official TensorFlow Serving image + the zoo + its config.
#   docker build -t semzoo-serving .
#   docker run --rm -p 8500:8500 -p 8501:8501 semzoo-serving
# gRPC on 8500 (what `semzoo enhance --server HOST:8500` talks to), REST + Prometheus
# metrics on 8501. models/ is TF Serving's model base path as is; serving/models.config is
# generated from it by `semzoo zoo config` (a test keeps the two in sync).
FROM tensorflow/serving:2.18.0

COPY models/ /models/
COPY serving/ /serving/

EXPOSE 8500 8501

# The base image's entrypoint serves a single $MODEL_NAME; we serve the whole zoo instead.
# The config is re-read every 60 s, so labels moved with `semzoo zoo label` + `semzoo zoo
# config` take effect without a restart when /serving is mounted from the host.
# No --enable_serialization_as_tensor_content: it puts string outputs (the card signature) in
# tensor_content too, which tf.make_ndarray cannot decode. Typed fields are as large on the
# wire (packed floats are the same 4 bytes) and semzoo's client decodes them as fast
# (docs/performance.md, "Output encoding").
ENTRYPOINT ["tensorflow_model_server", \
            "--port=8500", \
            "--rest_api_port=8501", \
            "--model_config_file=/serving/models.config", \
            "--model_config_file_poll_wait_seconds=60", \
            "--enable_batching=true", \
            "--batching_parameters_file=/serving/batching.config", \
            "--monitoring_config_file=/serving/monitoring.config", \
            "--enable_grpc_healthcheck_service=true"]
