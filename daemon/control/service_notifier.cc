#include "daemon/control/service_notifier.h"
#include "common/log_line.h"

#include <systemd/sd-daemon.h>

#include <cstdint>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace fusehost {
namespace {

// STATUS= ends at a newline.
std::string OneLine(std::string s) {
  for (char& c : s) {
    if (c == '\n') c = ' ';
  }
  return s;
}

}  // namespace

ServiceNotifier::~ServiceNotifier() {
  stop_.Notify();
  if (watchdog_.joinable()) watchdog_.join();
}

void ServiceNotifier::Notify(const std::string& state) {
  int rc = sd_notify(/*unset_environment=*/0, state.c_str());
  if (rc < 0) {
    Log("sd_notify: %s", strerror(-rc));
  }
}

void ServiceNotifier::Ready(const std::string& status) {
  Notify(absl::StrCat("READY=1\nSTATUS=", OneLine(status)));
}

void ServiceNotifier::Status(const std::string& status) {
  Notify(absl::StrCat("STATUS=", OneLine(status)));
}

void ServiceNotifier::Stopping(const std::string& status) {
  Notify(absl::StrCat("STOPPING=1\nSTATUS=", OneLine(status)));
}

absl::Duration ServiceNotifier::StartWatchdog(std::function<void()> alive) {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(/*unset_environment=*/0, &usec) <= 0 || usec == 0) {
    return absl::ZeroDuration();
  }
  absl::Duration interval = absl::Microseconds(usec);
  watchdog_ = std::thread([this, interval, alive = std::move(alive)] {
    do {
      alive();
      Notify("WATCHDOG=1");
    } while (!stop_.WaitForNotificationWithTimeout(interval / 2));
  });
  return interval;
}

}  // namespace fusehost
