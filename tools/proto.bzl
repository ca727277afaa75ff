"""Compiles .proto files with the system protoc and gRPC plugins (offline)."""

def cc_grpc_proto(name, srcs, deps = [], visibility = None):
    """C++ messages and gRPC stubs for `srcs`, as one cc_library `name`.

    `deps` are other cc_grpc_proto targets whose .proto files these import.
    """
    bases = [s[:-len(".proto")] for s in srcs]
    outs = []
    for b in bases:
        outs += [b + ".pb.h", b + ".pb.cc", b + ".grpc.pb.h", b + ".grpc.pb.cc"]
    native.genrule(
        name = name + "_gen",
        srcs = srcs + [d + "_srcs" for d in deps],
        outs = outs,
        cmd = " ".join([
            "protoc",
            "--proto_path=.",
            "--cpp_out=$(GENDIR)",
            "--grpc_out=$(GENDIR)",
            "--plugin=protoc-gen-grpc=$$(command -v grpc_cpp_plugin)",
        ] + ["$(location %s)" % s for s in srcs]),
    )
    native.filegroup(
        name = name + "_srcs",
        srcs = srcs,
        visibility = visibility,
    )
    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        deps = deps + ["//third_party:grpc"],
        visibility = visibility,
    )

def py_grpc_proto(name, srcs, deps = [], visibility = None):
    """Python messages and gRPC stubs for `srcs` (files *_pb2.py, *_pb2_grpc.py)."""
    bases = [s[:-len(".proto")] for s in srcs]
    outs = []
    for b in bases:
        outs += [b + "_pb2.py", b + "_pb2_grpc.py"]
    native.genrule(
        name = name,
        srcs = srcs + [d + "_srcs" for d in deps],
        outs = outs,
        cmd = " ".join([
            "protoc",
            "--proto_path=.",
            "--python_out=$(GENDIR)",
            "--grpc_python_out=$(GENDIR)",
            "--plugin=protoc-gen-grpc_python=$$(command -v grpc_python_plugin)",
        ] + ["$(location %s)" % s for s in srcs]),
        visibility = visibility,
    )
