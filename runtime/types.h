#pragma once
// Records and schemas: the data model of the data plane.
//
// A Row is a vector of Datums, one per schema field. Rows live in RowBatches
// that are reused from batch to batch, so that in steady state no record
// allocates: a Datum's string keeps its capacity when the row is refilled.
// Operators process whole batches (batch-at-a-time), not single records.

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/jobgraph.pb.h"

namespace vstream {

enum class FieldType : uint8_t {
  kInt = 1,        // int64
  kDouble = 2,
  kString = 3,
  kBool = 4,
  kTimestamp = 5,  // epoch milliseconds, UTC
};

const char* FieldTypeName(FieldType type);  // "int", "double", ...
// Accepts int|long|bigint, double|float, string, bool|boolean, timestamp.
absl::StatusOr<FieldType> ParseFieldType(std::string_view name);
FieldType FromProto(proto::FieldType type);
proto::FieldType ToProto(FieldType type);

// One value. For kInt, kBool (0/1) and kTimestamp the value is in `i`, for
// kDouble in `d`, for kString in `s`. The type lives in the schema, not here.
struct Datum {
  bool is_null = true;
  int64_t i = 0;
  double d = 0;
  std::string s;

  void SetNull() { is_null = true; }
  void SetInt(int64_t v) { is_null = false; i = v; }
  void SetBool(bool v) { is_null = false; i = v ? 1 : 0; }
  void SetDouble(double v) { is_null = false; d = v; }
  void SetString(std::string_view v) { is_null = false; s.assign(v.data(), v.size()); }
};

using Row = std::vector<Datum>;

struct Field {
  std::string name;
  FieldType type;
};

class Schema {
 public:
  Schema() = default;
  explicit Schema(std::vector<Field> fields) : fields_(std::move(fields)) {}

  static Schema FromProto(const proto::Schema& schema);
  proto::Schema ToProto() const;

  size_t size() const { return fields_.size(); }
  const Field& field(size_t i) const { return fields_[i]; }
  const std::vector<Field>& fields() const { return fields_; }
  void Add(std::string name, FieldType type) { fields_.push_back({std::move(name), type}); }
  // Index of the field with this name, or -1.
  int IndexOf(std::string_view name) const;
  std::string DebugString() const;  // "{a: int, b: string}"

 private:
  std::vector<Field> fields_;
};

// A reusable batch of rows of one width. Clear() keeps the rows (and their
// string capacity) for the next batch.
//
// A batch is full() at capacity() rows: as many as fit in kTargetBytes of
// Datums, at least kMinCapacity, at most kDefaultCapacity. A batch is
// filled by one operator and read by the next while it is still in the
// core's cache; 1,024 rows of a Nexmark event (27 fields, 1.5 KB of Datums)
// were 1.5 MB, as large as the core's L2, and every task sharing the core
// evicted them (docs/benchmarks.md, "Batches that fit in the cache").
class RowBatch {
 public:
  static constexpr size_t kDefaultCapacity = 1024;
  static constexpr size_t kMinCapacity = 64;
  static constexpr size_t kTargetBytes = 192 * 1024;

  explicit RowBatch(size_t width = 0) : width_(width), capacity_(CapacityFor(width)) {}

  static constexpr size_t CapacityFor(size_t width) {
    return width == 0 ? kDefaultCapacity
                      : std::clamp(kTargetBytes / (width * sizeof(Datum)), kMinCapacity, kDefaultCapacity);
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  size_t capacity() const { return capacity_; }
  bool full() const { return size_ >= capacity_; }
  size_t width() const { return width_; }
  void set_width(size_t width) {
    width_ = width;
    capacity_ = CapacityFor(width);
  }

  Row& operator[](size_t i) { return rows_[i]; }
  const Row& operator[](size_t i) const { return rows_[i]; }

  // The next row, sized to width(); its old values are left for reuse.
  Row& Append() {
    if (size_ == rows_.size()) rows_.emplace_back();
    Row& row = rows_[size_++];
    if (row.size() != width_) row.resize(width_);
    return row;
  }
  void Clear() { size_ = 0; }
  void Truncate(size_t n) { if (n < size_) size_ = n; }
  void SwapRows(size_t a, size_t b) { rows_[a].swap(rows_[b]); }

 private:
  std::vector<Row> rows_;
  size_t size_ = 0;
  size_t width_;
  size_t capacity_;
};

// "null", "42", "3.5", "text", "true", ISO timestamp: for debugging and tests.
std::string DatumToString(const Datum& d, FieldType type);

}  // namespace vstream
