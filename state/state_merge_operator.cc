#include "state/state_merge_operator.h"

#include <cassert>
#include <string_view>

#include "state/state_value_format.h"

namespace vstream {

namespace {

std::string_view View(const rocksdb::Slice& s) { return std::string_view(s.data(), s.size()); }

// Folds `operands` over `existing` (may be null) into *out, the stored form.
// With a TTL every operand carries its write time; an accumulator that had
// expired before an operand was written is dropped first, exactly as a
// read-modify-write at that time would have seen no value.
template <typename Operands>
bool FoldOperands(const StateBehavior& b, const rocksdb::Slice* existing, const Operands& operands,
                  std::string* out) {
  thread_local std::string scratch;
  const bool timed = b.timed();
  std::string* acc = timed ? &scratch : out;
  acc->clear();
  bool have = false;
  int64_t acc_ms = 0;
  if (existing != nullptr) {
    std::string_view payload = View(*existing);
    if (timed && !SplitTimedValue(View(*existing), &acc_ms, &payload)) return false;
    acc->assign(payload.data(), payload.size());
    have = true;
  }
  for (const rocksdb::Slice& operand : operands) {
    std::string_view payload = View(operand);
    int64_t op_ms = 0;
    if (timed && !SplitTimedValue(View(operand), &op_ms, &payload)) return false;
    if (have && IsExpired(acc_ms, b.ttl_ms, op_ms)) have = false;
    if (have) {
      b.FoldNext(acc, payload);
    } else {
      b.FoldFirst(acc, payload);
      have = true;
    }
    acc_ms = op_ms;
  }
  if (timed) {
    out->clear();
    AppendWriteTime(acc_ms, out);
    out->append(*acc);
  }
  return true;
}

}  // namespace

void StateMergeOperator::Bind(std::shared_ptr<const StateBehavior> behavior) {
  assert(behavior_.load() == nullptr && "merge operator bound twice");
  owned_ = std::move(behavior);
  behavior_.store(owned_.get(), std::memory_order_release);
}

bool StateMergeOperator::FullMergeV2(const MergeOperationInput& merge_in,
                                     MergeOperationOutput* merge_out) const {
  const StateBehavior* b = behavior_.load(std::memory_order_acquire);
  if (b == nullptr) return false;
  std::string& out = merge_out->new_value;
  switch (b->kind) {
    case StateKind::kList: {
      size_t total = merge_in.existing_value != nullptr ? merge_in.existing_value->size() : 0;
      for (const rocksdb::Slice& op : merge_in.operand_list) total += op.size();
      out.clear();
      out.reserve(total);
      if (!b->timed()) {
        if (merge_in.existing_value != nullptr) {
          out.append(merge_in.existing_value->data(), merge_in.existing_value->size());
        }
        for (const rocksdb::Slice& op : merge_in.operand_list) out.append(op.data(), op.size());
        return true;
      }
      // Elements expire one by one and never come back, so a merge (in a
      // read or a compaction) may drop the expired ones for good.
      const int64_t now = clock_.NowMillis();
      if (merge_in.existing_value != nullptr &&
          RemoveExpiredListElements(View(*merge_in.existing_value), b->ttl_ms, now, &out) < 0) {
        return false;
      }
      for (const rocksdb::Slice& op : merge_in.operand_list) {
        if (RemoveExpiredListElements(View(op), b->ttl_ms, now, &out) < 0) return false;
      }
      return true;
    }
    case StateKind::kReducing:
    case StateKind::kAggregating:
      return FoldOperands(*b, merge_in.existing_value, merge_in.operand_list, &out);
    case StateKind::kValue:
    case StateKind::kMap:
      return false;  // never written with Merge
  }
  return false;
}

bool StateMergeOperator::PartialMergeMulti(const rocksdb::Slice& /*key*/,
                                           const std::deque<rocksdb::Slice>& operands,
                                           std::string* new_value,
                                           rocksdb::Logger* /*logger*/) const {
  const StateBehavior* b = behavior_.load(std::memory_order_acquire);
  if (b == nullptr) return false;
  if (b->kind == StateKind::kList) {
    new_value->clear();
    for (const rocksdb::Slice& op : operands) new_value->append(op.data(), op.size());
    return true;
  }
  // Pre-combining needs associativity, and is skipped under a TTL, where each
  // operand's write time decides whether the accumulator before it expired.
  if ((b->kind != StateKind::kReducing && b->kind != StateKind::kAggregating) ||
      !b->associative || b->timed() || operands.empty()) {
    return false;
  }
  new_value->assign(operands.front().data(), operands.front().size());
  for (size_t i = 1; i < operands.size(); ++i) b->FoldNext(new_value, View(operands[i]));
  return true;
}

namespace {

class TtlCompactionFilter final : public rocksdb::CompactionFilter {
 public:
  TtlCompactionFilter(const StateBehavior& behavior, int64_t now_ms)
      : behavior_(behavior), now_ms_(now_ms) {}

  Decision FilterV2(int /*level*/, const rocksdb::Slice& /*key*/, ValueType value_type,
                    const rocksdb::Slice& existing_value, std::string* new_value,
                    std::string* /*skip_until*/) const override {
    // Merge operands stay: whether an earlier operand still counts depends on
    // the write times of those after it (see FoldOperands).
    if (value_type != ValueType::kValue) return Decision::kKeep;
    if (behavior_.kind == StateKind::kList) {
      new_value->clear();
      const int dropped =
          RemoveExpiredListElements(View(existing_value), behavior_.ttl_ms, now_ms_, new_value);
      if (dropped < 0) return Decision::kKeep;  // never drop what we cannot parse
      if (new_value->empty()) return Decision::kRemove;
      return dropped == 0 ? Decision::kKeep : Decision::kChangeValue;
    }
    return IsLiveValue(behavior_.kind, behavior_.ttl_ms, View(existing_value), now_ms_)
               ? Decision::kKeep
               : Decision::kRemove;
  }

  const char* Name() const override { return "vstream.TtlCompactionFilter"; }

 private:
  const StateBehavior& behavior_;
  const int64_t now_ms_;  // one time for the whole compaction
};

}  // namespace

void TtlCompactionFilterFactory::Bind(std::shared_ptr<const StateBehavior> behavior) {
  assert(behavior_.load() == nullptr && "compaction filter factory bound twice");
  owned_ = std::move(behavior);
  behavior_.store(owned_.get(), std::memory_order_release);
}

bool TtlCompactionFilterFactory::ShouldFilterTableFileCreation(
    rocksdb::TableFileCreationReason reason) const {
  const StateBehavior* b = behavior_.load(std::memory_order_acquire);
  return reason == rocksdb::TableFileCreationReason::kCompaction && b != nullptr && b->timed();
}

std::unique_ptr<rocksdb::CompactionFilter> TtlCompactionFilterFactory::CreateCompactionFilter(
    const rocksdb::CompactionFilter::Context& /*context*/) {
  const StateBehavior* b = behavior_.load(std::memory_order_acquire);
  if (b == nullptr || !b->timed()) return nullptr;
  return std::make_unique<TtlCompactionFilter>(*b, clock_.NowMillis());
}

}  // namespace vstream
