#include "state/state_clock.h"

#include "common/time_util.h"

namespace vstream {

namespace {

class SystemStateClock final : public StateClock {
 public:
  int64_t NowMillis() const override { return vstream::NowMillis(); }
};

}  // namespace

const StateClock& StateClock::System() {
  static const SystemStateClock* const clock = new SystemStateClock();
  return *clock;
}

}  // namespace vstream
