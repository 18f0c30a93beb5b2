#pragma once
// YAML mappings as the project's YAML readers (job specs, model files) see
// them: entries in file order with their positions, and errors that say
// "PATH:LINE:COLUMN: message" on one line.

#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace vstream {

// One `key: value` of a YAML mapping.
struct YamlEntry {
  std::string key;
  YAML::Node key_node;
  YAML::Node value;

  // Where the value is. An empty value (`key:`) has no position of its own.
  YAML::Mark mark() const { return value.IsNull() ? key_node.Mark() : value.Mark(); }
};

// A YAML mapping with its entries in file order (yaml-cpp keeps repeated
// keys; the readers reject them).
struct YamlMapping {
  YAML::Node node;
  std::vector<YamlEntry> entries;

  const YamlEntry* Find(std::string_view key) const {
    for (const YamlEntry& e : entries) {
      if (e.key == key) return &e;
    }
    return nullptr;
  }
};

// What a node is, for "expected X, got Y" messages: "a mapping", "a list",
// "'text'", "nothing".
std::string DescribeYaml(const YAML::Node& node);

// InvalidArgument "PATH:LINE:COLUMN: message" (1-based; line breaks in the
// message become spaces).
absl::Status YamlErrorAt(std::string_view path, const YAML::Mark& mark, std::string_view message);

// The entries of `node`, which must be a mapping with scalar keys; `what`
// names it in errors ("expected a mapping for WHAT, got ...").
absl::StatusOr<YamlMapping> ParseYamlMapping(std::string_view path, const YAML::Node& node, std::string_view what);

}  // namespace vstream
