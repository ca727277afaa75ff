// A thread that accepts connections on a listening socket and hands each to
// a callback, until stopped. Shared by the control listener, the backend
// the metrics endpoint.
//
// Thread use: Start()/Stop() from one thread; the callback runs on the
// acceptor's thread, one connection at a time.

#ifndef FUSE_HOSTD_DAEMON_SOCKETS_ACCEPTOR_H_
#define FUSE_HOSTD_DAEMON_SOCKETS_ACCEPTOR_H_

#include <functional>
#include <string>
#include <thread>

namespace fusehost {

class Acceptor {
 public:
  struct Options {
    // Listening socket; the acceptor owns it and closes it in Stop().
    int listen_fd = -1;
    // accept4() flags, e.g. SOCK_CLOEXEC | SOCK_NONBLOCK.
    int accept_flags = 0;
    // Names the socket in log lines.
    std::string name;
    // Takes ownership of each accepted descriptor.
    std::function<void(int fd)> on_accept;
  };

  explicit Acceptor(Options options);
  ~Acceptor();  // Stop()s.

  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;

  void Start();
  // Stops accepting, waits for a callback in progress, closes the listening
  // socket. Idempotent.
  void Stop();

 private:
  void Loop();

  Options options_;
  int wake_fd_ = -1;
  std::thread thread_;
  bool stopped_ = false;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_SOCKETS_ACCEPTOR_H_
