#include "runtime/formats/json_value.h"

#include <charconv>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "common/absl_compat.h"
#include "runtime/formats/format_util.h"

namespace vstream {

const JsonValue* JsonValue::Find(std::string_view key) const {
  if (type != Type::kObject) return nullptr;
  for (auto it = members.rbegin(); it != members.rend(); ++it) {
    if (it->key == key) return &it->value;
  }
  return nullptr;
}

std::string_view JsonValue::String(std::string_view key) const {
  const JsonValue* v = Find(key);
  return v != nullptr && v->type == Type::kString ? std::string_view(v->text) : std::string_view();
}

namespace {

class Parser {
 public:
  Parser(std::string_view text, int first_line) : s_(text), line_(first_line) {
    if (s_.substr(0, 3) == "\xEF\xBB\xBF") pos_ = 3;
    line_start_ = pos_;
  }

  absl::Status Parse(JsonValue* out) {
    SkipSpace();
    if (absl::Status st = Value(out, 0); !st.ok()) return st;
    SkipSpace();
    if (pos_ != s_.size()) return Error("expected the end of the document after the value");
    return absl::OkStatus();
  }

 private:
  absl::Status Error(std::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("line ", line_, " column ", pos_ - line_start_ + 1, ": ", AV(what)));
  }

  void SkipSpace() {
    while (pos_ < s_.size()) {
      const char c = s_[pos_];
      if (c == '\n') {
        ++line_;
        line_start_ = pos_ + 1;
      } else if (c != ' ' && c != '\t' && c != '\r') {
        return;
      }
      ++pos_;
    }
  }

  bool Literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  absl::Status Value(JsonValue* v, int depth) {
    v->line = line_;
    v->column = static_cast<int>(pos_ - line_start_ + 1);
    v->items.clear();
    v->members.clear();
    v->text.clear();
    if (pos_ >= s_.size()) return Error("expected a value, found the end of the document");
    const char c = s_[pos_];
    if (c == '{' || c == '[') {
      if (depth >= kJsonMaxDepth) return Error(absl::StrCat("nested deeper than ", kJsonMaxDepth, " levels"));
      return c == '{' ? Object(v, depth) : Array(v, depth);
    }
    if (c == '"') {
      v->type = JsonValue::Type::kString;
      return String(&v->text);
    }
    if (c == '-' || (c >= '0' && c <= '9')) return Number(v);
    if (Literal("true") || Literal("false")) {
      v->type = JsonValue::Type::kBool;
      v->boolean = c == 't';
      return absl::OkStatus();
    }
    if (Literal("null")) {
      v->type = JsonValue::Type::kNull;
      return absl::OkStatus();
    }
    return Error("expected a value (object, array, string, number, true, false or null)");
  }

  absl::Status Object(JsonValue* v, int depth) {
    v->type = JsonValue::Type::kObject;
    ++pos_;
    SkipSpace();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return absl::OkStatus();
    }
    for (;;) {
      if (pos_ >= s_.size() || s_[pos_] != '"') return Error("expected a member name in double quotes");
      v->members.emplace_back();
      auto& member = v->members.back();
      if (absl::Status st = String(&member.key); !st.ok()) return st;
      SkipSpace();
      if (pos_ >= s_.size() || s_[pos_] != ':') return Error("expected ':' after a member name");
      ++pos_;
      SkipSpace();
      if (absl::Status st = Value(&member.value, depth + 1); !st.ok()) return st;
      SkipSpace();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        SkipSpace();
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == '}') {
        ++pos_;
        return absl::OkStatus();
      }
      return Error("expected ',' or '}' after an object member");
    }
  }

  absl::Status Array(JsonValue* v, int depth) {
    v->type = JsonValue::Type::kArray;
    ++pos_;
    SkipSpace();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      return absl::OkStatus();
    }
    for (;;) {
      v->items.emplace_back();
      if (absl::Status st = Value(&v->items.back(), depth + 1); !st.ok()) return st;
      SkipSpace();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        SkipSpace();
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == ']') {
        ++pos_;
        return absl::OkStatus();
      }
      return Error("expected ',' or ']' after an array element");
    }
  }

  absl::Status Number(JsonValue* v) {
    const size_t start = pos_;
    auto digits = [&] {
      const size_t from = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      return pos_ > from;
    };
    if (s_[pos_] == '-') ++pos_;
    if (pos_ < s_.size() && s_[pos_] == '0') {
      ++pos_;
      if (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') return Error("a number with a leading zero");
    } else if (!digits()) {
      return Error("expected digits in a number");
    }
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      if (!digits()) return Error("expected digits after the decimal point");
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (!digits()) return Error("expected digits in the exponent");
    }
    v->type = JsonValue::Type::kNumber;
    v->text.assign(s_.substr(start, pos_ - start));
    const auto r = std::from_chars(v->text.data(), v->text.data() + v->text.size(), v->number);
    if (r.ec == std::errc::result_out_of_range) {
      pos_ = start;
      return Error(absl::StrCat("the number ", v->text, " is out of range"));
    }
    return absl::OkStatus();
  }

  static int Hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  bool Hex4(uint32_t* out) {
    if (pos_ + 4 > s_.size()) return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const int h = Hex(s_[pos_ + i]);
      if (h < 0) return false;
      v = v * 16 + static_cast<uint32_t>(h);
    }
    pos_ += 4;
    *out = v;
    return true;
  }

  absl::Status String(std::string* out) {
    out->clear();
    ++pos_;  // the opening quote
    for (;;) {
      const size_t run = pos_;
      while (pos_ < s_.size() && s_[pos_] != '"' && s_[pos_] != '\\' && static_cast<unsigned char>(s_[pos_]) >= 0x20) {
        ++pos_;
      }
      out->append(s_.substr(run, pos_ - run));
      if (pos_ >= s_.size()) return Error("a string without its closing double quote");
      const char c = s_[pos_];
      if (c == '"') {
        ++pos_;
        return absl::OkStatus();
      }
      if (c != '\\') return Error("a control character inside a string (escape it)");
      ++pos_;
      if (pos_ >= s_.size()) return Error("a string without its closing double quote");
      const char e = s_[pos_++];
      switch (e) {
        case '"': out->push_back('"'); break;
        case '\\': out->push_back('\\'); break;
        case '/': out->push_back('/'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        case 'u': {
          uint32_t cp = 0;
          if (!Hex4(&cp)) return Error("expected 4 hexadecimal digits after \\u");
          if (cp >= 0xDC00 && cp <= 0xDFFF) return Error("a lone low surrogate \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t low = 0;
            if (!Literal("\\u") || !Hex4(&low) || low < 0xDC00 || low > 0xDFFF) {
              return Error("a high surrogate \\u escape without its low surrogate");
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          format_internal::AppendUtf8(cp, out);
          break;
        }
        default:
          --pos_;
          return Error(absl::StrCat("unknown escape '\\", std::string(1, e), "' in a string"));
      }
    }
  }

  std::string_view s_;
  size_t pos_ = 0;
  int line_;
  size_t line_start_ = 0;
};

}  // namespace

absl::Status ParseJson(std::string_view text, JsonValue* out, int first_line) {
  return Parser(text, first_line).Parse(out);
}

}  // namespace vstream
