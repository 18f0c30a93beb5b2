#include "common/yaml_mapping.h"

#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"

namespace vstream {

std::string DescribeYaml(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Scalar: return absl::StrCat("'", node.Scalar(), "'");
    default: return "nothing";
  }
}

absl::Status YamlErrorAt(std::string_view path, const YAML::Mark& mark, std::string_view message) {
  const int line = mark.is_null() ? 1 : mark.line + 1;
  const int column = mark.is_null() ? 1 : mark.column + 1;
  std::string one_line(message);
  for (char& c : one_line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return absl::InvalidArgumentError(absl::StrCat(AV(path), ":", line, ":", column, ": ", one_line));
}

absl::StatusOr<YamlMapping> ParseYamlMapping(std::string_view path, const YAML::Node& node, std::string_view what) {
  if (!node.IsMap()) {
    return YamlErrorAt(path, node.Mark(), absl::StrCat("expected a mapping for ", AV(what), ", got ", DescribeYaml(node)));
  }
  YamlMapping m;
  m.node = node;
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (!it->first.IsScalar()) {
      return YamlErrorAt(path, it->first.Mark(),
                         absl::StrCat("expected a field name in ", AV(what), ", got ", DescribeYaml(it->first)));
    }
    m.entries.push_back(YamlEntry{it->first.Scalar(), it->first, it->second});
  }
  return m;
}

}  // namespace vstream
