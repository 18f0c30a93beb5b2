#pragma once
// Debian 12's Abseil (20220623) is built with its own absl::string_view,
// which is NOT std::string_view. Wrap a std::string_view before handing it
// to absl::StrCat, absl::StrFormat or an absl::Status constructor.

#include <string_view>

#include "absl/strings/string_view.h"

namespace vstream {

inline absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace vstream
