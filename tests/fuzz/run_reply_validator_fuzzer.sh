#!/usr/bin/env bash
# Builds the reply validator's libFuzzer target with clang (AddressSanitizer
# and UndefinedBehaviorSanitizer on) and runs it from a seed corpus.
#
#   tests/fuzz/run_reply_validator_fuzzer.sh [SECONDS]   (default 600)
#
# Installs clang-14 and libfuzzer-14-dev if missing (as root). The corpus
# lives in $FUZZ_DIR (default /tmp/fuse-hostd-fuzz) and grows between runs;
# a crash leaves its input there and the script exits non-zero. Not part of
# scripts/test.sh: a fuzzing run is minutes, not a test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
REPO=$(pwd)
SECONDS_TO_RUN=${1:-600}
WORK=${FUZZ_DIR:-/tmp/fuse-hostd-fuzz}
mkdir -p "$WORK/gen" "$WORK/corpus" "$WORK/crashes"

need=()
for pkg in clang-14 libfuzzer-14-dev libprotobuf-dev protobuf-compiler libabsl-dev pkg-config; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if (( ${#need[@]} > 0 )); then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
fi

protoc -I"$REPO" --cpp_out="$WORK/gen" proto/filesystem.proto
ABSL_LIBS=$(pkg-config --libs absl_strings absl_str_format absl_synchronization \
  absl_time absl_flat_hash_set absl_flat_hash_map absl_hash)
clang++-14 -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=undefined -D_FILE_OFFSET_BITS=64 \
  -I"$REPO" -I"$WORK/gen" \
  tests/fuzz/reply_validator_fuzzer.cc daemon/pipeline/reply_validator.cc \
  common/stat_convert.cc common/log_line.cc common/escape.cc \
  daemon/stats/mount_stats.cc "$WORK/gen/proto/filesystem.pb.cc" \
  -o "$WORK/reply_validator_fuzzer" \
  $(pkg-config --libs protobuf) $ABSL_LIBS -lpthread

# Seeds: well-formed results of several kinds, made by the fuzzer's own
# input format (op byte, 8 size bytes, serialized OpResult).
if [[ -z "$(ls -A "$WORK/corpus")" ]]; then
  protoc -I"$REPO" --python_out="$WORK/gen" proto/filesystem.proto
  PYTHONPATH="$WORK/gen" /usr/bin/python3 - "$WORK/corpus" <<'PY'
import os, struct, sys
from proto import filesystem_pb2 as pb
out = sys.argv[1]
def seed(name, op_index, size, result):
    with open(os.path.join(out, name), "wb") as f:
        f.write(bytes([op_index]) + struct.pack("<Q", size) +
                result.SerializeToString())
r = pb.OpResult(id=1); r.getattr.attr.mode = 0o100644; r.getattr.attr.ino = 5
r.getattr.attr.xattr_names_known = True; r.getattr.attr.xattr_names.append(b"user.a")
seed("getattr", 0, 0, r)
r = pb.OpResult(id=2); r.read.data = b"hello"
seed("read", 9, 3, r)
r = pb.OpResult(id=3)
for n in (b".", b"..", b"a", b"b", b"a", b"x/y"):
    e = r.readdir.entries.add(name=n); e.attr.mode = 0o40755
r.readdir.eof = True
seed("readdir", 15, 0, r)
r = pb.OpResult(id=4); r.readlink.target = b"/target"
seed("readlink", 1, 0, r)
r = pb.OpResult(id=5); r.write.size = 10; r.write.attr.mode = 0o100600
r.parent_attr.mode = 0o40755
seed("write", 10, 4, r)
r = pb.OpResult(id=6, posix_errno=5000)
seed("errno", 4, 0, r)
r = pb.OpResult(id=7); r.open.fh = 3; r.open.contents = b"small"
seed("open", 8, 0, r)
n = pb.Invalidation(kind=pb.Invalidation.SUBTREE, path=b"/a/b")
with open(os.path.join(out, "notice"), "wb") as f:
    f.write(bytes([0]) + struct.pack("<Q", 0) + n.SerializeToString())
PY
fi

"$WORK/reply_validator_fuzzer" "$WORK/corpus" \
  -max_total_time="$SECONDS_TO_RUN" -artifact_prefix="$WORK/crashes/" \
  -print_final_stats=1
