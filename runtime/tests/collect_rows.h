#pragma once
// An Output for operator tests that keeps every row pushed to it as a map
// from field name to the value's text (DatumToString).

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "runtime/operators/operator.h"
#include "runtime/types.h"

namespace vstream {

class CollectRowsByName : public Output {
 public:
  explicit CollectRowsByName(Schema schema) : schema_(std::move(schema)) {}
  void Push(RowBatch& batch) override {
    for (size_t i = 0; i < batch.size(); ++i) {
      std::map<std::string, std::string> row;
      for (size_t f = 0; f < schema_.size(); ++f) {
        row[schema_.field(f).name] = DatumToString(batch[i][f], schema_.field(f).type);
      }
      rows.push_back(row);
    }
  }
  void Finish() override {}
  void PushWatermark(int64_t) override {}
  std::vector<std::map<std::string, std::string>> rows;

 private:
  Schema schema_;
};

}  // namespace vstream
