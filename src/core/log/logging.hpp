// The engine's spdlog logger. Records are also queued for the Python bridge
// (src/bindings/register_logging.cpp), which replays them into `logging` under "faas_sdk".
#pragma once

#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

namespace faas::log {

struct Record {
  int python_level;  // logging.DEBUG=10 ... CRITICAL=50
  std::string message;
};

std::shared_ptr<spdlog::logger> logger();

// Maps a Python logging level onto spdlog's and applies it.
void set_python_level(int level);

// Waits up to `timeout` for the next record; nullopt on timeout or after close_queue().
std::optional<Record> pop_record(std::chrono::milliseconds timeout);
void close_queue();

}  // namespace faas::log
