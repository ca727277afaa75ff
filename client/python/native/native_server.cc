// fusehost._native_server: the Python SDK's gRPC server, on gRPC's C++
// synchronous server instead of grpcio's Python one.
//
// grpcio's server hands every call from its polling thread to a pool
// thread, which asks the polling thread for the request message and waits
// for it: each call crosses threads (and the GIL) several times. On the
// machines measured that made a Python backend's round trip several times
// the C++ SDK's. Here gRPC's C++ threads receive the call; the handler
// takes the GIL only to run the servicer's Python code, with the request
// and reply as serialized bytes (Python parses and builds the messages, so
// no C++ protobuf code is linked and the process holds one copy of each
// descriptor).
//
// The Python side (_native.py) passes two callables:
//   unary(method, request: bytes) -> bytes   method: 0 Init, 1 Destroy,
//                                            2 Execute
//   stream(request: bytes, alive, send_headers) -> iterator
//     for Invalidations: yields each notice as bytes, then one final
//     (status code, details) tuple. alive() says whether the call is still
//     on; send_headers() sends the initial metadata at once (False if the
//     call is gone).
// A Python exception from either fails the call with INTERNAL.
//
// Session, the stream the daemon sends a connection's batches on when Init
// says serves_session (_handshake.py does, on this server only): each
// Batch runs as Execute does, the same unary(2, batch) call, and its result
// is written with the batch's sequence (batch_sequence.h reads it from the
// bytes and appends it). Batches run several at once as the C++ SDK's do,
// with leader and followers (client/session_runner.h), on up to `threads`
// threads per stream. A batch whose call raises is answered without op
// results (the daemon fails its ops with EIO), the exception's message
// written to stderr; bytes that are not a Batch cancel the stream.
//
// Module functions: start(address, unary, stream, threads, max_message,
// tls_cert="", tls_key="", tls_client_ca="")
// returns a capsule holding the server (raises OSError when it cannot
// listen, ValueError when a TLS file is missing or a key not private
// (client/tls_credentials.h)); stop(capsule, grace_seconds,
// wait_seconds=3) shuts it down:
// calls in progress get grace_seconds, and are waited for wait_seconds
// more; it returns whether they all ended. Both must be called with the
// GIL held (as Python calls them); stop releases it while it waits.

#define PY_SSIZE_T_CLEAN
#include <Python.h>

// A thread that asks for the GIL while the interpreter finalizes is ended
// by Python (pthread_exit, whose unwinding must reach the thread's start).
// gRPC's handler templates, instantiated here, would otherwise catch it
// with catch (...) and abort the process ("exception not rethrown"): that
// happened at exit when an operation stop() had given up on woke up.
#define GRPC_ALLOW_EXCEPTIONS 0

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/rpc_service_method.h>
#include <grpcpp/support/method_handler.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <thread>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "client/python/native/batch_sequence.h"
#include "client/session_runner.h"
#include "client/tls_credentials.h"

namespace {

// Holds the GIL for its scope, on one of gRPC's threads.
//
// PyGILState_Ensure on a thread Python does not know makes a thread state,
// and the matching Release deletes it: a thread state made and torn down
// per call. Each thread here keeps the one it got at its first call (taken
// with PyGILState_Ensure, so that code it runs may use the PyGILState
// calls too). A thread that ends does not take the GIL to delete it: the
// interpreter may be finalizing, and a thread that asks for the GIL then
// is ended inside Python, which a thread already exiting cannot survive.
// It leaves its state to be deleted by the next thread that holds the GIL
// (Reap), or by the interpreter when it goes away.
class Gil {
 public:
  Gil() {
    ThreadState& t = thread_state_;
    if (t.state == nullptr) {
      PyGILState_Ensure();
      t.state = PyThreadState_Get();
    } else {
      PyEval_RestoreThread(t.state);
    }
    if (ended_count_.load(std::memory_order_relaxed) != 0) Reap();
    if (unheld_count_.load(std::memory_order_relaxed) != 0) ReleaseUnheld();
  }
  // Not when Python ended this thread while it waited for the GIL (see
  // GRPC_ALLOW_EXCEPTIONS above): the unwinding runs this without it.
  ~Gil() {
    if (PyGILState_Check()) PyEval_SaveThread();
  }
  Gil(const Gil&) = delete;
  Gil& operator=(const Gil&) = delete;

  // For a Python object whose reference gRPC held (a large reply's bytes,
  // sent without a copy): gRPC lets go of it on a thread that may not take
  // the GIL (the interpreter may be finalizing), so the reference is
  // dropped by the next thread that holds the GIL.
  static void DropLater(void* object) {
    std::lock_guard<std::mutex> lock(ended_mu_);
    unheld_->push_back(static_cast<PyObject*>(object));
    unheld_count_.store(unheld_->size(), std::memory_order_relaxed);
  }

  // Deletes the thread states of threads that ended. With the GIL held.
  static void Reap() {
    std::vector<PyThreadState*> ended;
    {
      std::lock_guard<std::mutex> lock(ended_mu_);
      ended.swap(ended_);
      ended_count_.store(0, std::memory_order_relaxed);
    }
    for (PyThreadState* state : ended) {
      PyThreadState_Clear(state);
      PyThreadState_Delete(state);
    }
  }

 private:
  struct ThreadState {
    PyThreadState* state = nullptr;
    ~ThreadState() {
      if (state == nullptr) return;
      std::lock_guard<std::mutex> lock(ended_mu_);
      ended_.push_back(state);
      ended_count_.store(ended_.size(), std::memory_order_relaxed);
    }
  };
  // With the GIL held.
  static void ReleaseUnheld() {
    std::vector<PyObject*> unheld;
    {
      std::lock_guard<std::mutex> lock(ended_mu_);
      unheld.swap(*unheld_);
      unheld_count_.store(0, std::memory_order_relaxed);
    }
    for (PyObject* o : unheld) Py_DECREF(o);
  }

  static thread_local ThreadState thread_state_;
  static std::mutex ended_mu_;  // also guards unheld_
  static std::vector<PyThreadState*> ended_;
  static std::atomic<size_t> ended_count_;
  // Never destroyed: gRPC may let go of a slice while the process exits.
  static std::vector<PyObject*>* const unheld_;
  static std::atomic<size_t> unheld_count_;
};

thread_local Gil::ThreadState Gil::thread_state_;
std::mutex Gil::ended_mu_;
std::vector<PyThreadState*> Gil::ended_;
std::atomic<size_t> Gil::ended_count_{0};
std::vector<PyObject*>* const Gil::unheld_ = new std::vector<PyObject*>;
std::atomic<size_t> Gil::unheld_count_{0};

// A strong reference, released under the GIL.
class PyRef {
 public:
  explicit PyRef(PyObject* o = nullptr) : o_(o) {}
  ~PyRef() {
    if (o_ != nullptr && PyGILState_Check()) Py_DECREF(o_);  // as ~Gil
  }
  PyRef(const PyRef&) = delete;
  PyRef& operator=(const PyRef&) = delete;
  PyObject* get() const { return o_; }
  explicit operator bool() const { return o_ != nullptr; }

 private:
  PyObject* o_;
};

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  out.reserve(buffer.Length());
  for (const grpc::Slice& s : slices) {
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return out;
}

// Replies at least this large (a read's data) are sent from the Python
// bytes object itself, which gRPC holds until written, instead of a copy:
// a copy of a MiB cost more than the bookkeeping.
constexpr size_t kByReferenceBytes = 64 << 10;

// `data` followed by `suffix_size` bytes of `suffix`. With `owner` (the
// bytes object `data` is in; the GIL held) and a large `data`, its slice
// refers to `data` and holds a reference to `owner`.
grpc::ByteBuffer BufferOf(const char* data, size_t size,
                          const uint8_t* suffix = nullptr,
                          size_t suffix_size = 0, PyObject* owner = nullptr) {
  grpc::Slice slices[2] = {grpc::Slice(), grpc::Slice()};
  if (owner != nullptr && size >= kByReferenceBytes) {
    Py_INCREF(owner);
    slices[0] =
        grpc::Slice(const_cast<char*>(data), size, &Gil::DropLater, owner);
  } else {
    slices[0] = grpc::Slice(data, size);
  }
  if (suffix_size == 0) return grpc::ByteBuffer(slices, 1);
  slices[1] = grpc::Slice(suffix, suffix_size);
  return grpc::ByteBuffer(slices, 2);
}

// The message of the pending Python exception (clears it), for a status.
std::string TakePythonError() {
  PyObject *type, *value, *traceback;
  PyErr_Fetch(&type, &value, &traceback);
  PyErr_NormalizeException(&type, &value, &traceback);
  std::string text = "backend raised an exception";
  if (value != nullptr) {
    PyRef s(PyObject_Str(value));
    const char* utf8 = s ? PyUnicode_AsUTF8(s.get()) : nullptr;
    if (utf8 != nullptr) text += std::string(": ") + utf8;
  }
  PyErr_Clear();
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(traceback);
  return text;
}

// The FileSystem service with every message left serialized.
class RawService final : public grpc::Service {
 public:
  // unary()'s method number of Execute, which Session batches run as too.
  static constexpr int kExecute = 2;

  RawService(PyObject* unary, PyObject* stream, int session_threads)
      : unary_(unary), stream_(stream), session_threads_(session_threads) {
    Py_INCREF(unary_);
    Py_INCREF(stream_);
    // RpcServiceMethod keeps the name's pointer: literals, never freed.
    AddUnary("/fusehost.v1.FileSystem/Init", 0);
    AddUnary("/fusehost.v1.FileSystem/Destroy", 1);
    AddUnary("/fusehost.v1.FileSystem/Execute", kExecute);
    AddMethod(new grpc::internal::RpcServiceMethod(
        "/fusehost.v1.FileSystem/Invalidations",
        grpc::internal::RpcMethod::SERVER_STREAMING,
        new grpc::internal::ServerStreamingHandler<RawService, grpc::ByteBuffer,
                                                   grpc::ByteBuffer>(
            [](RawService* self, grpc::ServerContext* ctx,
               const grpc::ByteBuffer* request,
               grpc::ServerWriter<grpc::ByteBuffer>* writer) {
              return self->Stream(ctx, request, writer);
            },
            this)));
    AddMethod(new grpc::internal::RpcServiceMethod(
        "/fusehost.v1.FileSystem/Session",
        grpc::internal::RpcMethod::BIDI_STREAMING,
        new grpc::internal::BidiStreamingHandler<RawService, grpc::ByteBuffer,
                                                 grpc::ByteBuffer>(
            [](RawService* self, grpc::ServerContext* ctx,
               grpc::ServerReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>*
                   stream) { return self->Session(ctx, stream); },
            this)));
  }

  // With the GIL held.
  ~RawService() override {
    Py_DECREF(unary_);
    Py_DECREF(stream_);
  }

 private:
  void AddUnary(const char* method, int index) {
    AddMethod(new grpc::internal::RpcServiceMethod(
        method, grpc::internal::RpcMethod::NORMAL_RPC,
        new grpc::internal::RpcMethodHandler<RawService, grpc::ByteBuffer,
                                             grpc::ByteBuffer>(
            [index](RawService* self, grpc::ServerContext*,
                    const grpc::ByteBuffer* request, grpc::ByteBuffer* reply) {
              return self->Unary(index, *request, reply);
            },
            this)));
  }

  grpc::Status Unary(int method, const grpc::ByteBuffer& request,
                     grpc::ByteBuffer* reply) {
    return Call(method, Flatten(request), nullptr, 0, reply);
  }

  // unary(method, in), with the GIL taken for the call: its bytes followed
  // by `suffix` in *reply, or INTERNAL with what Python raised.
  grpc::Status Call(int method, const std::string& in, const uint8_t* suffix,
                    size_t suffix_size, grpc::ByteBuffer* reply) {
    Gil gil;
    PyRef out(PyObject_CallFunction(unary_, "iy#", method, in.data(),
                                    static_cast<Py_ssize_t>(in.size())));
    char* data = nullptr;
    Py_ssize_t size = 0;
    if (!out || PyBytes_AsStringAndSize(out.get(), &data, &size) != 0) {
      return grpc::Status(grpc::StatusCode::INTERNAL, TakePythonError());
    }
    *reply = BufferOf(data, static_cast<size_t>(size), suffix, suffix_size,
                      out.get());
    return grpc::Status::OK;
  }

  // Session: batches answered with Execute's results and their sequence,
  // until the daemon ends the stream (or cancels it, or the server stops).
  grpc::Status Session(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>* stream) {
    using Stream = grpc::ServerReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>;
    class Adapted final
        : public fusehost::SessionStream<grpc::ByteBuffer, grpc::ByteBuffer> {
     public:
      explicit Adapted(Stream* s) : s_(s) {}
      bool Read(grpc::ByteBuffer* batch) override { return s_->Read(batch); }
      // No result (a batch that could not be read): the stream ends.
      bool Write(const grpc::ByteBuffer& result) override {
        return result.Valid() && s_->Write(result);
      }

     private:
      Stream* const s_;
    } adapted(stream);
    fusehost::RunSession<grpc::ByteBuffer, grpc::ByteBuffer>(
        adapted, session_threads_,
        [this, ctx](const grpc::ByteBuffer& batch, grpc::ByteBuffer* result) {
          const std::string in = Flatten(batch);
          uint64_t sequence = 0;
          if (!fusehost::BatchSequence(
                  reinterpret_cast<const uint8_t*>(in.data()), in.size(),
                  &sequence)) {
            // Not a Batch: no result can say which one it answers. The
            // reads and writes pending and to come fail, and the stream
            // ends.
            ctx->TryCancel();
            return;
          }
          uint8_t field[fusehost::kSequenceFieldMax];
          const size_t field_size = fusehost::SequenceField(sequence, field);
          const grpc::Status status =
              Call(kExecute, in, field, field_size, result);
          if (!status.ok()) {
            // No op results: the daemon fails the batch's ops (EIO), as
            // it does those of an Execute call that fails.
            std::fprintf(stderr, "fusehost: Session batch %llu: %s\n",
                         static_cast<unsigned long long>(sequence),
                         status.error_message().c_str());
            *result =
                BufferOf(reinterpret_cast<const char*>(field), field_size);
          }
        });
    return grpc::Status::OK;
  }

  grpc::Status Stream(grpc::ServerContext* ctx, const grpc::ByteBuffer* request,
                      grpc::ServerWriter<grpc::ByteBuffer>* writer) {
    std::string in = Flatten(*request);
    Gil gil;
    // Owned by the capsule: Python may keep alive() and send_headers()
    // past this call; they then say the call is over.
    auto* call = new StreamCall{ctx, writer};
    PyRef self(PyCapsule_New(call, nullptr, [](PyObject* capsule) {
      delete static_cast<StreamCall*>(PyCapsule_GetPointer(capsule, nullptr));
    }));
    if (!self) {
      delete call;
      return grpc::Status(grpc::StatusCode::INTERNAL, TakePythonError());
    }
    grpc::Status status = Notices(self.get(), in, writer);
    call->ctx = nullptr;
    call->writer = nullptr;
    return status;
  }

  // The Invalidations stream's loop; `self` is its StreamCall's capsule.
  grpc::Status Notices(PyObject* self, const std::string& in,
                       grpc::ServerWriter<grpc::ByteBuffer>* writer) {
    PyRef alive(PyCFunction_New(&kAliveDef, self));
    PyRef headers(PyCFunction_New(&kHeadersDef, self));
    if (!alive || !headers) {
      return grpc::Status(grpc::StatusCode::INTERNAL, TakePythonError());
    }
    PyRef items(PyObject_CallFunction(stream_, "y#OO", in.data(),
                                      static_cast<Py_ssize_t>(in.size()),
                                      alive.get(), headers.get()));
    PyRef it(items ? PyObject_GetIter(items.get()) : nullptr);
    if (!it) return grpc::Status(grpc::StatusCode::INTERNAL, TakePythonError());
    grpc::Status status(grpc::StatusCode::INTERNAL,
                        "notice stream ended without a status");
    bool writing = true;
    while (true) {
      // Waits in Python (which lets the GIL go while it waits for notices).
      PyRef item(PyIter_Next(it.get()));
      if (!item) {
        if (PyErr_Occurred()) {
          status = grpc::Status(grpc::StatusCode::INTERNAL, TakePythonError());
        }
        break;
      }
      if (PyTuple_Check(item.get())) {
        int code = 0;
        const char* details = "";
        if (!PyArg_ParseTuple(item.get(), "is", &code, &details)) {
          status = grpc::Status(grpc::StatusCode::INTERNAL, TakePythonError());
        } else {
          status = grpc::Status(static_cast<grpc::StatusCode>(code), details);
        }
        continue;  // the iterator ends after it, and its cleanup runs
      }
      char* data = nullptr;
      Py_ssize_t size = 0;
      if (PyBytes_AsStringAndSize(item.get(), &data, &size) != 0) {
        status = grpc::Status(grpc::StatusCode::INTERNAL, TakePythonError());
        break;
      }
      if (!writing) continue;
      grpc::ByteBuffer message = BufferOf(data, static_cast<size_t>(size));
      bool ok;
      Py_BEGIN_ALLOW_THREADS
      ok = writer->Write(message);
      Py_END_ALLOW_THREADS
      if (!ok) writing = false;  // the call is gone: Python sees alive() false
    }
    return status;
  }

  struct StreamCall {
    grpc::ServerContext* ctx;
    grpc::ServerWriter<grpc::ByteBuffer>* writer;
  };

  static StreamCall* CallOf(PyObject* capsule) {
    return static_cast<StreamCall*>(PyCapsule_GetPointer(capsule, nullptr));
  }

  static PyObject* Alive(PyObject* capsule, PyObject*) {
    StreamCall* call = CallOf(capsule);
    if (call == nullptr) return nullptr;
    return PyBool_FromLong(call->ctx != nullptr && !call->ctx->IsCancelled());
  }

  static PyObject* SendHeaders(PyObject* capsule, PyObject*) {
    StreamCall* call = CallOf(capsule);
    if (call == nullptr) return nullptr;
    if (call->writer == nullptr) Py_RETURN_FALSE;
    Py_BEGIN_ALLOW_THREADS
    call->writer->SendInitialMetadata();
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(!call->ctx->IsCancelled());
  }

  static PyMethodDef kAliveDef;
  static PyMethodDef kHeadersDef;

  PyObject* const unary_;
  PyObject* const stream_;
  const int session_threads_;
};

PyMethodDef RawService::kAliveDef = {"alive", RawService::Alive, METH_NOARGS,
                                     nullptr};
PyMethodDef RawService::kHeadersDef = {"send_headers", RawService::SendHeaders,
                                       METH_NOARGS, nullptr};

struct NativeServer {
  std::unique_ptr<RawService> service;
  std::unique_ptr<grpc::Server> server;
};

constexpr char kCapsuleName[] = "fusehost._native_server.Server";

// Stops s->server: calls in progress get until `grace` from now, and are
// waited for `wait` seconds more (with the GIL released, which they need).
// A handler that never returns (an operation stuck in the filesystem)
// would keep grpc::Server::Shutdown waiting forever, so it runs on a
// thread of its own; if that is not done in time, the service stays
// allocated for the handlers still running, and false is returned. With
// the GIL held.
bool StopServer(NativeServer* s, double grace, double wait) {
  if (s->server == nullptr) return true;
  struct Stopping {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
  };
  auto stopping = std::make_shared<Stopping>();
  const auto deadline =
      std::chrono::system_clock::now() +
      std::chrono::microseconds(static_cast<int64_t>(grace * 1e6));
  std::thread([server = std::move(s->server), stopping, deadline]() mutable {
    server->Shutdown(deadline);
    server->Wait();
    server.reset();
    std::lock_guard<std::mutex> lock(stopping->mu);
    stopping->done = true;
    stopping->cv.notify_all();
  }).detach();
  bool done;
  Py_BEGIN_ALLOW_THREADS
  std::unique_lock<std::mutex> lock(stopping->mu);
  done = stopping->cv.wait_for(
      lock, std::chrono::microseconds(static_cast<int64_t>((grace + wait) * 1e6)),
      [&] { return stopping->done; });
  Py_END_ALLOW_THREADS
  if (!done) s->service.release();  // still in use by the stuck handlers
  Gil::Reap();  // the server's threads that ended
  return done;
}

void DestroyCapsule(PyObject* capsule) {
  auto* s = static_cast<NativeServer*>(PyCapsule_GetPointer(capsule, kCapsuleName));
  if (s == nullptr) return;
  StopServer(s, 0, 3);  // not stopped: calls in progress are cancelled
  delete s;
}

PyObject* Start(PyObject*, PyObject* args) {
  const char* address = nullptr;
  PyObject* unary = nullptr;
  PyObject* stream = nullptr;
  int threads = 8;
  int max_message = 256 << 20;
  const char* tls_cert = "";
  const char* tls_key = "";
  const char* tls_client_ca = "";
  if (!PyArg_ParseTuple(args, "sOOii|sss", &address, &unary, &stream,
                        &threads, &max_message, &tls_cert, &tls_key,
                        &tls_client_ca)) {
    return nullptr;
  }
  // TLS as the C++ SDK serves it: the files checked now and watched for
  // renewals (client/tls_credentials.h).
  std::shared_ptr<grpc::ServerCredentials> credentials =
      grpc::InsecureServerCredentials();
  if (*tls_cert != '\0') {
    absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> tls =
        fusehost::TlsServerCredentialsFromFiles(tls_cert, tls_key,
                                                tls_client_ca);
    if (!tls.ok()) {
      PyErr_SetString(PyExc_ValueError,
                      std::string(tls.status().message()).c_str());
      return nullptr;
    }
    credentials = *std::move(tls);
  }
  if (!PyCallable_Check(unary) || !PyCallable_Check(stream)) {
    PyErr_SetString(PyExc_TypeError, "unary and stream must be callable");
    return nullptr;
  }
  // As the daemon and the C++ SDK do: the deadlock detection abseil's
  // Mutex runs in a build without NDEBUG (Debian's) records every lock
  // order in a global graph, which gRPC's locks of each call pay for.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  auto s = std::make_unique<NativeServer>();
  s->service =
      std::make_unique<RawService>(unary, stream, threads < 1 ? 1 : threads);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(address, credentials, &port);
  builder.RegisterService(s->service.get());
  builder.SetMaxReceiveMessageSize(max_message);
  builder.SetMaxSendMessageSize(max_message);
  // As the C++ SDK's server (client/backend_server.cc says why): a large
  // write's stream window, pings without calls answered, and the handler
  // threads kept rather than started per call.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 8 << 20);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 1);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS,
                              threads < 1 ? 1 : threads);
  // A waiting thread looks again this often: grpc::Server::Shutdown waits
  // for each to, and gRPC's default of 10 s made stop() take up to that.
  builder.SetSyncServerOption(
      grpc::ServerBuilder::SyncServerOption::CQ_TIMEOUT_MSEC, 500);
  Py_BEGIN_ALLOW_THREADS
  s->server = builder.BuildAndStart();
  Py_END_ALLOW_THREADS
  if (s->server == nullptr || port == 0) {
    if (s->server != nullptr) {
      Py_BEGIN_ALLOW_THREADS
      s->server->Shutdown();
      Py_END_ALLOW_THREADS
      s->server.reset();
    }
    PyErr_SetString(PyExc_OSError, "gRPC could not bind the address");
    return nullptr;
  }
  PyObject* capsule = PyCapsule_New(s.get(), kCapsuleName, DestroyCapsule);
  if (capsule != nullptr) s.release();
  return capsule;
}

PyObject* Stop(PyObject*, PyObject* args) {
  PyObject* capsule = nullptr;
  double grace = 0;
  double wait = 3;
  if (!PyArg_ParseTuple(args, "Od|d", &capsule, &grace, &wait)) return nullptr;
  auto* s = static_cast<NativeServer*>(PyCapsule_GetPointer(capsule, kCapsuleName));
  if (s == nullptr) return nullptr;
  return PyBool_FromLong(StopServer(s, grace, wait));
}

PyMethodDef kMethods[] = {
    {"start", Start, METH_VARARGS,
     "start(address, unary, stream, threads, max_message) -> server"},
    {"stop", Stop, METH_VARARGS,
     "stop(server, grace_seconds, wait_seconds=3) -> bool (all calls ended)"},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef kModule = {
    PyModuleDef_HEAD_INIT, "_native_server",
    "fuse-hostd backends served on gRPC's C++ server (see _native.py).", -1,
    kMethods,
};

}  // namespace

PyMODINIT_FUNC PyInit__native_server() { return PyModule_Create(&kModule); }
