#pragma once
// SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), self-contained: the
// project does not link OpenSSL. For keyed pseudonyms of patient
// identifiers (runtime/clinical/pseudonymize_function.h), where the digest
// must be the same in every process, run and restart, and must be
// recomputable by another system holding the same key.
//
//   Sha256 h;                               // incremental
//   h.Update("ab");
//   h.Update("c");
//   Sha256::Digest d = h.Final();           // ba7816bf...f20015ad
//
//   HmacSha256Keyed mac(key);               // once per key
//   Sha256::Digest tag = mac.Mac(value);    // per message: no allocation
//
// HmacSha256Keyed hashes the padded key blocks (key ^ ipad, key ^ opad) once,
// so a message of n bytes costs ceil((n + 9) / 64) compressions for the
// inner hash and one for the outer, and nothing is allocated. It keeps those
// two hash states, not the key itself.
//
// Portable C++, a block at a time; no CPU SHA extensions.
//
// Thread-compatible: a Sha256 is one hash in progress, for one thread. A
// HmacSha256Keyed is immutable after construction, so Mac may be called
// from several threads at once.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace vstream {

class Sha256 {
 public:
  static constexpr size_t kDigestSize = 32;
  static constexpr size_t kBlockSize = 64;
  using Digest = std::array<uint8_t, kDigestSize>;

  Sha256() { Reset(); }

  // Starts a new message.
  void Reset();

  // Appends bytes to the message.
  void Update(std::string_view data) { Update(data.data(), data.size()); }
  void Update(const void* data, size_t size);

  // The digest of the message so far; then starts a new message (as
  // Reset), so that one object can hash message after message.
  Digest Final();

  // The digest of `data`, in one call.
  static Digest Hash(std::string_view data);

 private:
  // Runs the compression function on one 64-byte block.
  void Compress(const uint8_t* block);

  uint32_t state_[8];
  uint64_t length_;  // bytes of the message so far
  uint8_t buffer_[kBlockSize];
  size_t buffered_;  // bytes in buffer_, < kBlockSize
};

// HMAC-SHA256 with `key` (any length: a key longer than 64 bytes is hashed
// first, as RFC 2104 says) over `message`. For one-off use; to MAC many
// messages with one key, make a HmacSha256Keyed.
Sha256::Digest HmacSha256(std::string_view key, std::string_view message);

// HMAC-SHA256 with a fixed key, its padded key blocks hashed once.
class HmacSha256Keyed {
 public:
  explicit HmacSha256Keyed(std::string_view key);

  // HMAC-SHA256(key, message). Allocates nothing.
  Sha256::Digest Mac(std::string_view message) const;

 private:
  Sha256 inner_;  // after the block key ^ ipad (0x36...)
  Sha256 outer_;  // after the block key ^ opad (0x5c...)
};

// Writes the first `hex_digits` (at most 64) lower-case hex digits of
// `digest` to out[0, hex_digits): a prefix of the digest's usual spelling.
// Allocates nothing.
void DigestToHex(const Sha256::Digest& digest, size_t hex_digits, char* out);

// All 64 lower-case hex digits of `digest`, e.g. for tests and logs.
std::string DigestToHex(const Sha256::Digest& digest);

}  // namespace vstream
