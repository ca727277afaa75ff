"""The generated protocol modules (built by Bazel next to this file)."""

try:
    from . import control_pb2, control_pb2_grpc  # noqa: F401
    from . import filesystem_pb2, filesystem_pb2_grpc  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the build
    raise ImportError(
        "fusehost: the generated protocol modules are missing (%s). Import "
        "the package that `bazel build //client/python:fusehost` assembles: "
        "PYTHONPATH=<repo>/bazel-bin/client/python" % e) from e

pb = filesystem_pb2
pb_grpc = filesystem_pb2_grpc
control = control_pb2
control_grpc = control_pb2_grpc
