#include "client/in_order_batch.h"

#include <cerrno>
#include <cstdint>

#include "absl/container/flat_hash_map.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace fusehost {

bool WithHandle(const v1::Op& op, uint64_t fh, v1::Op* out) {
  using google::protobuf::FieldDescriptor;
  *out = op;
  out->clear_fh_from_op();
  const google::protobuf::Reflection* reflection = out->GetReflection();
  const FieldDescriptor* request = reflection->GetOneofFieldDescriptor(
      *out, out->GetDescriptor()->FindOneofByName("op"));
  if (request == nullptr ||
      request->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
    return false;
  }
  google::protobuf::Message* fields = reflection->MutableMessage(out, request);
  const FieldDescriptor* field = fields->GetDescriptor()->FindFieldByName("fh");
  if (field == nullptr ||
      field->cpp_type() != FieldDescriptor::CPPTYPE_UINT64) {
    return false;
  }
  fields->GetReflection()->SetUInt64(fields, field, fh);
  return true;
}

void RunInOrder(const OpDispatcher& dispatcher, const v1::Batch& batch,
                const std::vector<int>& indexes, v1::BatchResult* reply) {
  // The handles that creates and opens run so far returned, by op id.
  absl::flat_hash_map<uint64_t, uint64_t> handles;
  v1::Op with;
  for (int i : indexes) {
    const v1::Op& op = batch.ops(i);
    v1::OpResult* result = reply->mutable_results(i);
    if (op.fh_from_op() == 0) {
      dispatcher.Dispatch(batch.mount_id(), op, result);
    } else {
      auto it = handles.find(op.fh_from_op());
      if (it == handles.end() || !WithHandle(op, it->second, &with)) {
        result->Clear();
        result->set_id(op.id());
        result->set_posix_errno(EBADF);
        continue;
      }
      dispatcher.Dispatch(batch.mount_id(), with, result);
    }
    if (result->posix_errno() != 0) continue;
    if (result->has_create()) {
      handles[op.id()] = result->create().open().fh();
    } else if (result->has_open()) {
      handles[op.id()] = result->open().fh();
    }
  }
}

}  // namespace fusehost
