#include "common/sha256.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace vstream {

namespace {

// FIPS 180-4 4.2.2: the first 32 bits of the fractional parts of the cube
// roots of the first 64 primes.
constexpr uint32_t kRound[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

// FIPS 180-4 5.3.3: the first 32 bits of the fractional parts of the
// square roots of the first 8 primes.
constexpr uint32_t kInitial[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

uint32_t LoadBigEndian32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

void StoreBigEndian32(uint32_t v, uint8_t* p) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

// Overwrites key material on the stack; the volatile pointer keeps the
// compiler from dropping the stores as dead.
void Wipe(uint8_t* p, size_t n) {
  volatile uint8_t* v = p;
  for (size_t i = 0; i < n; ++i) v[i] = 0;
}

constexpr char kHexDigits[] = "0123456789abcdef";

}  // namespace

void Sha256::Reset() {
  std::memcpy(state_, kInitial, sizeof(state_));
  length_ = 0;
  buffered_ = 0;
}

void Sha256::Update(const void* data, size_t size) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  length_ += size;
  if (buffered_ > 0) {
    const size_t take = std::min(size, kBlockSize - buffered_);
    std::memcpy(buffer_ + buffered_, p, take);
    buffered_ += take;
    p += take;
    size -= take;
    if (buffered_ < kBlockSize) return;
    Compress(buffer_);
    buffered_ = 0;
  }
  for (; size >= kBlockSize; p += kBlockSize, size -= kBlockSize) Compress(p);
  if (size > 0) {
    std::memcpy(buffer_, p, size);
    buffered_ = size;
  }
}

Sha256::Digest Sha256::Final() {
  // FIPS 180-4 5.1.1: a 1 bit, zeros up to 56 bytes mod 64, then the
  // message's length in bits as a 64-bit big-endian number.
  const uint64_t bits = length_ * 8;
  buffer_[buffered_++] = 0x80;
  if (buffered_ > kBlockSize - 8) {
    std::memset(buffer_ + buffered_, 0, kBlockSize - buffered_);
    Compress(buffer_);
    buffered_ = 0;
  }
  std::memset(buffer_ + buffered_, 0, kBlockSize - 8 - buffered_);
  StoreBigEndian32(static_cast<uint32_t>(bits >> 32), buffer_ + kBlockSize - 8);
  StoreBigEndian32(static_cast<uint32_t>(bits), buffer_ + kBlockSize - 4);
  Compress(buffer_);
  Digest digest;
  for (int i = 0; i < 8; ++i) StoreBigEndian32(state_[i], digest.data() + 4 * i);
  Reset();
  return digest;
}

Sha256::Digest Sha256::Hash(std::string_view data) {
  Sha256 h;
  h.Update(data);
  return h.Final();
}

void Sha256::Compress(const uint8_t* block) {
  // FIPS 180-4 6.2.2.
  uint32_t w[64];
  for (int t = 0; t < 16; ++t) w[t] = LoadBigEndian32(block + 4 * t);
  for (int t = 16; t < 64; ++t) {
    const uint32_t s0 = std::rotr(w[t - 15], 7) ^ std::rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
    const uint32_t s1 = std::rotr(w[t - 2], 17) ^ std::rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
    w[t] = w[t - 16] + s0 + w[t - 7] + s1;
  }
  uint32_t a = state_[0], b = state_[1], c = state_[2], d = state_[3];
  uint32_t e = state_[4], f = state_[5], g = state_[6], h = state_[7];
  for (int t = 0; t < 64; ++t) {
    const uint32_t sum1 = std::rotr(e, 6) ^ std::rotr(e, 11) ^ std::rotr(e, 25);
    const uint32_t ch = (e & f) ^ (~e & g);
    const uint32_t t1 = h + sum1 + ch + kRound[t] + w[t];
    const uint32_t sum0 = std::rotr(a, 2) ^ std::rotr(a, 13) ^ std::rotr(a, 22);
    const uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
    const uint32_t t2 = sum0 + maj;
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  state_[0] += a;
  state_[1] += b;
  state_[2] += c;
  state_[3] += d;
  state_[4] += e;
  state_[5] += f;
  state_[6] += g;
  state_[7] += h;
}

// ---- HMAC ------------------------------------------------------------------

HmacSha256Keyed::HmacSha256Keyed(std::string_view key) {
  // RFC 2104 2: K, hashed if longer than a block, zero-padded to a block.
  uint8_t pad[Sha256::kBlockSize] = {};
  if (key.size() > Sha256::kBlockSize) {
    Sha256::Digest hashed = Sha256::Hash(key);
    std::memcpy(pad, hashed.data(), hashed.size());
    Wipe(hashed.data(), hashed.size());
  } else if (!key.empty()) {
    std::memcpy(pad, key.data(), key.size());
  }
  for (uint8_t& b : pad) b ^= 0x36;
  inner_.Update(pad, sizeof(pad));
  for (uint8_t& b : pad) b ^= 0x36 ^ 0x5c;
  outer_.Update(pad, sizeof(pad));
  Wipe(pad, sizeof(pad));
}

Sha256::Digest HmacSha256Keyed::Mac(std::string_view message) const {
  // H(K ^ opad || H(K ^ ipad || message)), from the states after the first
  // block of each.
  Sha256 inner = inner_;
  inner.Update(message);
  const Sha256::Digest inner_digest = inner.Final();
  Sha256 outer = outer_;
  outer.Update(inner_digest.data(), inner_digest.size());
  return outer.Final();
}

Sha256::Digest HmacSha256(std::string_view key, std::string_view message) {
  return HmacSha256Keyed(key).Mac(message);
}

// ---- hex -------------------------------------------------------------------

void DigestToHex(const Sha256::Digest& digest, size_t hex_digits, char* out) {
  if (hex_digits > 2 * Sha256::kDigestSize) hex_digits = 2 * Sha256::kDigestSize;
  for (size_t i = 0; i < hex_digits; ++i) {
    const uint8_t byte = digest[i / 2];
    out[i] = kHexDigits[(i % 2 == 0) ? (byte >> 4) : (byte & 0x0f)];
  }
}

std::string DigestToHex(const Sha256::Digest& digest) {
  std::string hex(2 * Sha256::kDigestSize, '\0');
  DigestToHex(digest, hex.size(), hex.data());
  return hex;
}

}  // namespace vstream
