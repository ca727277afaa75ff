// Tells the service manager how the daemon is doing, through libsystemd's
// sd_notify (fuse-hostd.service is Type=notify): READY=1 once the control
// socket serves, STATUS= lines a human reads in `systemctl status`,
// STOPPING=1 on the way out, and WATCHDOG=1 keep-alives when the unit sets
// WatchdogSec= (the manager passes WATCHDOG_USEC). Without NOTIFY_SOCKET in
// the environment (not started by systemd) every call does nothing.
//
// The watchdog pings from its own thread at half the interval, and only
// after `alive` returns: a daemon whose mount table is deadlocked stops
// pinging, and systemd restarts it.
//
// Thread use: Ready/Status/Stopping from any thread; StartWatchdog once.

#ifndef FUSE_HOSTD_DAEMON_CONTROL_SERVICE_NOTIFIER_H_
#define FUSE_HOSTD_DAEMON_CONTROL_SERVICE_NOTIFIER_H_

#include <functional>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace fusehost {

class ServiceNotifier {
 public:
  ServiceNotifier() = default;
  ~ServiceNotifier();  // stops the watchdog thread

  ServiceNotifier(const ServiceNotifier&) = delete;
  ServiceNotifier& operator=(const ServiceNotifier&) = delete;

  void Ready(const std::string& status);
  void Status(const std::string& status);
  void Stopping(const std::string& status);

  // Starts pinging if the service manager asked for a watchdog; returns the
  // interval it asked for (zero: none).
  absl::Duration StartWatchdog(std::function<void()> alive);

 private:
  void Notify(const std::string& state);

  absl::Notification stop_;
  std::thread watchdog_;
};

}  // namespace fusehost

#endif  // FUSE_HOSTD_DAEMON_CONTROL_SERVICE_NOTIFIER_H_
