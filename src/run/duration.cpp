#include <cmath>
#include <string>

#include "ckpt/run.h"

namespace ckpt {

Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return Status(Errc::kInvalidArgument,
                  "invalid duration '" + std::string(text) + "': " + why +
                      " (use e.g. 500ms, 25s, 10m, 1h, or a number of seconds)");
  };
  size_t i = 0;
  double value = 0;
  bool digits = false;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    value = value * 10 + (text[i] - '0');
    digits = true;
  }
  if (i < text.size() && text[i] == '.') {
    double scale = 0.1;
    bool fraction = false;
    for (++i; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i, scale /= 10) {
      value += (text[i] - '0') * scale;
      fraction = true;
    }
    if (!fraction) return bad("expected digits after '.'");
  }
  if (!digits) return bad("expected a number");
  std::string_view unit = text.substr(i);
  double ms_per_unit;
  if (unit.empty() || unit == "s") {
    ms_per_unit = 1e3;
  } else if (unit == "ms") {
    ms_per_unit = 1;
  } else if (unit == "m") {
    ms_per_unit = 60e3;
  } else if (unit == "h") {
    ms_per_unit = 3600e3;
  } else {
    return bad("unknown unit '" + std::string(unit) + "'");
  }
  double ms = value * ms_per_unit;
  // A year is more than any grace period or save interval; beyond it, arithmetic on
  // time points could overflow.
  if (ms > 365.0 * 24 * 3600e3) return bad("longer than a year");
  return std::chrono::milliseconds(std::llround(ms));
}

}  // namespace ckpt
