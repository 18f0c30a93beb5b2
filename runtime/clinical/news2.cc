#include "runtime/clinical/news2.h"

#include <cmath>

namespace vstream {

namespace {
double Whole(double v) { return std::round(v); }
}  // namespace

std::optional<Acvpu> ParseAcvpu(std::string_view text) {
  if (text.size() != 1) return std::nullopt;
  switch (text[0]) {
    case 'A': case 'a': return Acvpu::kAlert;
    case 'C': case 'c': return Acvpu::kConfusion;
    case 'V': case 'v': return Acvpu::kVoice;
    case 'P': case 'p': return Acvpu::kPain;
    case 'U': case 'u': return Acvpu::kUnresponsive;
    default: return std::nullopt;
  }
}

std::string_view News2RiskName(News2Risk risk) {
  switch (risk) {
    case News2Risk::kLow: return "low";
    case News2Risk::kLowMedium: return "low-medium";
    case News2Risk::kMedium: return "medium";
    case News2Risk::kHigh: return "high";
  }
  return "low";
}

int News2RespirationRate(double per_min) {
  const double v = Whole(per_min);
  if (v <= 8) return 3;
  if (v <= 11) return 1;
  if (v <= 20) return 0;
  if (v <= 24) return 2;
  return 3;
}

int News2Spo2(double percent, bool scale2, bool on_oxygen) {
  const double v = Whole(percent);
  if (!scale2) {
    if (v <= 91) return 3;
    if (v <= 93) return 2;
    if (v <= 95) return 1;
    return 0;
  }
  if (v <= 83) return 3;
  if (v <= 85) return 2;
  if (v <= 87) return 1;
  if (v <= 92 || !on_oxygen) return 0;
  if (v <= 94) return 1;
  if (v <= 96) return 2;
  return 3;
}

int News2AirOrOxygen(bool on_oxygen) { return on_oxygen ? 2 : 0; }

int News2SystolicBp(double mmhg) {
  const double v = Whole(mmhg);
  if (v <= 90) return 3;
  if (v <= 100) return 2;
  if (v <= 110) return 1;
  if (v <= 219) return 0;
  return 3;
}

int News2Pulse(double per_min) {
  const double v = Whole(per_min);
  if (v <= 40) return 3;
  if (v <= 50) return 1;
  if (v <= 90) return 0;
  if (v <= 110) return 1;
  if (v <= 130) return 2;
  return 3;
}

int News2Consciousness(Acvpu level) { return level == Acvpu::kAlert ? 0 : 3; }

int News2Temperature(double celsius) {
  // Rounded to, and compared in, tenths, so that 36.0 is not 35.99999.
  const long t = std::lround(celsius * 10);
  if (t <= 350) return 3;
  if (t <= 360) return 1;
  if (t <= 380) return 0;
  if (t <= 390) return 1;
  return 2;
}

News2Score ScoreNews2(const VitalSigns& vitals) {
  News2Score s;
  auto add = [&](int* sub, int value) {
    *sub = value;
    s.total += value;
    s.red = s.red || value == 3;
  };
  if (vitals.respiration_rate) add(&s.respiration_rate, News2RespirationRate(*vitals.respiration_rate));
  else ++s.missing;
  // SpO2 on scale 2 needs to know about oxygen; without it, air is assumed
  // (the lower score), and the air/oxygen parameter counts as missing.
  if (vitals.spo2) add(&s.spo2, News2Spo2(*vitals.spo2, vitals.spo2_scale2, vitals.on_oxygen.value_or(false)));
  else ++s.missing;
  if (vitals.on_oxygen) add(&s.air_or_oxygen, News2AirOrOxygen(*vitals.on_oxygen));
  else ++s.missing;
  if (vitals.systolic_bp) add(&s.systolic_bp, News2SystolicBp(*vitals.systolic_bp));
  else ++s.missing;
  if (vitals.pulse) add(&s.pulse, News2Pulse(*vitals.pulse));
  else ++s.missing;
  if (vitals.consciousness) add(&s.consciousness, News2Consciousness(*vitals.consciousness));
  else ++s.missing;
  if (vitals.temperature) add(&s.temperature, News2Temperature(*vitals.temperature));
  else ++s.missing;
  if (s.total >= 7) s.risk = News2Risk::kHigh;
  else if (s.total >= 5) s.risk = News2Risk::kMedium;
  else if (s.red) s.risk = News2Risk::kLowMedium;
  else s.risk = News2Risk::kLow;
  return s;
}

QsofaScore ScoreQsofa(const VitalSigns& vitals, std::optional<double> gcs) {
  QsofaScore q;
  if (vitals.respiration_rate) q.respiration_rate = Whole(*vitals.respiration_rate) >= 22;
  else ++q.missing;
  if (vitals.consciousness) q.altered_mentation = *vitals.consciousness != Acvpu::kAlert;
  else if (gcs) q.altered_mentation = Whole(*gcs) < 15;
  else ++q.missing;
  if (vitals.systolic_bp) q.systolic_bp = Whole(*vitals.systolic_bp) <= 100;
  else ++q.missing;
  q.total = q.respiration_rate + q.altered_mentation + q.systolic_bp;
  q.positive = q.total >= 2;
  return q;
}

}  // namespace vstream
