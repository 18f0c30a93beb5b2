#include "runtime/formats/mllp.h"

#include <ctime>

#include "runtime/formats/hl7v2.h"

namespace vstream {

MllpDecoder::MllpDecoder(size_t max_message_bytes) : max_(max_message_bytes) {}

void MllpDecoder::Feed(std::string_view bytes) {
  if (pos_ > 0 && pos_ * 2 >= buffer_.size()) {
    buffer_.erase(0, pos_);
    scan_ -= pos_;
    pos_ = 0;
  }
  buffer_.append(bytes);
}

bool MllpDecoder::Next(MllpFrame* frame) {
  while (pos_ < buffer_.size()) {
    if (!in_frame_) {
      const size_t start = buffer_.find(kMllpStart, pos_);
      const size_t end = start == std::string::npos ? buffer_.size() : start;
      for (size_t i = pos_; i < end; ++i) junk_bytes_ += buffer_[i] != '\r' && buffer_[i] != '\n';
      pos_ = end;
      if (start == std::string::npos) break;
      ++pos_;
      scan_ = pos_;
      in_frame_ = true;
      continue;
    }
    const size_t end = buffer_.find(kMllpEnd, scan_);
    const size_t stop = end == std::string::npos ? buffer_.size() : end;
    if (!discarding_ && stop - pos_ > max_) {
      // Too long: keep its beginning for the dead letters, drop the rest.
      discarding_ = true;
      prefix_.assign(buffer_, pos_, kTooLongPrefix);
      discarded_ = 0;
    }
    if (discarding_) {
      discarded_ += static_cast<int64_t>(stop - pos_);
      pos_ = stop;
      scan_ = stop;
      if (end == std::string::npos) break;
      ++pos_;
      in_frame_ = false;
      discarding_ = false;
      out_.swap(prefix_);
      frame->text = out_;
      frame->too_long = true;
      frame->length = discarded_;
      return true;
    }
    if (end == std::string::npos) {
      scan_ = buffer_.size();
      break;
    }
    frame->text = std::string_view(buffer_).substr(pos_, end - pos_);
    frame->too_long = false;
    frame->length = static_cast<int64_t>(end - pos_);
    pos_ = end + 1;
    in_frame_ = false;
    return true;
  }
  if (pos_ == buffer_.size()) {
    buffer_.clear();
    pos_ = 0;
    scan_ = 0;
  }
  return false;
}

namespace {

// `text` with the delimiters of `d` and line breaks escaped.
void AppendEscaped(std::string_view text, const Hl7Delimiters& d, std::string* out) {
  for (char c : text) {
    char code = 0;
    if (c == d.field) code = 'F';
    else if (c == d.component) code = 'S';
    else if (c == d.repetition) code = 'R';
    else if (c == d.escape) code = 'E';
    else if (c == d.subcomponent) code = 'T';
    if (code != 0) {
      out->push_back(d.escape);
      out->push_back(code);
      out->push_back(d.escape);
    } else if (c == '\r' || c == '\n') {
      out->push_back(' ');
    } else {
      out->push_back(c);
    }
  }
}

}  // namespace

std::string_view GuessControlId(std::string_view text) {
  if (text.substr(0, 3) != "MSH" || text.size() < 4) return {};
  const char sep = text[3];
  if (sep == '\r' || sep == '\n') return {};
  std::string_view segment = text.substr(0, text.find_first_of("\r\n"));
  // Fields after "MSH": MSH-1 is the separator itself, so the n-th piece
  // split at it is MSH-(n+1).
  size_t at = 3;
  for (int field = 2; field <= 10; ++field) {
    at = segment.find(sep, at);
    if (at == std::string_view::npos) return {};
    ++at;
  }
  const size_t end = segment.find(sep, at);
  const std::string_view id = segment.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at);
  // Echoed with the default delimiters: an id holding one of them is not.
  if (id.find_first_of("|^~\\&") != std::string_view::npos) return {};
  return id;
}

void AppendHl7Ack(const Hl7Message* message, std::string_view code, std::string_view error_code,
                  std::string_view error, int64_t now_ms, std::string_view control_id,
                  std::string_view incoming_control_id, std::string* ack) {
  const Hl7Delimiters d = message != nullptr ? message->delimiters() : Hl7Delimiters{};
  const int msh = message != nullptr ? message->Find("MSH") : -1;
  auto field = [&](int n) { return message != nullptr ? message->Field(msh, n) : std::string_view(); };
  const std::time_t secs = static_cast<std::time_t>(now_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
  std::string encoding{d.component, d.repetition, d.escape, d.subcomponent};
  if (d.truncation != 0) encoding.push_back(d.truncation);
  const std::string_view trigger = message != nullptr ? message->Get(msh, 9, 2) : std::string_view();
  const std::string_view processing = field(11);
  const std::string_view version = field(12);
  const char f = d.field;
  std::string& out = *ack;
  out.append("MSH");
  out.push_back(f);
  out.append(encoding);
  for (std::string_view part : {field(5), field(6), field(3), field(4), std::string_view(stamp), std::string_view()}) {
    out.push_back(f);
    out.append(part);
  }
  out.push_back(f);
  out.append("ACK");
  out.push_back(d.component);
  out.append(trigger);
  out.push_back(d.component);
  out.append("ACK");
  for (std::string_view part : {control_id, processing.empty() ? std::string_view("P") : processing,
                                version.empty() ? std::string_view("2.5.1") : version}) {
    out.push_back(f);
    out.append(part);
  }
  out.append("\rMSA");
  out.push_back(f);
  out.append(code);
  out.push_back(f);
  out.append(message != nullptr ? field(10) : incoming_control_id);
  out.push_back('\r');
  if (!error.empty()) {
    // ERR-3 (HL7 error code), ERR-4 (severity E), ERR-8 (user message).
    out.append("ERR");
    out.append(3, f);
    out.append(error_code);
    out.push_back(f);
    out.push_back('E');
    out.append(4, f);
    AppendEscaped(error, d, &out);
    out.push_back('\r');
  }
}

std::string BuildHl7Ack(const Hl7Message* message, std::string_view code, std::string_view error_code,
                        std::string_view error, int64_t now_ms, std::string_view control_id,
                        std::string_view incoming_control_id) {
  std::string out;
  AppendHl7Ack(message, code, error_code, error, now_ms, control_id, incoming_control_id, &out);
  return out;
}

}  // namespace vstream
