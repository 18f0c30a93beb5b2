// Keyed-state update throughput and memory, over the KeyedStateBackend.
//
// update mode: `--updates` read-modify-write updates (a per-key count) of
// random keys among `--keys` distinct keys, three ways:
//   rmw    ValueState without cache: RocksDB Get + Put per record
//   cache  ValueState with the write-back cache: Get + Put hit the cache,
//          RocksDB sees WriteBatches on eviction and at the final Flush
//   merge  AggregatingState with an associative add: one blind RocksDB
//          Merge per record, folded by RocksDB on read and in compaction
// Each way starts from an empty backend with its own StateResources of
// `--budget_mb`; the final Flush is inside the timed part, and a sample of
// keys is read back and checked against counts kept in memory. The VmHWM
// column is the process's peak resident set so far.
//
// timers mode: a tumbling window's timers over `--timer_keys` keys, as the
// window operator keeps them ([key group][key][window start][kind]): each
// round adds one timer per key for the next window, then pops the previous
// window's (two windows are open while the watermark trails event time), for
// `--timer_rounds` rounds, all in memory. Reports the adds and the pops per
// timer, and the slowest pop (a window operator's task does nothing else
// meanwhile).
//
// scans mode: an interval join's probe of its other side's entries on disk
// (q3's join does one per record): `--scan_keys` keys with one map entry
// each, written in `--scan_files` flushes (as checkpoints flush; universal
// compaction may merge the files meanwhile),
// then `--scans` rounds of one MapState::ForEachInRange of a random key
// (half of them absent) and one Put of a new key (a join's record is put as
// it is probed for). Reports ns per round.
//
// dedup mode: the clinical dedup's state (a MapState per patient of the
// message ids seen): `--dedup_rounds` rounds of a Get of a new map key of one
// of `--dedup_keys` keys and a Put of it, with the memtables flushed every
// `--dedup_flush` rounds (as a checkpoint a second flushes them). Nearly
// every Get misses: its cost is the memtables' and files' filters. Twice:
// the map with a ttl of an hour as the dedup declares it, with the filter of
// recent keys (filter_recent_keys), and without it. Reports ns per round.
//
// join mode: an interval join's buffer (BufferedMapState, in memory) as
// Nexmark q4's join fills it: `--join_records` bids over `--join_keys`
// auctions (a tenth of them hot, taking nine tenths of the bids), from
// `--join_inputs` source subtasks, each in time order, read in turns of
// `--join_batch` records (a network buffer each) and `--join_lag_ms` apart
// in time; each bid probes its auction (ForEachInRange of the other side's
// buffer, one entry per key) and is put, and every 1,000 bids a tenth of
// the keys lose their entries older than 10 s before the slowest input,
// front first, as the join's cleanup timers do.
// Reports ns per bid and the mid-run puts (those that did not append);
// `--join_lanes=1` keeps each key's entries in one ordered run.
//
// rss mode: one update of each of `--rss_keys` distinct keys (in a scrambled
// order) through `--rss_method`, then the peak resident set size of the
// process (VmHWM) against the budget.
//
//   state_bench [--mode=update|rss|timers|scans|dedup|join|all] [--keys=N] [--updates=N] [--rss_keys=N]
//               [--budget_mb=N] [--cache_mb=N] [--methods=rmw,cache,merge]
//               [--rss_method=rmw|cache|merge] [--timer_keys=N] [--timer_rounds=N]
//               [--scan_keys=N] [--scan_files=N] [--scans=N] [--dir=PATH]

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "rocksdb/db.h"
#include "state/buffered_map_state.h"
#include "state/keyed_state_backend.h"
#include "state/state_key.h"
#include "state/timer_queue.h"

namespace vstream {
namespace {

struct Flags {
  std::string mode = "all";
  int64_t keys = 1'000'000;
  int64_t updates = 10'000'000;
  int64_t rss_keys = 20'000'000;
  int64_t budget_mb = 256;
  int64_t cache_mb = 64;
  int64_t timer_keys = 40'000;
  int64_t timer_rounds = 20;
  int64_t scan_keys = 400'000;
  int64_t scan_files = 8;
  int64_t scans = 1'000'000;
  int64_t dedup_keys = 5'000;
  int64_t dedup_rounds = 2'000'000;
  int64_t dedup_flush = 30'000;
  int64_t join_records = 4'000'000;
  int64_t join_keys = 10'000;
  int64_t join_inputs = 2;
  int64_t join_batch = 512;
  int64_t join_lag_ms = 20;
  int64_t join_lanes = BufferedMapState::kLanes;
  std::string methods = "rmw,cache,merge";
  std::string rss_method = "cache";
  std::string dir = "/tmp/vstream-state-bench";
};

bool ParseFlags(int argc, char** argv, Flags* f) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    const size_t eq = arg.find('=');
    if (arg.substr(0, 2) != "--" || eq == std::string_view::npos) return false;
    const std::string name(arg.substr(2, eq - 2));
    const std::string value(arg.substr(eq + 1));
    std::map<std::string, int64_t*> ints = {{"keys", &f->keys},         {"updates", &f->updates},
                                            {"rss_keys", &f->rss_keys}, {"budget_mb", &f->budget_mb},
                                            {"cache_mb", &f->cache_mb},         {"timer_keys", &f->timer_keys},
                                            {"timer_rounds", &f->timer_rounds}, {"scan_keys", &f->scan_keys},
                                            {"scan_files", &f->scan_files},     {"scans", &f->scans},
                                            {"dedup_keys", &f->dedup_keys},     {"dedup_rounds", &f->dedup_rounds},
                                            {"dedup_flush", &f->dedup_flush},   {"join_records", &f->join_records},
                                            {"join_keys", &f->join_keys},       {"join_inputs", &f->join_inputs},
                                            {"join_batch", &f->join_batch},     {"join_lag_ms", &f->join_lag_ms},
                                            {"join_lanes", &f->join_lanes}};
    std::map<std::string, std::string*> strings = {{"mode", &f->mode},
                                                   {"methods", &f->methods},
                                                   {"rss_method", &f->rss_method},
                                                   {"dir", &f->dir}};
    if (auto it = ints.find(name); it != ints.end()) {
      *it->second = std::stoll(value);
    } else if (auto st = strings.find(name); st != strings.end()) {
      *st->second = value;
    } else {
      return false;
    }
  }
  return f->keys > 0 && f->updates >= 0 && f->rss_keys > 0 && f->budget_mb > 0 && f->timer_keys > 0 &&
         f->timer_rounds > 0 && f->scan_files > 0 && f->scan_keys >= f->scan_files && f->scans > 0 &&
         f->dedup_keys > 0 && f->dedup_rounds > 0 && f->dedup_flush > 0 && f->join_records > 0 && f->join_keys >= 10 &&
         f->join_inputs > 0 && f->join_batch > 0 && f->join_lag_ms >= 0;
}

// A status that must be OK; the benchmark stops otherwise.
void Check(const absl::Status& s, const char* what) {
  if (s.ok()) return;
  std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}
template <typename T>
T Check(absl::StatusOr<T> s, const char* what) {
  Check(s.status(), what);
  return *std::move(s);
}

int64_t ProcStatusKb(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(field);
  while (std::getline(in, line)) {
    if (line.compare(0, n, field) == 0 && line.size() > n && line[n] == ':') {
      return std::stoll(line.substr(n + 1));
    }
  }
  return -1;
}

double MiB(double bytes) { return bytes / (1024.0 * 1024.0); }

// xorshift64*: fast, deterministic, the same sequence for every method.
struct Rng {
  uint64_t s;
  uint64_t Next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 2685821657736338717ull;
  }
};

// A bijection of 64-bit integers (splitmix64's finalizer): scrambled, distinct keys.
uint64_t Scramble(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

void EncodeKey(uint64_t k, char* out) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<char>(k & 0xff);
    k >>= 8;
  }
}

int64_t LoadI64(std::string_view s) {
  int64_t v = 0;
  if (s.size() == 8) std::memcpy(&v, s.data(), 8);
  return v;
}
void StoreI64(int64_t v, std::string* s) {
  s->resize(8);
  std::memcpy(s->data(), &v, 8);
}

AggregateFunction CountFunction() {
  AggregateFunction f;
  f.create_accumulator = [](std::string* acc) { StoreI64(0, acc); };
  f.add = [](std::string* acc, std::string_view in) { StoreI64(LoadI64(*acc) + LoadI64(in), acc); };
  return f;
}

// Makes the 8-byte encoding of k (in buf) the backend's current key.
std::string_view SetBenchKey(KeyedStateBackend& backend, uint64_t k, char (&buf)[8]) {
  EncodeKey(k, buf);
  const std::string_view key(buf, sizeof(buf));
  backend.SetCurrentKey(KeyGroupForHash(HashKeyBytes(key), kDefaultMaxParallelism), key);
  return key;
}

// One way of updating a key's count.
class Updater {
 public:
  Updater(KeyedStateBackend& backend, const std::string& method) : backend_(backend) {
    if (method == "merge") {
      agg_ = Check(backend.GetAggregatingState(
                       {.name = "count", .function = CountFunction(), .associative = true}),
                   "register");
    } else {
      value_ = Check(backend.GetValueState({.name = "count", .write_back_cache = method == "cache"}),
                     "register");
    }
    StoreI64(1, &one_);
  }

  void Update(uint64_t k) {
    SetKey(k);
    if (agg_ != nullptr) {
      Check(agg_->Add("", one_), "add");
      return;
    }
    const StateLookup r = Check(value_->Get("", &buf_), "get");
    StoreI64((r == StateLookup::kFound ? LoadI64(buf_) : 0) + 1, &buf_);
    Check(value_->Put("", buf_), "put");
  }

  int64_t Read(uint64_t k) {
    SetKey(k);
    const StateLookup r = agg_ != nullptr ? Check(agg_->Get("", &buf_), "get")
                                          : Check(value_->Get("", &buf_), "get");
    return r == StateLookup::kFound ? LoadI64(buf_) : 0;
  }

 private:
  void SetKey(uint64_t k) { SetBenchKey(backend_, k, key_); }

  KeyedStateBackend& backend_;
  ValueState* value_ = nullptr;
  AggregatingState* agg_ = nullptr;
  char key_[8];
  std::string buf_;
  std::string one_;
};

std::unique_ptr<KeyedStateBackend> OpenBackend(const Flags& f, const std::string& name) {
  auto resources = Check(StateResources::Create(f.budget_mb << 20), "resources");
  KeyedStateBackendOptions options;
  options.path = f.dir + "/" + name;
  options.resources = resources;
  options.write_back_cache_bytes = static_cast<size_t>(f.cache_mb) << 20;
  return Check(KeyedStateBackend::Open(options), "open");
}

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void RunUpdates(const Flags& f) {
  std::printf("\nkeyed read-modify-write updates: %lld updates of random keys among %lld, "
              "budget %lld MiB, write-back cache %lld MiB\n\n",
              static_cast<long long>(f.updates), static_cast<long long>(f.keys),
              static_cast<long long>(f.budget_mb), static_cast<long long>(f.cache_mb));
  std::printf("%-7s %12s %10s %14s %10s %9s  %s\n", "method", "updates", "seconds", "updates/s",
              "flush ms", "VmHWM MiB", "notes");
  std::vector<uint32_t> counts(static_cast<size_t>(f.keys));
  for (const std::string& method : Split(f.methods)) {
    if (method != "rmw" && method != "cache" && method != "merge") {
      std::fprintf(stderr, "unknown method %s\n", method.c_str());
      std::exit(2);
    }
    std::fill(counts.begin(), counts.end(), 0);
    auto backend = OpenBackend(f, method);
    Updater updater(*backend, method);
    Rng rng{0x9e3779b97f4a7c15ull};
    const auto start = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < f.updates; ++i) {
      const uint64_t k = rng.Next() % static_cast<uint64_t>(f.keys);
      ++counts[k];
      updater.Update(k);
    }
    const auto flush_start = std::chrono::steady_clock::now();
    Check(backend->Flush(), "flush");
    const double flush_s = Seconds(flush_start);
    const double secs = Seconds(start);
    // Check a sample of keys against the counts kept in memory.
    int bad = 0;
    for (uint64_t k = 0; k < static_cast<uint64_t>(f.keys); k += f.keys / 1000 + 1) {
      if (updater.Read(k) != counts[k]) ++bad;
    }
    std::string notes = bad == 0 ? "sample check ok" : std::to_string(bad) + " WRONG COUNTS";
    if (method == "cache") {
      const StateCacheStats s = backend->cache_stats();
      char buf[160];
      std::snprintf(buf, sizeof(buf), "; cache hit %.0f%%, %llu write-backs in %llu batches",
                    100.0 * s.hits / std::max<uint64_t>(1, s.hits + s.misses),
                    static_cast<unsigned long long>(s.written_on_evict + s.written_on_flush),
                    static_cast<unsigned long long>(s.batches));
      notes += buf;
    }
    std::printf("%-7s %12lld %10.2f %14.0f %10.0f %9.0f  %s\n", method.c_str(),
                static_cast<long long>(f.updates), secs, f.updates / secs, flush_s * 1000,
                ProcStatusKb("VmHWM") / 1024.0, notes.c_str());
    std::fflush(stdout);
    backend.reset();
    std::filesystem::remove_all(f.dir + "/" + method);
    if (bad != 0) {
      std::fprintf(stderr, "%s: %d sampled counts wrong\n", method.c_str(), bad);
      std::exit(1);
    }
  }
}

void RunTimers(const Flags& f) {
  auto backend = OpenBackend(f, "timers");
  auto queue = Check(TimerQueue::Create(*backend, "window_timers"), "timer queue");
  constexpr int64_t kWindowMs = 300'000;
  std::vector<std::string> keys;  // a key group and a patient id and code, as the clinical window's
  for (int64_t k = 0; k < f.timer_keys; ++k) {
    std::string key;
    AppendKeyGroupBytes(static_cast<int>(Scramble(static_cast<uint64_t>(k)) % kDefaultMaxParallelism), &key);
    key.append("PAT-" + std::to_string(100000 + k / 8) + "|8867-" + std::to_string(k % 8));
    keys.push_back(std::move(key));
  }
  std::string payload;
  auto add_round = [&](int64_t round) {
    const int64_t start = round * kWindowMs;
    for (const std::string& key : keys) {
      payload.assign(key);
      AppendOrderedTime(start, &payload);
      payload.push_back('\1');
      Check(queue->Add(start + kWindowMs - 1, payload), "add");
    }
  };
  add_round(0);
  double add_s = 0, pop_s = 0, worst_pop_s = 0;
  int64_t popped = 0;
  uint64_t checksum = 0;
  for (int64_t round = 1; round <= f.timer_rounds; ++round) {
    auto start = std::chrono::steady_clock::now();
    add_round(round);
    add_s += Seconds(start);
    start = std::chrono::steady_clock::now();
    const size_t n = Check(queue->PopUpTo(round * kWindowMs - 1, [&](int64_t t, std::string_view p) {
      checksum += static_cast<uint64_t>(t) + p.size();
    }), "pop");
    const double s = Seconds(start);
    pop_s += s;
    worst_pop_s = std::max(worst_pop_s, s);
    popped += static_cast<int64_t>(n);
  }
  const double timers = static_cast<double>(f.timer_keys * f.timer_rounds);
  std::printf("\nwindow timers: %lld keys, %lld rounds (each adds the next window's timers, then pops the "
              "last window's)\n\n", static_cast<long long>(f.timer_keys), static_cast<long long>(f.timer_rounds));
  std::printf("%-10s %14s %12s %16s\n", "", "timers", "ns/timer", "slowest round ms");
  std::printf("%-10s %14.0f %12.0f %16s\n", "add", timers, add_s * 1e9 / timers, "-");
  std::printf("%-10s %14lld %12.0f %16.1f\n", "pop", static_cast<long long>(popped), pop_s * 1e9 / timers,
              worst_pop_s * 1e3);
  if (popped != f.timer_keys * f.timer_rounds || checksum == 0) {
    std::fprintf(stderr, "popped %lld timers, expected %lld\n", static_cast<long long>(popped),
                 static_cast<long long>(f.timer_keys * f.timer_rounds));
    std::exit(1);
  }
  std::fflush(stdout);
  queue.reset();
  backend.reset();
  std::filesystem::remove_all(f.dir + "/timers");
}

void RunScans(const Flags& f) {
  auto backend = OpenBackend(f, "scans");
  MapState* side = Check(backend->GetMapState({.name = "side"}), "register");
  rocksdb::ColumnFamilyHandle* cf = backend->column_family(side->id());
  char key[8];
  const std::string value(40, 'v');  // q3's projected person: name, city, state
  auto put = [&](uint64_t k) {
    const std::string_view view = SetBenchKey(*backend, Scramble(k), key);
    Check(side->Put("", view, value), "put");  // one entry per key
  };
  const int64_t per_file = f.scan_keys / f.scan_files;
  for (int64_t file = 0; file < f.scan_files; ++file) {
    for (int64_t k = file * per_file; k < (file + 1) * per_file; ++k) put(static_cast<uint64_t>(k));
    const rocksdb::Status s = backend->db()->Flush(rocksdb::FlushOptions(), cf);
    if (!s.ok()) Check(absl::InternalError(s.ToString()), "flush");
  }
  const int64_t stored = per_file * f.scan_files;
  Rng rng{0x9e3779b97f4a7c15ull};
  int64_t found = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < f.scans; ++i) {
    // Keys 0..2*stored: the upper half was never put (the puts below put
    // keys above both halves).
    SetBenchKey(*backend, Scramble(rng.Next() % static_cast<uint64_t>(2 * stored)), key);
    Check(side->ForEachInRange("", "", "", [&](std::string_view, std::string_view) {
      ++found;
      return true;
    }), "scan");
    put(static_cast<uint64_t>(2 * stored + i));
  }
  const double secs = Seconds(start);
  std::printf("\njoin probes: %lld keys in %lld files, then %lld rounds of a scan of a random key (half absent) "
              "and a put\n\n", static_cast<long long>(stored), static_cast<long long>(f.scan_files),
              static_cast<long long>(f.scans));
  std::printf("%-10s %14s %12s %12s\n", "", "rounds", "ns/round", "found");
  std::printf("%-10s %14lld %12.0f %12lld\n", "scan+put", static_cast<long long>(f.scans), secs * 1e9 / f.scans,
              static_cast<long long>(found));
  if (f.scans >= 100 && (found < f.scans / 4 || found > f.scans * 3 / 4)) {
    std::fprintf(stderr, "found %lld of %lld scanned keys, expected about half\n", static_cast<long long>(found),
                 static_cast<long long>(f.scans));
    std::exit(1);
  }
  std::fflush(stdout);
  backend.reset();
  std::filesystem::remove_all(f.dir + "/scans");
}

void RunDedup(const Flags& f, bool filter) {
  auto backend = OpenBackend(f, "dedup");
  MapState* seen = Check(
      backend->GetMapState({.name = "seen", .ttl_ms = 3'600'000, .filter_recent_keys = filter}), "register");
  rocksdb::ColumnFamilyHandle* cf = backend->column_family(seen->id());
  char key[8];
  char id[16];
  std::string value;
  const std::string_view map_key(id, sizeof(id));
  // Round i's key (of random draw r) as the current key, its new message id
  // and set id in map_key.
  auto round = [&](int64_t i, uint64_t r) {
    SetBenchKey(*backend, Scramble(r % static_cast<uint64_t>(f.dedup_keys)), key);
    EncodeKey(Scramble(static_cast<uint64_t>(i)), id);
    EncodeKey(static_cast<uint64_t>(i), id + 8);
  };
  Rng rng{0x2545f4914f6cdd1dull};
  int64_t found = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < f.dedup_rounds; ++i) {
    round(i, rng.Next());
    if (Check(seen->Get("", map_key, &value), "get") == StateLookup::kFound) {
      ++found;
      continue;
    }
    Check(seen->Put("", map_key, ""), "put");
    if ((i + 1) % f.dedup_flush == 0) {
      rocksdb::FlushOptions flush;
      flush.wait = false;  // in the background, as the checkpoints' flushes go
      const rocksdb::Status s = backend->db()->Flush(flush, cf);
      if (!s.ok()) Check(absl::InternalError(s.ToString()), "flush");
    }
  }
  const double secs = Seconds(start);
  // Keys put are found again (a filter that forgot one would let a repeat
  // through): every 100th round's and the last 10,000 rounds', untimed.
  Rng again{0x2545f4914f6cdd1dull};
  int64_t missed = 0;
  const int64_t last = f.dedup_rounds - 10'000;
  for (int64_t i = 0; i < f.dedup_rounds; ++i) {
    const uint64_t r = again.Next();
    if (i % 100 != 0 && i < last) continue;
    round(i, r);
    if (Check(seen->Get("", map_key, &value), "get") != StateLookup::kFound) ++missed;
  }
  if (missed != 0) {
    std::fprintf(stderr, "%lld keys that were put not found again\n", static_cast<long long>(missed));
    std::exit(1);
  }
  if (!filter) {
    std::printf("\ndedup: %lld rounds of a get of a new map key of one of %lld keys and its put, flushed every %lld; "
                "ttl 1 h\n\n",
                static_cast<long long>(f.dedup_rounds), static_cast<long long>(f.dedup_keys),
                static_cast<long long>(f.dedup_flush));
    std::printf("%-22s %14s %12s %12s %14s\n", "", "rounds", "ns/round", "found", "filtered gets");
  }
  std::printf("%-22s %14lld %12.0f %12lld %14lld\n", filter ? "get+put, filter" : "get+put, RocksDB only",
              static_cast<long long>(f.dedup_rounds), secs * 1e9 / f.dedup_rounds, static_cast<long long>(found),
              static_cast<long long>(seen->filtered_reads()));
  if (found != 0) {
    std::fprintf(stderr, "found %lld keys that were never put\n", static_cast<long long>(found));
    std::exit(1);
  }
  std::fflush(stdout);
  backend.reset();
  std::filesystem::remove_all(f.dir + "/dedup");
}

void RunJoin(const Flags& f) {
  auto backend = OpenBackend(f, "join");
  MapState* disk = Check(backend->GetMapState({.name = "bids"}), "register");
  std::unique_ptr<BufferedMapState> buffer = Check(
      BufferedMapState::Create(*backend, disk, false, size_t{512} << 20, static_cast<int>(f.join_lanes)), "buffer");
  MapState* auction_disk = Check(backend->GetMapState({.name = "auctions"}), "register");
  std::unique_ptr<BufferedMapState> auctions =
      Check(BufferedMapState::Create(*backend, auction_disk, false), "auctions");
  constexpr int64_t kWindowMs = 10'000;
  constexpr int64_t kStepUs = 100;  // each input's bids are 100 us apart in event time
  const int64_t hot = f.join_keys / 10;
  std::vector<int64_t> next_us(static_cast<size_t>(f.join_inputs));
  for (int64_t i = 0; i < f.join_inputs; ++i) {
    next_us[static_cast<size_t>(i)] = kWindowMs * 1000 - i * f.join_lag_ms * 1000;
  }
  Rng rng{0x9e3779b97f4a7c15ull};
  char key[8];
  std::string user_key, from, to, value(48, 'b');
  std::vector<std::string> expired;
  uint64_t sequence = 0;
  int64_t matched = 0, removed = 0;
  const auto encode_time = [](int64_t ms, std::string* out) {
    out->clear();
    for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>((static_cast<uint64_t>(ms) >> (8 * i)) & 0xff));
  };
  for (int64_t a = 0; a < f.join_keys; ++a) {  // every auction opened at time 1 s
    const std::string_view k = SetBenchKey(*backend, Scramble(static_cast<uint64_t>(a)), key);
    encode_time(1000, &user_key);
    user_key.append(8, '\0');
    Check(auctions->Put(KeyGroupForHash(HashKeyBytes(k), kDefaultMaxParallelism), k, user_key, value), "auction");
  }
  const auto start = std::chrono::steady_clock::now();
  for (int64_t done = 0; done < f.join_records;) {
    for (int64_t in = 0; in < f.join_inputs && done < f.join_records; ++in) {
      int64_t& t_us = next_us[static_cast<size_t>(in)];
      for (int64_t b = 0; b < f.join_batch && done < f.join_records; ++b, ++done, t_us += kStepUs) {
        const uint64_t r = rng.Next();
        const uint64_t auction = (r >> 8) % static_cast<uint64_t>(r % 10 != 0 ? hot : f.join_keys);
        const std::string_view k = SetBenchKey(*backend, Scramble(auction), key);
        const int kg = KeyGroupForHash(HashKeyBytes(k), kDefaultMaxParallelism);
        const int64_t t_ms = t_us / 1000;
        // The probe of the other side (the auction: one entry per key).
        encode_time(0, &from);
        encode_time(t_ms + 1, &to);
        Check(auctions->ForEachInRange(kg, k, from, to, [&](std::string_view, std::string_view) {
          ++matched;
          return true;
        }), "probe");
        encode_time(t_ms, &user_key);
        for (int i = 7; i >= 0; --i) user_key.push_back(static_cast<char>((sequence >> (8 * i)) & 0xff));
        ++sequence;
        Check(buffer->Put(kg, k, user_key, value, /*new_key=*/true), "put");
        if (done % 1000 == 999) {
          // Cleanup: every key's entries older than the window behind the slowest input.
          const int64_t slowest_ms = *std::min_element(next_us.begin(), next_us.end()) / 1000;
          encode_time(slowest_ms - kWindowMs, &to);
          for (uint64_t a = (done / 1000) % 10; a < static_cast<uint64_t>(f.join_keys); a += 10) {
            const std::string_view ck = SetBenchKey(*backend, Scramble(a), key);
            const int ckg = KeyGroupForHash(HashKeyBytes(ck), kDefaultMaxParallelism);
            expired.clear();
            Check(buffer->ForEachInRange(ckg, ck, "", to, [&](std::string_view uk, std::string_view) {
              expired.emplace_back(uk);
              return true;
            }), "scan");
            for (const std::string& e : expired) Check(buffer->Remove(ckg, ck, e), "remove");
            removed += static_cast<int64_t>(expired.size());
          }
        }
      }
    }
  }
  const double secs = Seconds(start);
  std::printf("\njoin: %lld bids over %lld keys (a tenth hot), %lld inputs %lld ms apart in batches of %lld\n\n",
              static_cast<long long>(f.join_records), static_cast<long long>(f.join_keys),
              static_cast<long long>(f.join_inputs), static_cast<long long>(f.join_lag_ms),
              static_cast<long long>(f.join_batch));
  std::printf("%-10s %14s %12s %14s %14s %12s\n", "", "bids", "ns/bid", "mid-run puts", "matches", "removed");
  std::printf("%-10s %14lld %12.0f %14llu %14lld %12lld\n", "probe+put", static_cast<long long>(f.join_records),
              secs * 1e9 / static_cast<double>(f.join_records), static_cast<unsigned long long>(buffer->inserts()),
              static_cast<long long>(matched), static_cast<long long>(removed));
  std::fflush(stdout);
  if (matched != f.join_records) {
    std::fprintf(stderr, "%lld bids found their auction, of %lld\n", static_cast<long long>(matched),
                 static_cast<long long>(f.join_records));
    std::exit(1);
  }
  buffer.reset();
  auctions.reset();
  backend.reset();
  std::filesystem::remove_all(f.dir + "/join");
}

void RunRss(const Flags& f) {
  const int64_t baseline_kb = ProcStatusKb("VmRSS");
  auto backend = OpenBackend(f, "rss");
  const StateResources& res = backend->resources();
  Updater updater(*backend, f.rss_method);
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < f.rss_keys; ++i) updater.Update(Scramble(static_cast<uint64_t>(i)));
  Check(backend->Flush(), "flush");
  const double secs = Seconds(start);
  uint64_t sst_bytes = 0;
  backend->db()->GetIntProperty(backend->column_family(0), "rocksdb.total-sst-files-size",
                                &sst_bytes);
  const int64_t hwm_kb = ProcStatusKb("VmHWM");
  std::printf("\npeak memory: %lld distinct keys, one %s update each\n\n",
              static_cast<long long>(f.rss_keys), f.rss_method.c_str());
  std::printf("%-34s %12s\n", "", "MiB");
  std::printf("%-34s %12.0f\n", "budget (StateMemoryBudget)", static_cast<double>(f.budget_mb));
  std::printf("%-34s %12.0f\n", "  block cache capacity", MiB(res.cache_capacity_bytes()));
  std::printf("%-34s %12.0f\n", "  write buffer limit (in cache)", MiB(res.write_buffer_limit_bytes()));
  std::printf("%-34s %12.0f\n", "  write-back cache (in cache)", static_cast<double>(f.cache_mb));
  std::printf("%-34s %12.0f\n", "block cache usage at end", MiB(res.cache_usage_bytes()));
  std::printf("%-34s %12.0f\n", "RSS before opening the backend", baseline_kb / 1024.0);
  std::printf("%-34s %12.0f\n", "peak RSS (VmHWM)", hwm_kb / 1024.0);
  std::printf("%-34s %12.0f\n", "peak RSS - baseline", (hwm_kb - baseline_kb) / 1024.0);
  std::printf("%-34s %12.0f\n", "SST files on disk", MiB(static_cast<double>(sst_bytes)));
  std::printf("\n%lld updates in %.1f s: %.0f updates/s; peak RSS is %.2fx the budget\n",
              static_cast<long long>(f.rss_keys), secs, f.rss_keys / secs,
              hwm_kb / 1024.0 / static_cast<double>(f.budget_mb));
  std::fflush(stdout);
  backend.reset();
  std::filesystem::remove_all(f.dir + "/rss");
}

}  // namespace
}  // namespace vstream

int main(int argc, char** argv) {
  vstream::Flags flags;
  if (!vstream::ParseFlags(argc, argv, &flags)) {
    std::fprintf(stderr,
                 "usage: state_bench [--mode=update|rss|timers|scans|dedup|join|all] [--keys=N] [--updates=N] "
                 "[--rss_keys=N] [--budget_mb=N] [--cache_mb=N] [--methods=rmw,cache,merge] "
                 "[--rss_method=rmw|cache|merge] [--timer_keys=N] [--timer_rounds=N] [--scan_keys=N] "
                 "[--scan_files=N] [--scans=N] [--dedup_keys=N] [--dedup_rounds=N] [--dedup_flush=N] "
                 "[--join_records=N] [--join_keys=N] [--join_inputs=N] [--join_batch=N] [--join_lag_ms=N] "
                 "[--join_lanes=N] [--dir=PATH]\n");
    return 2;
  }
  if (flags.mode == "update" || flags.mode == "all") vstream::RunUpdates(flags);
  if (flags.mode == "timers" || flags.mode == "all") vstream::RunTimers(flags);
  if (flags.mode == "rss" || flags.mode == "all") vstream::RunRss(flags);
  if (flags.mode == "scans" || flags.mode == "all") vstream::RunScans(flags);
  if (flags.mode == "dedup" || flags.mode == "all") {
    vstream::RunDedup(flags, /*filter=*/false);
    vstream::RunDedup(flags, /*filter=*/true);
  }
  if (flags.mode == "join" || flags.mode == "all") vstream::RunJoin(flags);
  return 0;
}
