#pragma once
// 64-bit FNV-1a: a small, stable hash for deterministic ids (alert ids,
// FHIR resource ids, model fingerprints) that must be the same in every
// process, run and version. Not for hash tables or anything adversarial.

#include <cstdint>
#include <string_view>

namespace vstream {

inline constexpr uint64_t kFnv1a64Offset = 0xcbf29ce484222325ULL;

// Extends `h` (kFnv1a64Offset to start) with `bytes`.
inline uint64_t Fnv1a64(std::string_view bytes, uint64_t h = kFnv1a64Offset) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

}  // namespace vstream
