#pragma once
// NEWS2 (Royal College of Physicians, 2017, Chart 1) and qSOFA (Sepsis-3,
// 2016) from one set of vital signs: the pure scoring that the `news2` and
// `qsofa` operators apply to each patient's latest values. No state, no
// allocation.
//
// Values are rounded as charts record them before they are banded: the
// temperature to 0.1 °C, the others to whole numbers (a rate of 20.4/min
// scores as 20). A missing parameter scores nothing and makes the score
// incomplete, which the result says.
//
// Thread-safe (pure functions).

#include <cstdint>
#include <optional>
#include <string_view>

namespace vstream {

enum class Acvpu : uint8_t { kAlert, kConfusion, kVoice, kPain, kUnresponsive };

// 'A', 'C', 'V', 'P', 'U' (either case); nullopt for anything else.
std::optional<Acvpu> ParseAcvpu(std::string_view text);

struct VitalSigns {
  std::optional<double> respiration_rate;  // breaths/min
  std::optional<double> spo2;              // %
  std::optional<bool> on_oxygen;           // supplemental oxygen (any flow)
  std::optional<double> systolic_bp;       // mmHg
  std::optional<double> pulse;             // beats/min
  std::optional<Acvpu> consciousness;
  std::optional<double> temperature;       // °C
  // SpO2 scale 2: hypercapnic respiratory failure with a prescribed target
  // of 88-92%. Default scale 1.
  bool spo2_scale2 = false;
};

enum class News2Risk : uint8_t { kLow, kLowMedium, kMedium, kHigh };
// "low", "low-medium", "medium", "high"
std::string_view News2RiskName(News2Risk risk);

struct News2Score {
  // Sub-scores, 0-3; 0 for a missing parameter.
  int respiration_rate = 0;
  int spo2 = 0;
  int air_or_oxygen = 0;
  int systolic_bp = 0;
  int pulse = 0;
  int consciousness = 0;
  int temperature = 0;
  int total = 0;
  bool red = false;  // some single parameter scored 3
  News2Risk risk = News2Risk::kLow;
  int missing = 0;  // parameters without a value (of 7)
};

News2Score ScoreNews2(const VitalSigns& vitals);

// The sub-score of one parameter, for the boundary table and tests.
int News2RespirationRate(double per_min);
int News2Spo2(double percent, bool scale2, bool on_oxygen);
int News2AirOrOxygen(bool on_oxygen);
int News2SystolicBp(double mmhg);
int News2Pulse(double per_min);
int News2Consciousness(Acvpu level);
int News2Temperature(double celsius);

struct QsofaScore {
  bool respiration_rate = false;  // >= 22/min
  bool altered_mentation = false; // ACVPU other than Alert (or GCS < 15)
  bool systolic_bp = false;       // <= 100 mmHg
  int total = 0;
  bool positive = false;          // total >= 2
  int missing = 0;                // of 3
};

// `gcs`: a Glasgow Coma Scale total, when the feed has one instead of ACVPU.
QsofaScore ScoreQsofa(const VitalSigns& vitals, std::optional<double> gcs = std::nullopt);

}  // namespace vstream
