#include "common/background_pacer.h"

#include <thread>

namespace vstream {

namespace {
thread_local bool paced_thread = false;
}  // namespace

void PaceThisThread() { paced_thread = true; }

bool ThisThreadIsPaced() { return paced_thread; }

BackgroundPacer::BackgroundPacer() : paced_(paced_thread) {
  if (paced_) piece_start_ = std::chrono::steady_clock::now();
}

void BackgroundPacer::Pause() {
  if (!paced_) return;
  const auto piece = std::chrono::steady_clock::now() - piece_start_;
  std::this_thread::sleep_for(piece * kBackgroundPauseFactor);
  piece_start_ = std::chrono::steady_clock::now();
}

}  // namespace vstream
